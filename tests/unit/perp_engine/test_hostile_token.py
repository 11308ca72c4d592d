"""A second protocol, deployed by hand, whose collateral is
contracts/mocks/HostileToken.vy: fee-on-transfer, false-returning and
re-entering. Each misbehaviour reverts the outer call and changes nothing,
with one difference for orders: a transfer that returns false fails the
engine's check with a reason ("collateral: transfer failed"), and a failed
check with a reason cancels an order at execution instead of reverting it
(docs/orders.md); a re-entering token, refused by the lock without a reason,
reverts the execution and the order stays pending.

There is no model of a hostile token: "nothing changed" is checked against
the chain's own state before the call (every value `Twin` compares)."""

import pytest
from ape import chain, project
from ape.exceptions import ContractLogicError

from scripts import config as cfg
from scripts.deploy import Protocol, engine_at
from scripts.governance import ZERO_ADDRESS, governed, hand_over
from scripts.lp import deposit_through_epoch, later_rounds
from scripts.twin import read_state, revert_reason
from tests.unit.perp_engine.helpers import MAX_UINT, USDC, WAD

NORMAL, FEE, FALSE, REENTER = 0, 1, 2, 3


def deploy_hostile_protocol(owner):
    """deploy_protocol's wiring, with HostileToken(6) as collateral and one
    BTC-PERP market (without funding) on a fresh mock feed."""
    token = owner.deploy(project.HostileToken, 6)
    feed = owner.deploy(project.MockAggregator, 8, 80_000 * 10**8)
    exits = owner.deploy(project.PerpExits, token)
    orders = owner.deploy(project.PerpOrders, token)
    admin = owner.deploy(project.PerpAdmin, token)
    engine = owner.deploy(project.PerpEngine, token, exits, orders, admin)
    vault = owner.deploy(project.LiquidityVault, token, engine)
    fund = owner.deploy(project.InsuranceFund, token, engine)
    engine.initialize(vault, fund, sender=owner)
    # No funding: the views "nothing changed" compares must not move with the clock.
    market = dict(cfg.load("local")["markets"][0], funding_k_bps_per_hour=0, max_funding_bps_per_hour=0)
    engine.add_market(cfg.market_params(market, feed.address, 6).as_tuple(), sender=owner)
    # owned by a timelock, as deploy_protocol leaves every deployment
    timelock = owner.deploy(project.TimelockController, 0, [owner], [owner], ZERO_ADDRESS)
    hand_over(timelock, engine, vault, fund, owner, cfg.DEVNET_GOVERNANCE)
    return Protocol(engine=engine_at(engine.address), vault=vault, insurance_fund=fund, token=token,
                    feeds=[feed], exits=exits, orders=orders, admin=admin, timelock=timelock)


def later_round(p, owner, answer=80_000 * 10**8):
    """A new feed round, in a block a second later than the last: what an
    order requested before it (or a TP/SL set before it) waits for."""
    chain.pending_timestamp = chain.blocks.head.timestamp + 1
    p.feeds[0].set_answer(answer, sender=owner)


def request(p, owner, trader, size, margin, acceptable):
    """request_order, then a later round: the id of an order ready to execute."""
    chain.pending_timestamp = chain.blocks.head.timestamp + 1
    p.engine.request_order(0, size, margin, acceptable, sender=trader)
    oid = p.engine.order_count()
    later_round(p, owner)
    return oid


@pytest.fixture(scope="module")
def hostile(owner, trader, lp):
    """The hostile protocol with LP cash in the vault, 100 tokens in the fund
    and a trader holding 10,000 free and a 1 BTC long (an order the LP
    executed), all in normal mode."""
    p = deploy_hostile_protocol(owner)
    tok = p.token
    for who, amount in ((lp, 1_000_000 * USDC), (trader, 100_000 * USDC)):
        tok.mint(who, amount, sender=who)
        tok.approve(p.engine, MAX_UINT, sender=who)
        tok.approve(p.vault, MAX_UINT, sender=who)
    tok.mint(p.insurance_fund, 100 * USDC, sender=owner)
    deposit_through_epoch(p.vault, p.feeds, lp, 500_000 * USDC)
    p.engine.deposit(10_000 * USDC, sender=trader)
    p.engine.execute_order(request(p, owner, trader, WAD, 1_000 * USDC, 80_000 * WAD), sender=lp)
    assert p.engine.get_position(trader, 0)[0] == WAD
    # 10,000 less the margin, the 40 USDC fee and the 1 USDC execution fee
    assert p.engine.free_collateral(trader) == 8_959 * USDC
    return p


