"""Hard caps on every fee (issue 15), each refused past its bound with its
own reason and nothing changed, on chain and in the model, through the
timelock that owns everything:

    execution fee (orders and TP/SL)  <= MAX_EXECUTION_FEE_TOKENS (100) whole tokens   params: execution fee
    minimum keeper reward             <= MAX_KEEPER_REWARD_TOKENS (100) whole tokens   params: keeper reward
    LP settlement fee                 <= MAX_SETTLE_FEE_TOKENS (10) whole tokens       vault: fee above cap
    trading fee <= 1%, liquidation fee <= 5%, keeper share <= 50%: tests/unit/perp_engine/test_set_market_params.py
"""

from model import liquidity_vault, positions
from tests.unit.perp_engine.helpers import USDC, assert_roles_same, expect_ok, expect_revert, params


def test_caps__model_and_contract_constants():
    assert positions.MAX_EXECUTION_FEE_TOKENS == 100
    assert positions.MAX_KEEPER_REWARD_TOKENS == 100
    assert liquidity_vault.MAX_SETTLE_FEE_TOKENS == 10


def test_execution_fee__2_pow_128__refused_by_the_cap(twin, owner):
    """The issue's attack: an execution fee of 2**128 took a TP/SL's whole
    payout. It is refused; 100 whole tokens is the most an owner can set."""
    before = params(twin, 0)
    for fee in (2**128, 100 * USDC + 1):
        expect_revert(twin, owner, "set_market_params", 0, params(twin, 0, execution_fee=fee),
                      reason="params: execution fee")
        assert params(twin, 0) == before and twin.p.engine.market_params(0).execution_fee == 1 * USDC
    expect_ok(twin, owner, "set_market_params", 0, params(twin, 0, execution_fee=100 * USDC))
    assert twin.p.engine.market_params(0).execution_fee == 100 * USDC
    assert_roles_same(twin)


def test_keeper_reward__above_100_tokens__refused(twin, owner):
    e = twin.p.engine
    # 5 bps on 200,000 USDC pays 100 USDC: the floor at its cap is payable
    expect_revert(twin, owner, "set_keeper_reward", 100 * USDC + 1, 400_000 * USDC, reason="params: keeper reward")
    expect_revert(twin, owner, "set_keeper_reward", 2**128, 2**127, reason="params: keeper reward")
    expect_revert(twin, owner, "set_keeper_reward", 0, 2**128, reason="params: min notional")
    assert e.min_keeper_reward() == 0 and e.min_notional() == 0
    expect_ok(twin, owner, "set_keeper_reward", 100 * USDC, 200_000 * USDC)
    assert e.min_keeper_reward() == 100 * USDC and e.min_notional() == 200_000 * USDC
    twin.assert_same()


def test_settle_fee__above_10_tokens__refused(twin, owner):
    v = twin.p.vault
    for fee in (10 * USDC + 1, 2**128):
        expect_revert(twin, owner, "vault.set_settle_fee", fee, reason="vault: fee above cap")
    assert v.settle_fee() == 0
    expect_ok(twin, owner, "vault.set_settle_fee", 10 * USDC)
    assert v.settle_fee() == 10 * USDC


def test_fund_floor__lowered_only_by_its_owner_the_timelock(twin, owner, stranger):
    f = twin.p.insurance_fund
    expect_ok(twin, owner, "fund.set_floor", 500 * USDC)  # through the timelock
    expect_revert(twin, stranger, "fund.set_floor", 0, reason="ownable: caller is not the owner")
    assert f.balance_floor() == 500 * USDC and f.owner() == twin.p.timelock.address
    assert_roles_same(twin)
