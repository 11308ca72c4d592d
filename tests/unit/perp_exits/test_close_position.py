"""Reduce and close ORDERS (request_order with a size against the position,
margin 0; execute_order at a later round): the request-time reverts, every
cancellation reason at execution, a partial then full close paid to the
unit, an oversized reduce that executes as a full close (also after ADL
shrank the position under it), and a reduce whose position was liquidated
before it executed. One pending order per account and market: a second
request while one waits reverts 'order: pending'.

Funding off; trading fee 5 bp (30% of it to the fund); execution fee 1 USDC,
escrowed at request and paid to the executor (the keeper) whether the order
executes or is cancelled. A reduce escrows only the execution fee: its
trading fee comes out of the position's payout.
"""

from tests.unit.perp_exits.helpers import (
    BTC, EXEC_FEE, USDC, WAD, assert_events_agree, balance, cancelled, close, free, no_funding, ok, open_position,
    order, position, price, request_reverts, step,
)


def _request(twin, who, size, acceptable=0):
    """A reduce request that must be accepted; its order id."""
    ok_, reason, oid = twin.request(who, BTC, size, 0, acceptable)
    assert ok_, reason
    return oid


def test_reduce_order__bad_requests__revert_at_request_with_their_reasons(twin, owner, trader, other_trader):
    no_funding(twin, owner)
    open_position(twin, trader, WAD, 2_000 * USDC)
    # other_trader deposits exactly margin + fee (40) + execution fee (1):
    # nothing is left free for the next order's execution fee.
    open_position(twin, other_trader, -WAD, 2_000 * USDC, deposit=2_041 * USDC)
    assert free(twin, other_trader) == 0
    for mid, size, margin_, acceptable, reason in (
        (2, -WAD, 0, 0, "market: unknown"),
        (BTC, -(2**120), 0, 0, "position: size too large"),
        (BTC, -WAD, 1, 0, "order: margin on reduce"),
        (BTC, -WAD, 0, 2**128, "order: price too large"),
    ):
        request_reverts(twin, trader, size, margin_, acceptable, reason, mid=mid)
    # A close needs the execution fee free: 1 USDC more makes it go through.
    request_reverts(twin, other_trader, WAD, 0, 2**128 - 1, "collateral: insufficient")
    ok(twin, other_trader, "deposit", EXEC_FEE)
    close(twin, other_trader, WAD)
    assert position(twin, other_trader) == (0, 0, 0, 0, 0, 0)
    # Margin 2,000 less the 40 close fee, at an unchanged price.
    assert free(twin, other_trader) == 1_960 * USDC
    step(twin)


def test_reduce_order__failing_checks_at_execution__cancelled_with_their_reasons_and_the_fee_to_the_executor(
        twin, owner, trader, other_trader, keeper):
    # Long and short 1 BTC at 80,000 with 2,000 each; each cancellation costs
    # its requester the 1 USDC execution fee (the rest of the escrow is 0)
    # and pays it to the keeper; the position is untouched.
    no_funding(twin, owner)
    open_position(twin, trader, WAD, 2_000 * USDC)
    open_position(twin, other_trader, -WAD, 2_000 * USDC)
    price(twin, owner, 80_500)
    cases = [
        (trader, -WAD, 80_500 * WAD + 1, "position: price below acceptable"),
        (other_trader, WAD, 80_500 * WAD - 1, "position: price above acceptable"),
        # 0.996 of 1 BTC leaves 0.004 BTC with 8 USDC margin, below the 10 minimum.
        (trader, -996 * 10**15, 0, "position: dust remainder"),
    ]
    for who, size, acceptable, reason in cases:
        before = (free(twin, who), free(twin, keeper), position(twin, who))
        n = len(twin.w.events)
        cancelled(twin, who, size, 0, acceptable, reason)
        assert (free(twin, who), free(twin, keeper), position(twin, who)) == (
            before[0] - EXEC_FEE, before[1] + EXEC_FEE, before[2])
        assert assert_events_agree(twin, "PositionClosed", n) == []
    # Below maintenance (equity 300 < 391.5 at 78,300) only liquidation may close it.
    price(twin, owner, 78_300)
    before = free(twin, trader)
    cancelled(twin, trader, -WAD, 0, 0, "position: liquidatable")
    assert free(twin, trader) == before - EXEC_FEE
    assert position(twin, trader)[0] == WAD
    step(twin)


def test_reduce_order__no_later_round_then_a_stale_one__stays_pending_until_a_fresh_later_round(
        twin, owner, trader, keeper):
    # The long closes at an unchanged 80,000: 2,000 margin less the 40 fee
    # come back; the execution fee is the only other cost.
    no_funding(twin, owner)
    open_position(twin, trader, WAD, 2_000 * USDC)
    before = free(twin, trader)
    oid = _request(twin, trader, -WAD)
    assert free(twin, trader) == before - EXEC_FEE
    assert twin.execute(keeper, oid) == ("reverted", "order: no later price")
    twin.advance(3_600)
    assert twin.execute(keeper, oid) == ("reverted", "stale price")
    assert twin.p.engine.get_order(oid).account == trader.address
    step(twin)
    price(twin, owner, 80_000)
    assert twin.execute(keeper, oid) == ("executed", None)
    assert free(twin, trader) - before == 1_960 * USDC - EXEC_FEE
    assert position(twin, trader) == (0, 0, 0, 0, 0, 0)
    step(twin)


