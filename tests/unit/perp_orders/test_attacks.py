"""Attacks on the order flow, played with numbers (default devnet BTC-PERP:
100x, fee 5 bps, execution fee 1 USDC; funding off so the figures are exact).

The review that motivated orders: with instant trades at the latest answer,
10,500 USDC at 100x opened just before a known +0.5% update and closed just
after made 3,997 USDC per update, paid by LPs. Chainlink publishes a new
answer after a 0.5% deviation, so the direction of the next update is often
public before it lands."""

import pytest

from tests.unit.perp_engine.helpers import USDC, WAD, btc, ceil_div, events, expect_ok, expect_revert, params

EXEC_FEE = 1 * USDC


def fee_at(size, price, fee=5 * 10**14):
    return ceil_div(ceil_div(abs(size) * price, 10**30) * fee, WAD)


@pytest.fixture
def attacker(twin, owner, trader):
    expect_ok(twin, owner, "set_market_params", 0, params(twin, 0, funding_k=0, max_funding_rate=0))
    expect_ok(twin, trader, "deposit", 10_500 * USDC)
    return trader


def test_front_running__a_known_plus_half_percent_update__the_open_executes_after_it_and_the_trader_loses_the_fees(
        twin, owner, attacker, keeper):
    """12 BTC long (about 96x) requested at 80,000 while the trader knows the
    next round says 80,400. The order can only execute at a round later than
    the request, so it opens at 80,400; the close requested next executes at
    the round after. The trader pays two trading fees and two execution fees
    and ends with 9,533.2 of the 10,500 USDC. At the old instant prices the
    same trade made 12 x 400 = 4,800 USDC less fees."""
    e = twin.p.engine
    vault0 = twin.p.token.balanceOf(twin.p.vault)
    ok, reason, oid = twin.request(attacker, 0, 12 * WAD, 9_900 * USDC, 80_500 * WAD)
    assert ok, reason
    # the attacker cannot execute before the update lands
    expect_revert(twin, attacker, "execute_order", oid, reason="order: no later price")
    twin.set_price(0, btc(80_400), owner)  # the update everybody saw coming
    assert twin.execute(keeper, oid) == ("executed", None)
    assert events(twin, "PositionOpened")[-1]["price"] == 80_400 * WAD
    assert twin.order(attacker, 0, -12 * WAD, 0, 0, keeper) == (True, None)  # closes at the next round, 80,400
    assert events(twin, "PositionClosed")[-1]["pnl"] == 0
    fee = fee_at(12 * WAD, 80_400 * WAD)
    assert fee == 482_400_000
    assert e.free_collateral(attacker) == 10_500 * USDC - 2 * fee - 2 * EXEC_FEE == 9_533_200_000
    # what the trader lost went to the vault and the fund as fees, and to the keeper
    fund_share = fee * 3 // 10
    assert twin.p.token.balanceOf(twin.p.vault) - vault0 == 2 * (fee - fund_share)
    twin.assert_same()


def test_front_running__selling_ahead_of_a_known_drop__executes_after_it_and_loses_the_fees(
        twin, owner, attacker, keeper):
    """The mirror image: 12 BTC short requested at 80,000 ahead of a known
    -0.5% round (79,600). It opens at 79,600 and closes at the next round."""
    e = twin.p.engine
    ok, reason, oid = twin.request(attacker, 0, -12 * WAD, 9_900 * USDC, 79_000 * WAD)
    assert ok, reason
    twin.set_price(0, btc(79_600), owner)
    assert twin.execute(keeper, oid) == ("executed", None)
    assert events(twin, "PositionOpened")[-1]["price"] == 79_600 * WAD
    assert twin.order(attacker, 0, 12 * WAD, 0, 80_000 * WAD, keeper) == (True, None)
    fee = fee_at(12 * WAD, 79_600 * WAD)
    assert e.free_collateral(attacker) == 10_500 * USDC - 2 * fee - 2 * EXEC_FEE
    assert e.free_collateral(attacker) < 10_500 * USDC
    twin.assert_same()


def test_front_running__closing_ahead_of_a_known_drop__the_close_takes_the_new_price(twin, owner, attacker, keeper):
    """A long who sees a -0.5% round coming and asks to close cannot get out
    at the old price: the close executes at 79,600, the loss is realised."""
    e = twin.p.engine
    assert twin.order(attacker, 0, 12 * WAD, 9_900 * USDC, 80_500 * WAD, keeper) == (True, None)
    free_after_open = e.free_collateral(attacker)
    ok, reason, oid = twin.request(attacker, 0, -12 * WAD, 0, 0)
    assert ok, reason
    twin.set_price(0, btc(79_600), owner)
    assert twin.execute(keeper, oid) == ("executed", None)
    closed = events(twin, "PositionClosed")[-1]
    assert closed["price"] == 79_600 * WAD and closed["pnl"] == -12 * 400 * USDC
    fee = fee_at(12 * WAD, 79_600 * WAD)
    # margin 9,900 back less the 4,800 loss and the fee; the execution fee was escrowed at request
    assert e.free_collateral(attacker) == free_after_open - EXEC_FEE + 9_900 * USDC - 4_800 * USDC - fee
    twin.assert_same()


