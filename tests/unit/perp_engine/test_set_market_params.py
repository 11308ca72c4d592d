"""PerpEngine.set_market_params: owner only, known market, and every bound of
positions._set_params tried at the bound (accepted) and one past it (the
named reason)."""

import pytest

from model.positions import (
    MAX_FUNDING_K, MAX_FUNDING_RATE, MAX_KEEPER_SHARE, MAX_LIQ_FEE, MAX_OPEN_INTEREST,
    MAX_PRICE_AGE, MAX_TRADING_FEE, MIN_IMF)
from tests.unit.perp_engine.helpers import (
    SCALE, USDC, WAD, ZERO, assert_roles_same, ceil_div, deploy_feed, events, expect_ok, expect_order_ok,
    expect_order_refused, expect_revert, free, no_fallback, params, position, set_round)

MAX_AMOUNT = 2**128
# A market with room under every cap: imf 5%, mmf 2%.
ROOMY = dict(imf=5 * 10**16, mmf=2 * 10**16)

# reason -> (accepted changes at the bound, rejected changes one past it)
BOUNDS = {
    "params: feed": ([], [dict(feed=ZERO)]),
    "params: imf": ([dict(imf=MIN_IMF), dict(imf=WAD)], [dict(imf=MIN_IMF - 1), dict(imf=WAD + 1)]),
    "params: mmf": (
        [dict(mmf=1, trading_fee=0), dict(mmf=MIN_IMF - 1)],
        [dict(mmf=0, trading_fee=0), dict(mmf=MIN_IMF), dict(imf=WAD, mmf=WAD)]),
    "params: trading fee": (
        [dict(ROOMY, trading_fee=MAX_TRADING_FEE), dict(trading_fee=5 * 10**15 - 1)],
        [dict(ROOMY, trading_fee=MAX_TRADING_FEE + 1), dict(trading_fee=5 * 10**15)]),
    "params: liquidation fee": ([dict(liq_fee=MAX_LIQ_FEE), dict(liq_fee=0)], [dict(liq_fee=MAX_LIQ_FEE + 1)]),
    "params: keeper share": ([dict(keeper_share=MAX_KEEPER_SHARE)], [dict(keeper_share=MAX_KEEPER_SHARE + 1)]),
    "params: insurance share": ([dict(insurance_share=WAD)], [dict(insurance_share=WAD + 1)]),
    "params: funding": (
        [dict(funding_k=MAX_FUNDING_K, max_funding_rate=MAX_FUNDING_RATE), dict(funding_k=0, max_funding_rate=0)],
        [dict(funding_k=MAX_FUNDING_K + 1), dict(max_funding_rate=MAX_FUNDING_RATE + 1)]),
    "params: price age": (
        # above the devnet's 3,000 s heartbeat (the buffer), at most a day
        [dict(max_price_age=3_001), dict(max_price_age=MAX_PRICE_AGE)],
        [dict(max_price_age=3_000), dict(max_price_age=MAX_PRICE_AGE + 1)]),
    "params: open interest": (
        [dict(max_open_interest=1), dict(max_open_interest=MAX_OPEN_INTEREST)],
        [dict(max_open_interest=0), dict(max_open_interest=MAX_OPEN_INTEREST + 1)]),
    "params: min margin": (
        [dict(min_margin=1), dict(min_margin=MAX_AMOUNT - 1)],
        [dict(min_margin=0), dict(min_margin=MAX_AMOUNT)]),
    # 100 whole tokens: 100 * 10**6 units on the 6-decimal devnet token.
    "params: execution fee": (
        [dict(execution_fee=100 * 10**6), dict(execution_fee=0)],
        [dict(execution_fee=100 * 10**6 + 1), dict(execution_fee=MAX_AMOUNT)]),
}