def test_reduce_order__partial_then_full_while_paused__releases_margin_pro_rata_and_pays_pnl_less_fees(
        twin, owner, trader, keeper):
    # Long 1 BTC at 80,000 with 2,000; at 81,000 reduce 0.4: margin 800 +
    # PnL 400 - fee 0.4 * 81,000 * 0.0005 = 16.2 -> payout 1,183.8, and the
    # execution fee 1 from the escrow: free +1,182.8. 0.6 BTC and 1,200 margin
    # stay. Then the rest: 1,200 + 600 - 24.3 = 1,775.7, free +1,774.7.
    # Together 2,957.5 = 2,000 + 1,000 - 40.5 trading fees - 2 execution fees.
    # The fund gets 30% of 40.5 = 12.15; the vault pays 1,000 and keeps 28.35.
    no_funding(twin, owner)
    open_position(twin, trader, WAD, 2_000 * USDC)
    price(twin, owner, 81_000)
    ok(twin, owner, "pause")  # reduces are requested and executed while paused
    fund, vault = twin.p.insurance_fund, twin.p.vault
    before = (free(twin, trader), free(twin, keeper), balance(twin, fund), balance(twin, vault))
    n = len(twin.w.events)
    close(twin, trader, -4 * 10**17, acceptable=81_000 * WAD)  # the acceptable price itself executes
    assert free(twin, trader) - before[0] == 1_182_800_000
    (closed,) = assert_events_agree(twin, "PositionClosed", n)
    assert (closed["size_closed"], closed["pnl"], closed["fee"], closed["payout"]) == (
        4 * 10**17, 400 * USDC, 16_200_000, 1_183_800_000)
    (executed,) = assert_events_agree(twin, "OrderExecuted", n)
    assert executed["price"] == 81_000 * WAD
    assert position(twin, trader)[:3] == (6 * 10**17, 80_000 * WAD, 1_200 * USDC)
    step(twin)
    close(twin, trader, -6 * 10**17)
    after = (free(twin, trader), free(twin, keeper), balance(twin, fund), balance(twin, vault))
    assert [a - b for a, b in zip(after, before)] == [2_957_500_000, 2 * EXEC_FEE, 12_150_000, -971_650_000]
    assert position(twin, trader) == (0, 0, 0, 0, 0, 0)
    step(twin)


def test_reduce_order__larger_than_the_position__executes_as_a_full_close(twin, owner, trader):
    # Reduce 2 BTC of a 1 BTC long at 81,000: it closes the 1 BTC,
    # 2,000 + 1,000 - 40.5 = 2,959.5, less the execution fee: free +2,958.5.
    no_funding(twin, owner)
    open_position(twin, trader, WAD, 2_000 * USDC)
    price(twin, owner, 81_000)
    before = free(twin, trader)
    n = len(twin.w.events)
    close(twin, trader, -2 * WAD)
    (closed,) = assert_events_agree(twin, "PositionClosed", n)
    assert (closed["size_closed"], closed["pnl"], closed["fee"], closed["payout"]) == (
        WAD, 1_000 * USDC, 40_500_000, 2_959_500_000)
    assert free(twin, trader) - before == 2_958_500_000
    assert position(twin, trader) == (0, 0, 0, 0, 0, 0)
    step(twin)


def test_reduce_order__larger_than_what_another_reduce_left__closes_the_rest(twin, owner, trader, keeper):
    # A 1 BTC long at 81,000: a 0.4 BTC reduce executes as above (payout
    # 1,183.8); a 1 BTC reduce requested then finds 0.6 BTC and closes it
    # (1,775.7). Free: 2,959.5 - 2 execution fees = 2,957.5. Both pending at
    # once is no longer possible (one pending order per account and market):
    # the second request reverts 'order: pending' while the first waits, and
    # is accepted once it has executed.
    e = twin.p.engine
    no_funding(twin, owner)
    open_position(twin, trader, WAD, 2_000 * USDC)
    price(twin, owner, 81_000)
    before = free(twin, trader)
    part = _request(twin, trader, -4 * 10**17)
    count = e.order_count()
    request_reverts(twin, trader, -WAD, 0, 0, "order: pending")
    assert e.order_count() == count and e.pending_order(trader, BTC) == part
    assert free(twin, trader) == before - EXEC_FEE
    twin.restamp(BTC, owner)
    assert twin.execute(keeper, part) == ("executed", None)
    assert e.pending_order(trader, BTC) == 0
    assert position(twin, trader)[0] == 6 * 10**17
    whole = _request(twin, trader, -WAD)
    twin.restamp(BTC, owner)
    n = len(twin.w.events)
    assert twin.execute(keeper, whole) == ("executed", None)
    (closed,) = assert_events_agree(twin, "PositionClosed", n)
    assert (closed["size_closed"], closed["payout"]) == (6 * 10**17, 1_775_700_000)
    assert free(twin, trader) - before == 2_957_500_000
    assert position(twin, trader) == (0, 0, 0, 0, 0, 0)
    step(twin)


