"""PerpEngine.set_pauser, pause and unpause: a pause stops new risk only.
Risk-adding orders (opens, increases, margin removals) cannot be requested
while paused, and one requested before the pause is cancelled at execution;
reduces and closes are requested and executed as usual."""

from tests.unit.perp_engine.helpers import (
    USDC, WAD, ZERO, assert_roles_same, btc, events, execution_fee, expect_ok, expect_order_ok, expect_order_refused,
    expect_revert, free, position)

PRICE = 80_000 * WAD


def test_set_pauser__stranger__reverts_not_owner(twin, stranger):
    expect_revert(twin, stranger, "set_pauser", stranger, reason="ownable: caller is not the owner")
    assert twin.p.engine.pauser() == ZERO


def test_set_pauser__owner__names_the_pauser_and_logs(twin, owner, pauser):
    expect_ok(twin, owner, "set_pauser", pauser)
    assert twin.p.engine.pauser() == pauser.address
    assert twin.w.events[-1] == ("PauserSet", {"pauser": pauser.address})
    assert_roles_same(twin)


def test_pause__stranger__reverts_not_pauser(twin, owner, pauser, stranger):
    expect_ok(twin, owner, "set_pauser", pauser)
    expect_revert(twin, stranger, "pause", reason="engine: not pauser")
    assert not twin.p.engine.paused()


def test_pause__pauser_or_owner__pauses(twin, owner, pauser):
    expect_ok(twin, owner, "set_pauser", pauser)
    for who in (pauser, owner):
        expect_ok(twin, who, "pause")
        assert twin.p.engine.paused()
        expect_revert(twin, who, "pause", reason="pausable: contract is paused")
        expect_ok(twin, who, "unpause")
        assert not twin.p.engine.paused()
    assert_roles_same(twin)


def test_unpause__stranger__reverts_not_pauser(twin, owner, stranger):
    expect_ok(twin, owner, "pause")
    expect_revert(twin, stranger, "unpause", reason="engine: not pauser")
    assert twin.p.engine.paused()


def test_unpause__not_paused__reverts(twin, owner):
    expect_revert(twin, owner, "unpause", reason="pausable: contract is not paused")


def test_set_pauser__replaced__old_pauser_loses_the_right(twin, owner, pauser, stranger):
    expect_ok(twin, owner, "set_pauser", pauser)
    expect_ok(twin, owner, "set_pauser", stranger)
    expect_revert(twin, pauser, "pause", reason="engine: not pauser")
    expect_ok(twin, stranger, "pause")


PAUSED = "pausable: contract is paused"


def test_pause__risk_adding_requests__revert_until_unpaused(twin, owner, trader, keeper):
    expect_ok(twin, trader, "deposit", 10_000 * USDC)
    expect_order_ok(twin, trader, 0, WAD, 2_000 * USDC, PRICE, keeper)
    expect_ok(twin, owner, "pause")
    count = twin.p.engine.order_count()
    for mid, size, margin, acceptable in (
            (0, WAD, 2_000 * USDC, PRICE),        # an increase
            (0, WAD, 0, PRICE),                   # an increase with no margin
            (1, -WAD, 100 * USDC, 0),             # a new position
            (0, 0, -100 * USDC, 0)):              # a margin removal
        expect_order_refused(twin, trader, mid, size, margin, acceptable, keeper, reason=PAUSED, at="request")
    assert twin.p.engine.order_count() == count
    expect_ok(twin, owner, "unpause")
    free0 = free(twin, trader)
    expect_order_ok(twin, trader, 0, 0, -100 * USDC, 0, keeper)
    owed = events(twin, "MarginChanged")[-1]["funding_paid"]  # the seconds of funding since the open
    assert owed > 0
    assert position(twin, trader)[2] == 2_000 * USDC - owed - 100 * USDC
    assert free(twin, trader) == free0 + 100 * USDC - execution_fee(twin)
    expect_order_ok(twin, trader, 0, WAD, 2_000 * USDC, PRICE, keeper)
    assert position(twin, trader)[0] == 2 * WAD
    twin.assert_same()