def test_cancel__backing_out_after_seeing_the_next_round__is_refused(twin, owner, attacker, keeper):
    """The free option a cancel would give: request, watch the next round,
    cancel if it went the wrong way. A pending order cannot be cancelled
    before it expires, and the keeper executes it at the new round."""
    ok, reason, oid = twin.request(attacker, 0, 12 * WAD, 9_900 * USDC, 80_500 * WAD)
    assert ok, reason
    twin.set_price(0, btc(79_600), owner)  # the wrong way for a long
    expect_revert(twin, attacker, "cancel_order", oid, reason="order: not expired")
    assert twin.execute(keeper, oid) == ("executed", None)
    assert events(twin, "PositionOpened")[-1]["price"] == 79_600 * WAD
    twin.assert_same()


def test_order_spam__a_thousand_accounts_pay_one_execution_fee_per_order(twin, owner, keeper, crowd):
    """Orders live in a mapping, not in a bounded list, so pending orders
    block nobody, and each account holds at most one per market. Every order
    the keeper executes pays it the execution fee, cancelled or not: 20
    accounts whose orders are cancelled (price never acceptable) pay 1 USDC
    each, all of it the keeper's. A thousand accounts pay a thousand."""
    e = twin.p.engine
    keeper0 = e.free_collateral(keeper)
    spammers = crowd[:20]
    ids = []
    for a in spammers:
        twin.fund(a, 100 * USDC, spenders=(twin.p.engine,))
        expect_ok(twin, a, "deposit", 100 * USDC)
        ok, reason, oid = twin.request(a, 0, WAD // 100, 10 * USDC, 70_000 * WAD)
        assert ok, reason
        ids.append(oid)
    twin.restamp(0, owner)
    for oid in ids:
        assert twin.execute(keeper, oid) == ("cancelled", "position: price above acceptable")
    assert all(e.free_collateral(a) == 100 * USDC - EXEC_FEE for a in spammers)
    assert e.free_collateral(keeper) - keeper0 == 20 * EXEC_FEE
    twin.assert_same()


def test_order_option__margin_added_after_the_round__is_refused(twin, owner, attacker, keeper):
    """The option an instant add_margin would give (found in review): hold a
    small position, request +10 BTC with no margin (cancelled by default
    with 'margin: below initial'), and after seeing the next round add the
    8,100 USDC that makes it fill only when the round is stale against the
    market. While the order is pending add_margin reverts, so the order's
    fate is the round's alone: the keeper cancels it and the attacker is out
    exactly the execution fee."""
    e = twin.p.engine
    assert twin.order(attacker, 0, WAD // 1000, 10 * USDC, 80_000 * WAD, keeper) == (True, None)
    free0 = e.free_collateral(attacker)
    ok, reason, oid = twin.request(attacker, 0, 10 * WAD, 0, 81_000 * WAD)
    assert ok, reason
    assert e.free_collateral(attacker) == free0 - fee_at(10 * WAD, 81_000 * WAD) - EXEC_FEE
    twin.restamp(0, owner)  # the round at 80,000; the attacker "knows" 80,400 is next
    expect_revert(twin, attacker, "add_margin", 0, 8_100 * USDC, reason="order: pending")
    assert twin.execute(keeper, oid) == ("cancelled", "margin: below initial")
    assert e.free_collateral(attacker) == free0 - EXEC_FEE
    twin.assert_same()


def test_tp_sl_reset__a_stop_crossed_by_a_later_round__cannot_be_disarmed(twin, owner, attacker, keeper):
    """A stop at 79,000 that the next round (78,900) crosses belongs to the
    keeper: re-setting or clearing it would let the trader keep the exit
    only when the following move went his way."""
    e = twin.p.engine
    assert twin.order(attacker, 0, WAD, 2_000 * USDC, 80_000 * WAD, keeper) == (True, None)
    expect_ok(twin, attacker, "set_tp_sl", 0, 0, 79_000 * WAD)
    twin.set_price(0, btc(78_900), owner)
    expect_revert(twin, attacker, "set_tp_sl", 0, 0, 79_000 * WAD, reason="tp_sl: triggered")
    expect_revert(twin, attacker, "set_tp_sl", 0, 0, 0, reason="tp_sl: triggered")
    expect_ok(twin, keeper, "execute_tp_sl", attacker, 0)
    assert events(twin, "PositionClosed")[-1]["price"] == 78_900 * WAD
    assert e.get_position(attacker, 0).size == 0
    twin.assert_same()


def test_tp_sl_reset__a_trigger_crossed_only_in_its_own_round__may_be_changed(twin, owner, attacker, keeper):
    """The other side of the rule: a trigger set already crossed (the TP
    trick) has not been crossed by a later round yet, so it may still be
    moved; it can never execute before a later round either way."""
    assert twin.order(attacker, 0, WAD, 2_000 * USDC, 80_000 * WAD, keeper) == (True, None)
    twin.set_price(0, btc(80_500), owner)
    expect_ok(twin, attacker, "set_tp_sl", 0, 80_001 * WAD, 0)  # already crossed
    expect_revert(twin, keeper, "execute_tp_sl", attacker, 0, reason="tp_sl: no later price")
    expect_ok(twin, attacker, "set_tp_sl", 0, 90_000 * WAD, 0)  # moved before any later round
    twin.restamp(0, owner)
    expect_revert(twin, keeper, "execute_tp_sl", attacker, 0, reason="not triggered")
    twin.assert_same()