def test_reduce_order__larger_than_what_adl_left__closes_the_rest(twin, owner, trader, other_trader, keeper):
    # What now shrinks a position under a pending reduce is others: here ADL.
    # Fees and funding off. The trader is long 1 BTC at 80,000 with 1,000;
    # other_trader short 2 BTC at 80,000 with 8,000 (deposit 16,000: free
    # 7,999) asks to buy back 1.5 BTC (free 7,998). At 78,000 the long's
    # equity is -1,000: bad debt 1,000, the fund is empty, so ADL closes 1 BTC
    # of the short at the bankruptcy price 79,000 (haircut 1,000): 4,000
    # margin released + 1,000 PnL = 5,000. The reduce then finds 1 BTC and
    # closes it at 78,000: 4,000 margin + 2,000 PnL = 6,000.
    e = twin.p.engine
    no_funding(twin, owner, trading_fee=0)
    open_position(twin, other_trader, -2 * WAD, 8_000 * USDC)
    open_position(twin, trader, WAD, 1_000 * USDC)
    assert free(twin, other_trader) == 7_999 * USDC
    buy_back = _request(twin, other_trader, 15 * 10**17, acceptable=2**128 - 1)
    assert free(twin, other_trader) == 7_998 * USDC
    price(twin, owner, 78_000)
    assert balance(twin, twin.p.insurance_fund) == 0
    n = len(twin.w.events)
    ok(twin, keeper, "liquidate", trader, BTC, [other_trader])
    (adl,) = assert_events_agree(twin, "AutoDeleveraged", n)
    assert (adl["size"], adl["haircut"], adl["bankruptcy_price"]) == (-WAD, 1_000 * USDC, 79_000 * WAD)
    assert position(twin, other_trader)[:3] == (-WAD, 80_000 * WAD, 4_000 * USDC)
    assert free(twin, other_trader) == 12_998 * USDC
    assert e.pending_order(other_trader, BTC) == buy_back
    step(twin)
    twin.restamp(BTC, owner)
    n = len(twin.w.events)
    assert twin.execute(keeper, buy_back) == ("executed", None)
    (closed,) = assert_events_agree(twin, "PositionClosed", n)
    assert (closed["size_closed"], closed["pnl"], closed["fee"], closed["payout"]) == (
        -WAD, 2_000 * USDC, 0, 6_000 * USDC)
    assert position(twin, other_trader) == (0, 0, 0, 0, 0, 0)
    # 16,000 in; the short made 4,000 less the 1,000 haircut; two execution fees.
    assert free(twin, other_trader) == 18_998 * USDC
    step(twin)


def test_reduce_order__position_liquidated_before_execution__cancelled_position_none(
        twin, owner, trader, keeper):
    # Long 1 BTC at 80,000 with 1,000 (deposit 2,000: free 2,000 - 1,000 - 40
    # - 1 = 959). A reduce is requested (free 958). At 79,300 the equity is
    # 300 < 396.5 maintenance: liquidation takes it all as the penalty
    # (min(396.5, 300)), 20% = 60 to the keeper. While the reduce waits the
    # trader cannot open the other side in that market ('order: pending'), so
    # a reduce finding a position turned short (cancelled 'position: none' in
    # PerpOrders) is no longer reachable through his own orders: the check
    # stays as a defensive one. The reduce then finds no position: cancelled,
    # refund escrow 1 - fee 1 = 0. Only then does the short go through.
    no_funding(twin, owner)
    open_position(twin, trader, WAD, 1_000 * USDC)
    assert free(twin, trader) == 959 * USDC
    reduce = _request(twin, trader, -WAD)
    assert free(twin, trader) == 958 * USDC
    price(twin, owner, 79_300)
    keeper_before = free(twin, keeper)
    ok(twin, keeper, "liquidate", trader, BTC, [])
    assert free(twin, keeper) - keeper_before == 60 * USDC
    assert position(twin, trader) == (0, 0, 0, 0, 0, 0)
    assert free(twin, trader) == 958 * USDC
    request_reverts(twin, trader, -5 * 10**17, 500 * USDC, 79_300 * WAD, "order: pending")
    assert free(twin, trader) == 958 * USDC
    assert twin.execute(keeper, reduce) == ("cancelled", "position: none")
    assert free(twin, trader) == 958 * USDC
    assert twin.p.engine.pending_order(trader, BTC) == 0
    step(twin)
    # Short 0.5 BTC at 79,300 with 500: fee 19.825 + execution fee 1.
    order(twin, trader, -5 * 10**17, 500 * USDC, 79_300 * WAD)
    assert free(twin, trader) == 437_175_000
    assert position(twin, trader) == (-5 * 10**17, 79_300 * WAD, 500 * USDC, position(twin, trader)[3], 0, 0)
    assert free(twin, keeper) - keeper_before == 60 * USDC + 2 * EXEC_FEE
    step(twin)