def test_pause__risk_adding_orders_requested_before__cancelled_paused_at_execution(
        twin, owner, trader, other_trader, keeper):
    """Three risk-adding orders pending at the pause, each cancelled at
    execution: one order per account and market, so the margin removal in
    market 0 is the other trader's."""
    e = twin.p.engine
    fee = execution_fee(twin)
    expect_ok(twin, trader, "deposit", 10_000 * USDC)
    expect_ok(twin, other_trader, "deposit", 10_000 * USDC)
    expect_order_ok(twin, trader, 0, WAD, 2_000 * USDC, PRICE, keeper)
    expect_order_ok(twin, other_trader, 0, WAD, 2_000 * USDC, PRICE, keeper)
    free0, other0, paid0 = free(twin, trader), free(twin, other_trader), free(twin, keeper)
    pos0, other_pos0 = position(twin, trader), position(twin, other_trader)
    ok, _, increase = twin.request(trader, 0, WAD, 2_000 * USDC, PRICE)
    ok2, _, removal = twin.request(other_trader, 0, 0, -100 * USDC, 0)
    ok3, _, short = twin.request(trader, 1, -WAD, 100 * USDC, 0)
    assert ok and ok2 and ok3
    expect_ok(twin, owner, "pause")
    twin.restamp(0, keeper)
    twin.restamp(1, keeper)
    for oid in (increase, removal, short):
        assert twin.execute(keeper, oid) == ("cancelled", PAUSED)
        assert int(e.get_order(oid).account, 16) == 0
    # Every escrow back less the execution fees, which the keeper earned.
    assert free(twin, trader) == free0 - 2 * fee
    assert free(twin, other_trader) == other0 - fee
    assert free(twin, keeper) == paid0 + 3 * fee
    assert position(twin, trader) == pos0 and position(twin, trader, 1)[0] == 0
    assert position(twin, other_trader) == other_pos0
    twin.assert_same()


def test_pause__deposit_withdraw_add_margin_reduce_orders_and_liquidate_still_work(
        twin, owner, trader, other_trader, keeper):
    e = twin.p.engine
    expect_ok(twin, trader, "deposit", 10_000 * USDC)
    expect_order_ok(twin, trader, 0, WAD, 2_000 * USDC, PRICE, keeper)
    expect_ok(twin, other_trader, "deposit", 10_000 * USDC)
    expect_order_ok(twin, other_trader, 0, WAD, 1_000 * USDC, PRICE, keeper)
    # A reduce requested before the pause executes during it.
    ok, reason, early = twin.request(trader, 0, -WAD // 4, 0, 0)
    assert ok, reason
    expect_ok(twin, owner, "pause")

    expect_ok(twin, trader, "deposit", 1_000 * USDC)
    expect_ok(twin, trader, "withdraw", 500 * USDC)
    # While the reduce waits, add_margin on that position is refused (one
    # pending order per account and market), paused or not.
    expect_revert(twin, trader, "add_margin", 0, 300 * USDC, reason="order: pending")
    assert position(twin, trader)[2] == 2_000 * USDC
    twin.restamp(0, keeper)
    assert twin.execute(keeper, early) == ("executed", None)
    assert position(twin, trader)[0] == WAD * 3 // 4
    # A quarter of the margin net of the funding settled was released.
    owed = events(twin, "PositionClosed")[-1]["funding_paid"]
    left = 2_000 * USDC - owed - (2_000 * USDC - owed) // 4
    assert position(twin, trader)[2] == left
    expect_ok(twin, trader, "add_margin", 0, 300 * USDC)
    assert position(twin, trader)[2] == left + 300 * USDC
    expect_order_ok(twin, trader, 0, -WAD // 4, 0, 0, keeper)
    # A reduce larger than what is left closes it in full.
    expect_order_ok(twin, trader, 0, -WAD, 0, 0, keeper)
    assert position(twin, trader)[0] == 0
    twin.assert_same()

    # A 1% fall puts the 80x long under maintenance: liquidation works paused.
    twin.set_price(0, btc(79_200), owner)
    assert e.is_liquidatable(other_trader, 0)
    expect_ok(twin, keeper, "liquidate", other_trader, 0, [])
    assert position(twin, other_trader)[0] == 0
    expect_ok(twin, trader, "withdraw", e.free_collateral(trader))
    assert e.free_collateral(trader) == 0
    twin.assert_same()
