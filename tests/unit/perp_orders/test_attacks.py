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


def test_order_spam__each_order_costs_its_execution_fee(twin, owner, attacker, keeper):
    """Orders live in a mapping, not in a bounded list, so pending orders
    block nobody; each one the keeper must execute pays it the execution fee
    even when it is cancelled. 20 orders that are each cancelled (price never
    acceptable) cost the spammer 20 USDC, all of it the keeper's."""
    e = twin.p.engine
    keeper0 = e.free_collateral(keeper)
    ids = []
    for _ in range(20):
        ok, reason, oid = twin.request(attacker, 0, WAD // 100, 10 * USDC, 70_000 * WAD)
        assert ok, reason
        ids.append(oid)
    twin.restamp(0, owner)
    for oid in ids:
        assert twin.execute(keeper, oid) == ("cancelled", "position: price above acceptable")
    assert e.free_collateral(attacker) == 10_500 * USDC - 20 * EXEC_FEE
    assert e.free_collateral(keeper) - keeper0 == 20 * EXEC_FEE
    twin.assert_same()