def state(p, accounts):
    s = read_state(p, [a.address for a in accounts])
    s["supply"] = p.token.totalSupply()
    s["allowances"] = tuple(p.token.allowance(a, spender) for a in accounts for spender in (p.engine, p.vault))
    return s


def reverts_and_changes_nothing(p, accounts, call, reason):
    """`call()` reverts with `reason` (None: no reason string, as the
    reentrancy lock gives) and leaves every compared value as it was."""
    before = state(p, accounts)
    with pytest.raises(ContractLogicError) as exc:
        call()
    assert revert_reason(exc.value) == reason
    assert state(p, accounts) == before


# ---------------------------------------------------------------- fee on transfer


def test_deposit__fee_on_transfer_token__reverts_balance_mismatch(hostile, trader, lp):
    p = hostile
    p.token.set_mode(FEE, sender=trader)
    reverts_and_changes_nothing(p, [trader, lp], lambda: p.engine.deposit(1_000 * USDC, sender=trader),
                                "collateral: balance mismatch")
    # Below 100 units the 1% fee rounds to nothing: the balance moves by the amount, and it is credited.
    free = p.engine.free_collateral(trader)
    p.engine.deposit(99, sender=trader)
    assert p.engine.free_collateral(trader) == free + 99


def _claimable_redemption_and_a_request(p, lp):
    """In normal mode: a settled redemption the LP can claim (withdraw and
    redeem move tokens out of the escrow) and a deposit request whose
    rounds are in (settle moves it into the vault)."""
    p.vault.requestRedeem(10**12, lp, lp, sender=lp)
    later_rounds(p.feeds, chain.blocks.head.timestamp, lp)
    p.vault.settle(sender=lp)
    receipt = p.vault.requestDeposit(1_000 * USDC, lp, lp, sender=lp)
    later_rounds(p.feeds, receipt.timestamp, lp)
    assert p.vault.maxWithdraw(lp) > 1_000 * USDC


def test_vault_deposit__fee_on_transfer_token__reverts_balance_mismatch(hostile, lp, trader):
    p = hostile
    p.token.set_mode(FEE, sender=lp)
    reverts_and_changes_nothing(p, [trader, lp], lambda: p.vault.requestDeposit(1_000 * USDC, lp, lp, sender=lp),
                                "vault: balance mismatch")


def _engine_call(p, owner, trader, lp, verb):
    """One token-moving engine verb as a zero-argument call. An order is
    requested (and a later round published) first: its execution, by the LP,
    is what moves tokens (fees and PnL between engine, vault and fund)."""
    e = p.engine
    if verb == "execute_open":
        oid = request(p, owner, trader, WAD, 1_000 * USDC, 80_000 * WAD)
        return lambda: e.execute_order(oid, sender=lp)
    if verb == "execute_close":
        oid = request(p, owner, trader, -WAD, 0, 0)
        return lambda: e.execute_order(oid, sender=lp)
    return {
        "deposit": lambda: e.deposit(1_000 * USDC, sender=trader),
        "withdraw": lambda: e.withdraw(1_000 * USDC, sender=trader),
    }[verb]


# ---------------------------------------------------------------- returns false


@pytest.mark.parametrize("verb", ["deposit", "withdraw"])
def test_engine__token_returning_false__reverts_transfer_failed(hostile, owner, trader, lp, verb):
    p = hostile
    call = _engine_call(p, owner, trader, lp, verb)
    p.token.set_mode(FALSE, sender=trader)
    reverts_and_changes_nothing(p, [trader, lp], call, "collateral: transfer failed")


