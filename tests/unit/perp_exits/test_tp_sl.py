"""set_tp_sl and execute_tp_sl: validation reasons, triggers, the rule that
a trigger executes only at a price round later than the block in which it
was set ("tp_sl: no later price", and the take-profit trick it stops), the
two seed scenarios (TP at 84,000; SL at 78,000 with liquidation at 75,000),
and triggers cleared when the position closes.

The long used throughout: 1 BTC at 80,000 with 5,375 USDC margin, so its
liquidation price is (80,000 - 5,375) / 0.995 = 75,000 exactly. Funding is
off unless a test says otherwise, so every payout below is exact. It is
opened by order (executed by the keeper): trading fee 40 and execution fee 1.
"""

from tests.unit.perp_exits.helpers import (
    BTC, EXEC_FEE, USDC, WAD, assert_events_agree, balance, close, free, no_funding, ok, open_position, order,
    position, price, reverts, step,
)

MARGIN = 5_375 * USDC


def _long(twin, owner, who, **changes):
    no_funding(twin, owner, **changes)
    open_position(twin, who, WAD, MARGIN, deposit=10_000 * USDC)
    assert twin.p.engine.liquidation_price(who, BTC) == 75_000 * WAD


def test_set_tp_sl__long_orders_on_the_wrong_side_or_beyond_liquidation__revert(twin, owner, trader, stranger):
    _long(twin, owner, trader)
    for tp, sl, reason in (
        (80_000 * WAD, 0, "tp_sl: take profit on wrong side"),  # TP must be above entry
        (79_000 * WAD, 0, "tp_sl: take profit on wrong side"),
        (0, 80_000 * WAD, "tp_sl: stop loss on wrong side"),  # SL must be below entry
        (0, 75_000 * WAD, "tp_sl: stop beyond liquidation"),  # ... and above 75,000
        (0, 70_000 * WAD, "tp_sl: stop beyond liquidation"),
        (2**128, 0, "tp_sl: price too large"),
    ):
        reverts(twin, trader, "set_tp_sl", BTC, tp, sl, reason=reason)
    reverts(twin, stranger, "set_tp_sl", BTC, 84_000 * WAD, 0, reason="position: none")
    reverts(twin, trader, "set_tp_sl", 2, 84_000 * WAD, 0, reason="market: unknown")
    ok(twin, trader, "set_tp_sl", BTC, 80_000 * WAD + 1, 75_000 * WAD + 1)
    assert position(twin, trader)[4:] == (80_000 * WAD + 1, 75_000 * WAD + 1)
    step(twin)


def test_set_tp_sl__short_orders_mirrored__revert_on_the_wrong_side(twin, owner, trader):
    # Short 1 BTC at 80,000 with 4,420: liquidation at 84,420 / 1.005 = 84,000.
    no_funding(twin, owner)
    open_position(twin, trader, -WAD, 4_420 * USDC, deposit=10_000 * USDC)
    assert twin.p.engine.liquidation_price(trader, BTC) == 84_000 * WAD
    for tp, sl, reason in (
        (80_000 * WAD, 0, "tp_sl: take profit on wrong side"),  # TP must be below entry
        (0, 80_000 * WAD, "tp_sl: stop loss on wrong side"),  # SL must be above entry
        (0, 84_000 * WAD, "tp_sl: stop beyond liquidation"),  # ... and below 84,000
    ):
        reverts(twin, trader, "set_tp_sl", BTC, tp, sl, reason=reason)
    ok(twin, trader, "set_tp_sl", BTC, 80_000 * WAD - 1, 84_000 * WAD - 1)
    assert position(twin, trader)[4:] == (80_000 * WAD - 1, 84_000 * WAD - 1)
    step(twin)


def test_set_tp_sl__stale_price_and_pause__still_sets_orders(twin, owner, trader):
    # Orders are checked against entry and the stored-margin liquidation
    # price (SPEC's formula): no price is read, and pausing stops new risk only.
    _long(twin, owner, trader)
    twin.advance(3_601)
    ok(twin, owner, "pause")
    reverts(twin, trader, "set_tp_sl", BTC, 0, 75_000 * WAD, reason="tp_sl: stop beyond liquidation")
    ok(twin, trader, "set_tp_sl", BTC, 84_000 * WAD, 78_000 * WAD)
    assert position(twin, trader)[4:] == (84_000 * WAD, 78_000 * WAD)
    ok(twin, trader, "set_tp_sl", BTC, 0, 0)
    assert position(twin, trader)[4:] == (0, 0)
    step(twin)