@pytest.mark.parametrize("reason", list(BOUNDS))
def test_set_market_params__each_bound__accepted_at_it_rejected_past_it(twin, owner, reason):
    assert twin.p.token.decimals() == 6 and USDC == 10**6  # the execution fee's cap is in whole tokens
    accepted, rejected = BOUNDS[reason]
    for changes in rejected:
        before = params(twin, 0)
        expect_revert(twin, owner, "set_market_params", 0, params(twin, 0, **changes), reason=reason)
        assert params(twin, 0) == before
    for changes in accepted:
        new = params(twin, 0, **changes)
        expect_ok(twin, owner, "set_market_params", 0, new)
        assert params(twin, 0) == new
    assert_roles_same(twin)  # the chain holds what the model holds, field by field


def test_set_market_params__feed_decimals__18_accepted_19_rejected(twin, owner):
    for decimals, reason in ((19, "params: feed decimals"), (18, None)):
        feed = deploy_feed(twin, owner, decimals, 80_000 * 10**decimals)
        if reason:
            expect_revert(twin, owner, "set_market_params", 0, params(twin, 0, feed=feed.address), reason=reason)
        else:
            expect_ok(twin, owner, "set_market_params", 0, params(twin, 0, feed=feed.address))
    assert_roles_same(twin)
    twin.assert_same()


def test_set_market_params__stranger__reverts_not_owner(twin, stranger):
    expect_revert(twin, stranger, "set_market_params", 0, params(twin, 0, liq_fee=0),
                  reason="ownable: caller is not the owner")
    assert_roles_same(twin)


def test_set_market_params__unknown_market__reverts(twin, owner):
    for mid in (2, 2**256 - 1):
        expect_revert(twin, owner, "set_market_params", mid, params(twin, 0), reason="market: unknown")


def test_set_market_params__funding_accrues_under_the_old_parameters_first(twin, owner, trader, keeper):
    e = twin.p.engine
    expect_ok(twin, trader, "deposit", 10_000 * USDC)
    expect_order_ok(twin, trader, 0, WAD, 2_000 * USDC, 80_000 * WAD, keeper)
    opened = e.market_state(0)[6]
    k = params(twin, 0)[7]
    twin.advance(999)
    expect_ok(twin, owner, "set_market_params", 0, params(twin, 0, funding_k=0, max_funding_rate=0))
    st = e.market_state(0)
    dt = st[6] - opened
    assert dt == 1000
    # All long: the rate is k (clamped at max_rate = k); index += rate * price * dt / 1e18.
    assert st[5] == k * 80_000 * WAD * dt // WAD > 0
    twin.advance(5_000)
    expect_ok(twin, owner, "set_market_params", 0, params(twin, 0, funding_k=0, max_funding_rate=0))
    assert e.market_state(0)[5] == st[5]  # no funding at a zero rate
    twin.assert_same()


def test_set_market_params__pending_order__keeps_the_fees_of_its_request(twin, owner, trader, keeper):
    """The trading-fee rate and the execution fee are fixed into an order at
    request: a change before execution does not reprice it; the next order
    pays the new ones."""
    expect_ok(twin, trader, "deposit", 10_000 * USDC)
    ok, reason, oid = twin.request(trader, 0, WAD, 1_000 * USDC, 80_000 * WAD)
    assert ok, reason
    old_fee, old_exec = 40 * USDC, 1 * USDC  # 5 bps of 80,000; the devnet execution fee
    assert free(twin, trader) == 10_000 * USDC - 1_000 * USDC - old_fee - old_exec
    expect_ok(twin, owner, "set_market_params", 0, params(twin, 0, trading_fee=10**15, execution_fee=3 * USDC))
    twin.restamp(0, keeper)
    assert twin.execute(keeper, oid) == ("executed", None)
    assert events(twin, "PositionOpened")[-1]["fee"] == old_fee
    assert free(twin, keeper) == old_exec
    assert free(twin, trader) == 10_000 * USDC - 1_000 * USDC - old_fee - old_exec
    # A new order: 10 bps (80 USDC on 1 BTC) and 3 USDC to the executor.
    expect_order_ok(twin, trader, 0, WAD, 1_000 * USDC, 80_000 * WAD, keeper)
    assert events(twin, "PositionOpened")[-1]["fee"] == ceil_div(ceil_div(WAD * 80_000 * WAD, SCALE) * 10**15, WAD)
    assert events(twin, "PositionOpened")[-1]["fee"] == 80 * USDC
    assert free(twin, keeper) == old_exec + 3 * USDC
    assert free(twin, trader) == 10_000 * USDC - 2_000 * USDC - old_fee - old_exec - 80 * USDC - 3 * USDC
    twin.assert_same()