@pytest.mark.parametrize("verb", ["execute_open", "execute_close"])
def test_execute_order__token_returning_false__cancelled_transfer_failed_no_token_moves(
        hostile, owner, trader, lp, verb):
    """The settlement's transfer fails the engine's check, which carries a
    reason: the order is cancelled with it. No token moves; the escrow comes
    back less the execution fee, which the executor (the LP) earns; the
    position is as it was."""
    p, e = hostile, hostile.engine
    free0, paid0 = e.free_collateral(trader), e.free_collateral(lp)
    call = _engine_call(p, owner, trader, lp, verb)
    oid = e.order_count()
    fee = e.get_order(oid).execution_fee
    assert fee == 1 * USDC
    p.token.set_mode(FALSE, sender=trader)
    before = state(p, [trader, lp])
    receipt = call()
    cancelled = [log for log in receipt.events if log.event_name == "OrderCancelled"]
    assert [(c.order_id, c.reason) for c in cancelled] == [(oid, "collateral: transfer failed")]
    after = state(p, [trader, lp])
    tokens = {k for k in before if isinstance(k, tuple) and k[0] == "token"}
    assert tokens and all(after[k] == before[k] for k in tokens)
    assert after["supply"] == before["supply"]
    assert after[("pos", trader.address, 0)] == before[("pos", trader.address, 0)]
    assert after[("state", 0)] == before[("state", 0)]
    assert ("order", oid) in before and ("order", oid) not in after
    assert e.free_collateral(trader) == free0 - fee
    assert e.free_collateral(lp) == paid0 + fee


def test_vault_and_fund__token_returning_false__revert_transfer_failed(hostile, owner, lp, trader):
    p = hostile
    _claimable_redemption_and_a_request(p, lp)
    p.token.set_mode(FALSE, sender=lp)
    reverts_and_changes_nothing(p, [trader, lp], lambda: p.vault.requestDeposit(1_000 * USDC, lp, lp, sender=lp),
                                "vault: transfer failed")
    reverts_and_changes_nothing(p, [trader, lp], lambda: p.vault.withdraw(1_000 * USDC, lp, lp, sender=lp),
                                "vault: transfer failed")
    reverts_and_changes_nothing(p, [trader, lp], lambda: p.vault.settle(sender=lp), "vault: transfer failed")
    reverts_and_changes_nothing(p, [trader, lp, owner],
                                lambda: governed(p.timelock, p.insurance_fund, "withdraw_surplus", owner,
                                                 10 * USDC, sender=owner),
                                "fund: transfer failed")


# ---------------------------------------------------------------- re-entering


@pytest.fixture
def reentering(hostile, owner, trader):
    """The token, in the middle of every transfer, calls engine.pause() as
    itself, and it is the engine's pauser: outside the engine's lock the
    call succeeds (the control below), inside it must not."""
    p = hostile
    governed(p.timelock, p.engine, "set_pauser", p.token, sender=owner)
    p.token.set_hook(p.engine, p.engine.pause.encode_input(), sender=trader)
    p.token.set_mode(REENTER, sender=trader)
    return p


def test_reentering_token__outside_the_engine__the_hook_runs(reentering, trader, lp):
    p = reentering
    assert not p.engine.paused()
    p.token.transfer(lp, 1, sender=trader)
    assert p.engine.paused()  # the hook is live: it pauses when nothing holds the lock


@pytest.mark.parametrize("verb", ["deposit", "withdraw", "execute_open", "execute_close"])
def test_reentering_token__inside_an_engine_call__outer_call_reverts_and_nothing_changes(
        reentering, owner, trader, lp, verb):
    """For an order's execution, "nothing changes" includes the order: the
    lock's refusal carries no reason, so it is not a cancellation and the
    order stays pending (state() compares pending orders)."""
    p, e = reentering, reentering.engine
    call = _engine_call(p, owner, trader, lp, verb)
    reverts_and_changes_nothing(p, [trader, lp], call, None)
    assert not e.paused()
    if verb.startswith("execute"):
        assert e.get_order(e.order_count()).account == trader.address
    # The token well-behaved, the same call goes through (the setup is real).
    p.token.set_mode(NORMAL, sender=trader)
    call()
    if verb.startswith("execute"):
        assert int(e.get_order(e.order_count()).account, 16) == 0
        assert e.get_position(trader, 0)[0] == (2 * WAD if verb == "execute_open" else 0)