def test_execute_tp_sl__price_short_of_either_trigger__reverts_not_triggered(twin, owner, trader, other_trader, keeper):
    _long(twin, owner, trader)
    open_position(twin, other_trader, WAD, MARGIN, deposit=10_000 * USDC)
    ok(twin, trader, "set_tp_sl", BTC, 84_000 * WAD, 78_000 * WAD)
    price(twin, owner, "83999.99999999")
    reverts(twin, keeper, "execute_tp_sl", trader, BTC, reason="not triggered")
    price(twin, owner, "78000.00000001")
    reverts(twin, keeper, "execute_tp_sl", trader, BTC, reason="not triggered")
    price(twin, owner, 78_000)
    reverts(twin, keeper, "execute_tp_sl", other_trader, BTC, reason="not triggered")  # no orders
    reverts(twin, keeper, "execute_tp_sl", keeper, BTC, reason="position: none")
    twin.advance(3_600)
    reverts(twin, keeper, "execute_tp_sl", trader, BTC, reason="stale price")
    step(twin)
    price(twin, owner, 78_000)
    ok(twin, keeper, "execute_tp_sl", trader, BTC)
    assert position(twin, trader)[0] == 0
    step(twin)


def test_execute_tp_sl__seed_take_profit_at_84000__pays_the_profit_less_fees_and_execution_fee(
        twin, owner, trader, keeper):
    # Fees on (5 bp, 30% of it to the fund), execution fee 1 USDC.
    # Open order: fee 40 and the order's execution fee 1 (to the keeper who
    # executed it), so free is 10,000 - 5,375 - 40 - 1 = 4,584.
    # At 84,000: PnL 4,000, close fee 42, so the trader gets
    # 5,375 + 4,000 - 42 - 1 = 9,332; the keeper 1; the fund 12.6; the vault
    # pays 4,000 and keeps 29.4 of the fee.
    _long(twin, owner, trader)
    assert free(twin, trader) == 4_584 * USDC
    ok(twin, trader, "set_tp_sl", BTC, 84_000 * WAD, 0)
    price(twin, owner, 84_000)
    before = (free(twin, trader), free(twin, keeper), balance(twin, twin.p.insurance_fund), balance(twin, twin.p.vault))
    n = len(twin.w.events)
    ok(twin, keeper, "execute_tp_sl", trader, BTC)
    after = (free(twin, trader), free(twin, keeper), balance(twin, twin.p.insurance_fund), balance(twin, twin.p.vault))
    assert [a - b for a, b in zip(after, before)] == [9_332 * USDC, 1 * USDC, 12_600_000, -3_970_600_000]
    (closed,) = assert_events_agree(twin, "PositionClosed", n)
    assert (closed["pnl"], closed["fee"], closed["payout"]) == (4_000 * USDC, 42 * USDC, 9_332 * USDC)
    (executed,) = assert_events_agree(twin, "TpSlExecuted", n)
    assert (executed["price"], executed["execution_fee"]) == (84_000 * WAD, 1 * USDC)
    assert executed["keeper"] == keeper.address.lower()
    assert position(twin, trader) == (0, 0, 0, 0, 0, 0)
    step(twin)


def test_execute_tp_sl__seed_stop_loss_at_78000__leaves_more_than_liquidation_would(
        twin, owner, trader, other_trader, keeper):
    # Two identical longs; only `trader` sets SL 78,000. At 77,900 the stop
    # pays 5,375 - 2,100 - 38.95 fee - 1 = 3,235.05. `other_trader` rides to
    # 74,990, below its 75,000 liquidation price: equity 5,375 - 5,010 = 365,
    # below the 374.95 penalty, so liquidation leaves it nothing.
    _long(twin, owner, trader)
    open_position(twin, other_trader, WAD, MARGIN, deposit=10_000 * USDC)
    ok(twin, trader, "set_tp_sl", BTC, 0, 78_000 * WAD)
    price(twin, owner, 77_900)
    stopped_before = free(twin, trader)
    ok(twin, keeper, "execute_tp_sl", trader, BTC)
    stopped = free(twin, trader) - stopped_before
    assert stopped == 3_235_050_000
    step(twin)
    price(twin, owner, 74_990)
    liquidated_before = free(twin, other_trader)
    ok(twin, keeper, "liquidate", other_trader, BTC, [])
    liquidated = free(twin, other_trader) - liquidated_before
    assert liquidated == 0
    assert stopped > liquidated
    step(twin)


def test_execute_tp_sl__price_gaps_through_the_stop_past_liquidation__reverts_and_liquidation_runs(
        twin, owner, trader, keeper):
    _long(twin, owner, trader)
    ok(twin, trader, "set_tp_sl", BTC, 0, 78_000 * WAD)
    price(twin, owner, 74_000)
    reverts(twin, keeper, "execute_tp_sl", trader, BTC, reason="position: liquidatable")
    ok(twin, keeper, "liquidate", trader, BTC, [])
    assert position(twin, trader) == (0, 0, 0, 0, 0, 0)
    step(twin)