def test_set_market_params__cap_below_open_interest__blocks_new_risk_not_exits(twin, owner, trader, keeper):
    expect_ok(twin, trader, "deposit", 10_000 * USDC)
    expect_order_ok(twin, trader, 0, 2 * WAD, 4_000 * USDC, 80_000 * WAD, keeper)
    expect_ok(twin, owner, "set_market_params", 0, params(twin, 0, max_open_interest=WAD))
    expect_order_refused(twin, trader, 0, 1, 4_000 * USDC, 80_000 * WAD, keeper,
                         reason="market: open interest cap", at="execution")
    expect_order_ok(twin, trader, 0, -2 * WAD, 0, 0, keeper)
    assert position(twin, trader)[0] == 0
    twin.assert_same()


def test_set_market_params__broken_feed__can_be_replaced(twin, owner, trader, keeper):
    """A feed that answers 0 is replaced: funding for the gap accrues under
    the old funding parameters at the new feed's price, and a close order
    that could not execute on the broken feed (it stayed pending) executes
    on the new one."""
    no_fallback(twin, owner)
    expect_ok(twin, trader, "deposit", 10_000 * USDC)
    expect_order_ok(twin, trader, 0, WAD, 2_000 * USDC, 80_000 * WAD, keeper)
    set_round(twin, 0, owner, round_id=9, answer=0, started_at=0, updated_at=0, answered_in_round=9)
    ok, reason, close = twin.request(trader, 0, -WAD, 0, 0)  # the request reads no price
    assert ok, reason
    assert twin.execute(keeper, close) == ("reverted", "bad price")  # on both; the order stays
    e = twin.p.engine
    assert e.get_order(close).size_delta == -WAD
    before = e.market_state(0)
    twin.advance(3_600)
    replacement = deploy_feed(twin, owner, 8, 79_000 * 10**8)  # a round after the request
    expect_ok(twin, owner, "set_market_params", 0,
              params(twin, 0, feed=replacement.address, funding_k=0, max_funding_rate=0))
    after = e.market_state(0)
    assert after[5] != before[5], "funding for the gap accrued under the old (non-zero) funding parameters"
    assert twin.execute(keeper, close) == ("executed", None)
    assert events(twin, "PositionClosed")[-1]["price"] == 79_000 * WAD
    assert position(twin, trader)[0] == 0
    twin.assert_same()
def test_set_market_params__broken_feed_kept__still_bad_price(twin, owner, trader):
    """Keeping the broken feed changes nothing: funding cannot accrue without
    a price. Invalid parameters are named before the price is read."""
    no_fallback(twin, owner)
    before = params(twin, 0)
    set_round(twin, 0, owner, round_id=9, answer=0, started_at=0, updated_at=0, answered_in_round=9)
    assert twin.act(owner, "set_market_params", 0, params(twin, 0, liq_fee=0)) == (False, "bad price")
    assert twin.act(owner, "set_market_params", 0, params(twin, 0, imf=WAD + 1)) == (False, "params: imf")
    assert params(twin, 0) == before
    # a valid answer again, so that the comparison's views can price the market
    set_round(twin, 0, owner, round_id=10, answer=80_000 * 10**8, started_at=1, updated_at=1, answered_in_round=10)
    twin.assert_same()