@pytest.mark.parametrize("verb", ["liquidate", "execute_tp_sl"])
def test_reentering_token__inside_a_keeper_exit__outer_call_reverts_and_nothing_changes(
        hostile, owner, trader, lp, verb):
    """The keeper verbs run in PerpExits by delegatecall under the engine's
    lock: a token re-entering mid-settlement is refused there too. Then, the
    token well-behaved, the same call goes through (the setup is real)."""
    p, e = hostile, hostile.engine
    if verb == "execute_tp_sl":
        e.set_tp_sl(0, 80_100 * WAD, 0, sender=trader)
        later_round(p, owner, 80_200 * 10**8)  # triggered, and a round after the setting
        call = lambda: e.execute_tp_sl(trader, 0, sender=lp)  # noqa: E731
    else:
        p.feeds[0].set_answer(79_300 * 10**8, sender=owner)  # 1,000 margin, 700 lost: below maintenance
        assert e.is_liquidatable(trader, 0)
        call = lambda: e.liquidate(trader, 0, [], sender=lp)  # noqa: E731
    governed(p.timelock, e, "set_pauser", p.token, sender=owner)
    p.token.set_hook(e, e.pause.encode_input(), sender=trader)
    p.token.set_mode(REENTER, sender=trader)
    reverts_and_changes_nothing(p, [trader, lp], call, None)
    assert not e.paused()
    p.token.set_mode(NORMAL, sender=trader)
    call()
    assert e.get_position(trader, 0)[0] == 0


def test_reentering_token__reading_the_vault_mid_engine_call__reverts(hostile, owner, trader, lp):
    """Read-only reentrancy: the vault's valuation asks the engine for
    traders_claim, which must not answer while the engine is mid-call (here
    an open order's execution paying its fee to the vault)."""
    p = hostile
    call = _engine_call(p, owner, trader, lp, "execute_open")
    p.token.set_hook(p.vault, p.vault.totalAssets.encode_input(), sender=trader)
    p.token.set_mode(REENTER, sender=trader)
    p.token.transfer(lp, 1, sender=trader)  # control: readable outside the engine
    reverts_and_changes_nothing(p, [trader, lp], call, None)


def test_reentering_token__inside_a_vault_call__outer_call_reverts(hostile, trader, lp):
    p = hostile
    _claimable_redemption_and_a_request(p, lp)
    p.token.set_hook(p.vault, p.vault.totalAssets.encode_input(), sender=trader)
    p.token.set_mode(REENTER, sender=trader)
    reverts_and_changes_nothing(p, [trader, lp], lambda: p.vault.requestDeposit(1_000 * USDC, lp, lp, sender=lp), None)
    reverts_and_changes_nothing(p, [trader, lp], lambda: p.vault.withdraw(1_000 * USDC, lp, lp, sender=lp), None)
    reverts_and_changes_nothing(p, [trader, lp], lambda: p.vault.redeem(10**9, lp, lp, sender=lp), None)
    reverts_and_changes_nothing(p, [trader, lp], lambda: p.vault.settle(sender=lp), None)


def test_reentering_token__accepting_ownership_mid_engine_call__reverts(hostile, owner, trader, lp):
    """'# pragma nonreentrancy' applies per module: functions exported from
    snekmate's ownable_2step would take no lock, so PerpEngine defines
    transfer_ownership and accept_ownership itself (SPEC §7)."""
    p = hostile
    governed(p.timelock, p.engine, "transfer_ownership", p.token, sender=owner)
    p.token.set_hook(p.engine, p.engine.accept_ownership.encode_input(), sender=trader)
    p.token.set_mode(REENTER, sender=trader)
    reverts_and_changes_nothing(p, [trader, lp], lambda: p.engine.deposit(1_000 * USDC, sender=trader), None)
    assert p.engine.owner() == p.timelock.address