def test_tp_sl__triggers_kept_on_partial_close_and_cleared_on_full_close(twin, owner, trader, keeper):
    _long(twin, owner, trader)
    ok(twin, trader, "set_tp_sl", BTC, 84_000 * WAD, 78_000 * WAD)
    close(twin, trader, -WAD // 2)
    assert position(twin, trader)[4:] == (84_000 * WAD, 78_000 * WAD)
    close(twin, trader, -WAD // 2)
    assert position(twin, trader) == (0, 0, 0, 0, 0, 0)
    reverts(twin, keeper, "execute_tp_sl", trader, BTC, reason="position: none")
    # A new position starts with no triggers: nothing stale can trigger it.
    order(twin, trader, WAD, 2_000 * USDC, 80_000 * WAD)
    assert position(twin, trader)[4:] == (0, 0)
    price(twin, owner, 84_000)
    reverts(twin, keeper, "execute_tp_sl", trader, BTC, reason="not triggered")
    step(twin)


def test_execute_tp_sl__no_round_after_the_setting__reverts_no_later_price_until_one_arrives(
        twin, owner, trader, keeper):
    # The stop is checked before the round: at 78,500 a stop at 78,000 is not
    # triggered. Moved to 78,600 in that same round it is crossed, but only
    # by the round it was set in: no later price. A trigger crossed only by
    # its own round can still be moved: back to 78,000. At 77,900 (a round
    # after the setting) it is crossed by a later round: it is the keeper's,
    # and re-setting it (even unchanged) or clearing it reverts
    # 'tp_sl: triggered'. The keeper executes at that round's price: the stop
    # pays 5,375 - 2,100 - 38.95 fee - 1 = 3,235.05 and the keeper 1.
    _long(twin, owner, trader)
    price(twin, owner, 78_500)
    ok(twin, trader, "set_tp_sl", BTC, 0, 78_000 * WAD)
    reverts(twin, keeper, "execute_tp_sl", trader, BTC, reason="not triggered")
    ok(twin, trader, "set_tp_sl", BTC, 0, 78_600 * WAD)
    reverts(twin, keeper, "execute_tp_sl", trader, BTC, reason="tp_sl: no later price")
    ok(twin, trader, "set_tp_sl", BTC, 0, 78_000 * WAD)
    assert position(twin, trader)[:6] == (WAD, 80_000 * WAD, MARGIN, position(twin, trader)[3], 0, 78_000 * WAD)
    step(twin)
    price(twin, owner, 77_900)
    for tp, sl in ((0, 78_000 * WAD), (0, 77_000 * WAD), (0, 0)):
        reverts(twin, trader, "set_tp_sl", BTC, tp, sl, reason="tp_sl: triggered")
    assert position(twin, trader)[5] == 78_000 * WAD
    step(twin)
    before = (free(twin, trader), free(twin, keeper))
    n = len(twin.w.events)
    ok(twin, keeper, "execute_tp_sl", trader, BTC)
    (closed,) = assert_events_agree(twin, "PositionClosed", n)
    assert (closed["price"], closed["fee"]) == (77_900 * WAD, 38_950_000)
    assert (free(twin, trader) - before[0], free(twin, keeper) - before[1]) == (3_235_050_000, EXEC_FEE)
    assert position(twin, trader) == (0, 0, 0, 0, 0, 0)
    step(twin)


def test_execute_tp_sl__take_profit_set_already_crossed__executes_only_at_a_later_round(twin, owner, trader):
    # The trick: the long is in profit at 82,000 (a known price). It sets a
    # take-profit one unit above entry, already crossed, and executes it
    # itself in the same round, to close instantly at the known price
    # (5,375 + 2,000 - 41 = 7,334 back) instead of by order at an unknown
    # later one. That reverts. The next round is 81,000 (TP still crossed):
    # the take-profit executes there, at the later price as an order would:
    # payout 5,375 + 1,000 - 40.5 fee - 1 execution fee = 6,333.5, and the
    # trader, as its own keeper, also gets the 1 back: free +6,334.5.
    # The fund gets 30% of 40.5 = 12.15; the vault pays 1,000, keeps 28.35.
    _long(twin, owner, trader)
    price(twin, owner, 82_000)
    ok(twin, trader, "set_tp_sl", BTC, 80_000 * WAD + 1, 0)
    reverts(twin, trader, "execute_tp_sl", trader, BTC, reason="tp_sl: no later price")
    assert position(twin, trader)[:3] == (WAD, 80_000 * WAD, 5_375 * USDC)
    step(twin)
    price(twin, owner, 81_000)
    fund, vault = twin.p.insurance_fund, twin.p.vault
    before = (free(twin, trader), balance(twin, fund), balance(twin, vault))
    n = len(twin.w.events)
    ok(twin, trader, "execute_tp_sl", trader, BTC)
    after = (free(twin, trader), balance(twin, fund), balance(twin, vault))
    assert [a - b for a, b in zip(after, before)] == [6_334_500_000, 12_150_000, -971_650_000]
    (closed,) = assert_events_agree(twin, "PositionClosed", n)
    assert (closed["price"], closed["pnl"], closed["fee"], closed["payout"]) == (
        81_000 * WAD, 1_000 * USDC, 40_500_000, 6_333_500_000)
    (executed,) = assert_events_agree(twin, "TpSlExecuted", n)
    assert (executed["price"], executed["execution_fee"], executed["keeper"]) == (
        81_000 * WAD, EXEC_FEE, trader.address.lower())
    assert position(twin, trader) == (0, 0, 0, 0, 0, 0)
    step(twin)
