"""Margin-removal ORDERS (request_order with size_delta 0 and a negative
margin_delta; execute_order at a later round): the request-time reverts, the
cancellations at execution with their reasons, and the initial-margin
boundary to the unit, with a profit (which does not count) and a loss (which
does). Long 1 BTC at 80,000 with 2,000 USDC, funding off; imf 1%, min margin
10. A removal escrows only the 1 USDC execution fee, which the executor (the
keeper) earns whether the order executes or is cancelled.
"""

from tests.unit.perp_exits.helpers import (
    BTC, EXEC_FEE, USDC, WAD, assert_events_agree, cancelled, free, no_funding, ok, open_position, order, position,
    price, request_reverts, step,
)


def test_margin_removal_order__bad_requests__revert_at_request_with_their_reasons(twin, owner, trader):
    no_funding(twin, owner)
    open_position(twin, trader, WAD, 2_000 * USDC)
    for mid, margin_, reason in (
        (2, -1, "market: unknown"),
        (BTC, 0, "position: zero size"),  # size 0 needs margin out
        (BTC, -(2**127), "order: margin too large"),
    ):
        request_reverts(twin, trader, 0, margin_, 0, reason, mid=mid)
    request_reverts(twin, owner, 0, -1, 0, "position: none")
    ok(twin, owner, "pause")  # removing margin adds risk: refused at request while paused
    request_reverts(twin, trader, 0, -1, 0, "pausable: contract is paused")
    assert position(twin, trader)[2] == 2_000 * USDC
    step(twin)


def test_margin_removal_order__failing_checks_at_execution__cancelled_with_their_reasons(
        twin, owner, trader, keeper):
    # Each cancellation costs the trader the execution fee (escrow 1, refund
    # 0), pays it to the keeper, and leaves the margin at 2,000.
    no_funding(twin, owner)
    open_position(twin, trader, WAD, 2_000 * USDC)
    for amount in (1_990 * USDC + 1, 2**127 - 1):  # would leave under the 10 minimum
        before = (free(twin, trader), free(twin, keeper))
        n = len(twin.w.events)
        cancelled(twin, trader, 0, -amount, 0, "margin: insufficient")
        assert (free(twin, trader), free(twin, keeper)) == (before[0] - EXEC_FEE, before[1] + EXEC_FEE)
        assert assert_events_agree(twin, "MarginChanged", n) == []
        assert position(twin, trader)[2] == 2_000 * USDC
    # Requested before the pause, executed after it: cancelled. A stale
    # feed first keeps it pending (the execution reverts).
    before = free(twin, trader)
    ok_, reason, oid = twin.request(trader, BTC, 0, -USDC, 0)
    assert ok_, reason
    twin.advance(3_600)
    assert twin.execute(keeper, oid) == ("reverted", "stale price")
    ok(twin, owner, "pause")
    price(twin, owner, 80_000)
    assert twin.execute(keeper, oid) == ("cancelled", "pausable: contract is paused")
    assert free(twin, trader) == before - EXEC_FEE
    assert position(twin, trader)[2] == 2_000 * USDC
    step(twin)


def test_margin_removal_order__initial_margin_boundary__profit_ignored_and_loss_counted(
        twin, owner, trader, other_trader, keeper):
    no_funding(twin, owner)
    open_position(twin, trader, WAD, 2_000 * USDC)
    open_position(twin, other_trader, WAD, 2_000 * USDC)
    # At 82,000 the requirement is 820; the 2,000 of profit does not count,
    # so exactly 1,180 may leave. The unit more is cancelled (free -1); the
    # 1,180 executes (free +1,180 - 1).
    price(twin, owner, 82_000)
    before = free(twin, trader)
    cancelled(twin, trader, 0, -(1_180 * USDC + 1), 0, "margin: below initial")
    assert free(twin, trader) == before - EXEC_FEE
    n = len(twin.w.events)
    order(twin, trader, 0, -1_180 * USDC, 0)
    (changed,) = assert_events_agree(twin, "MarginChanged", n)
    assert (changed["delta"], changed["funding_paid"]) == (-1_180 * USDC, 0)
    assert free(twin, trader) - before == 1_180 * USDC - 2 * EXEC_FEE
    assert position(twin, trader)[2] == 820 * USDC
    step(twin)
    # At 79,000 the requirement is 790 and the 1,000 loss counts: the margin
    # must stay at 1,790, so 210 may leave.
    price(twin, owner, 79_000)
    before = (free(twin, other_trader), free(twin, keeper))
    cancelled(twin, other_trader, 0, -(210 * USDC + 1), 0, "margin: below initial")
    order(twin, other_trader, 0, -210 * USDC, 0)
    assert (free(twin, other_trader) - before[0], free(twin, keeper) - before[1]) == (
        210 * USDC - 2 * EXEC_FEE, 2 * EXEC_FEE)
    assert position(twin, other_trader)[2] == 1_790 * USDC
    assert not twin.p.engine.is_liquidatable(other_trader, BTC)
    step(twin)
