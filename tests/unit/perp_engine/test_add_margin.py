"""PerpEngine.add_margin: free collateral into a position, no price needed."""

import pytest

from tests.unit.perp_engine.helpers import (
    MAX_UINT, USDC, WAD, btc, execution_fee, expect_ok, expect_order_ok, expect_revert, mint_tokens, position,
    set_round)

MAX_AMOUNT = 2**128


@pytest.fixture
def long_btc(twin, trader, keeper):
    expect_ok(twin, trader, "deposit", 10_000 * USDC)
    expect_order_ok(twin, trader, 0, WAD, 1_000 * USDC, 80_000 * WAD, keeper)
    return twin


def test_add_margin__moves_free_collateral_into_the_position(long_btc, trader):
    twin, e = long_btc, long_btc.p.engine
    free, held = e.free_collateral(trader), twin.p.token.balanceOf(e)
    expect_ok(twin, trader, "add_margin", 0, 1)
    expect_ok(twin, trader, "add_margin", 0, 499 * USDC)
    size, entry, margin, index, _, _ = position(twin, trader)
    assert (size, entry, margin) == (WAD, 80_000 * WAD, 1_499 * USDC + 1)
    assert e.free_collateral(trader) == free - 499 * USDC - 1
    assert twin.p.token.balanceOf(e) == held  # nothing leaves the engine
    assert twin.w.events[-1] == ("MarginChanged", {
        "account": trader.address, "market_id": 0, "delta": 499 * USDC, "funding_paid": 0})
    twin.assert_same()


def test_add_margin__bad_or_stale_price__still_works(long_btc, owner, trader):
    twin = long_btc
    set_round(twin, 0, owner, round_id=9, answer=0, started_at=0, updated_at=0, answered_in_round=9)
    expect_ok(twin, trader, "add_margin", 0, 100 * USDC)
    assert position(twin, trader)[2] == 1_100 * USDC
    twin.set_price(0, btc(80_000), owner)
    twin.advance(7_200)
    expect_ok(twin, trader, "add_margin", 0, 100 * USDC)  # and a stale one
    assert position(twin, trader)[2] == 1_200 * USDC
    twin.set_price(0, btc(80_000), owner)  # the views need a valid answer
    twin.assert_same()


def test_add_margin__zero__reverts(long_btc, trader):
    expect_revert(long_btc, trader, "add_margin", 0, 0, reason="collateral: zero amount")


def test_add_margin__no_position__reverts(long_btc, trader, other_trader):
    expect_ok(long_btc, other_trader, "deposit", 100 * USDC)
    expect_revert(long_btc, other_trader, "add_margin", 0, 1, reason="position: none")
    expect_revert(long_btc, trader, "add_margin", 1, 1, reason="position: none")


def test_add_margin__unknown_market__reverts(long_btc, trader):
    for mid in (2, MAX_UINT):
        expect_revert(long_btc, trader, "add_margin", mid, 1, reason="market: unknown")


def test_add_margin__more_than_free__reverts(long_btc, trader):
    free = long_btc.p.engine.free_collateral(trader)
    # 10,000 less the 1,000 margin, the 40 USDC fee (5 bps of 80,000) and the execution fee
    assert execution_fee(long_btc) == 1 * USDC
    assert free == 10_000 * USDC - 1_000 * USDC - 40 * USDC - 1 * USDC == 8_959 * USDC
    for amount in (free + 1, MAX_UINT):
        expect_revert(long_btc, trader, "add_margin", 0, amount, reason="collateral: insufficient")


def test_add_margin__margin_reaching_2_128__reverts(long_btc, trader):
    twin = long_btc
    mint_tokens(twin, trader, MAX_AMOUNT, trader)
    expect_ok(twin, trader, "deposit", MAX_AMOUNT)
    room = MAX_AMOUNT - 1 - position(twin, trader)[2]
    expect_revert(twin, trader, "add_margin", 0, room + 1, reason="position: margin too large")
    expect_ok(twin, trader, "add_margin", 0, room)
    assert position(twin, trader)[2] == MAX_AMOUNT - 1
    twin.assert_same()


def test_add_margin__after_price_move__keeps_entry_and_index(long_btc, owner, trader):
    twin = long_btc
    before = position(twin, trader)
    twin.set_price(0, btc(79_000), owner)
    twin.advance(600)
    expect_ok(twin, trader, "add_margin", 0, 10 * USDC)
    after = position(twin, trader)
    assert after[:2] == before[:2] and after[3] == before[3]  # funding is not settled here
    assert after[2] == before[2] + 10 * USDC
    twin.assert_same()


def test_add_margin__order_pending_in_that_market__reverts_until_executed_other_market_works(
        long_btc, trader, keeper):
    """One pending order per account and market: while it waits, add_margin on
    that position reverts 'order: pending' (an instant add after the round
    would switch on an order built to fail). Another market's position is
    not held up, and once the order has executed add_margin works again."""
    twin, e = long_btc, long_btc.p.engine
    expect_order_ok(twin, trader, 1, WAD, 300 * USDC, 3_000 * WAD, keeper)
    assert position(twin, trader, 1)[:3] == (WAD, 3_000 * WAD, 300 * USDC)
    ok, reason, oid = twin.request(trader, 0, -WAD // 2, 0, 0)
    assert ok, reason
    assert e.pending_order(trader, 0) == oid and e.pending_order(trader, 1) == 0
    free0 = e.free_collateral(trader)
    for amount in (1, 100 * USDC):
        expect_revert(twin, trader, "add_margin", 0, amount, reason="order: pending")
    assert position(twin, trader)[2] == 1_000 * USDC
    assert e.free_collateral(trader) == free0
    expect_ok(twin, trader, "add_margin", 1, 50 * USDC)
    assert position(twin, trader, 1)[2] == 350 * USDC
    assert e.free_collateral(trader) == free0 - 50 * USDC
    twin.restamp(0, keeper)
    assert twin.execute(keeper, oid) == ("executed", None)
    assert e.pending_order(trader, 0) == 0
    assert position(twin, trader)[0] == WAD // 2
    margin = position(twin, trader)[2]
    free1 = e.free_collateral(trader)
    expect_ok(twin, trader, "add_margin", 0, 100 * USDC)
    assert position(twin, trader)[2] == margin + 100 * USDC
    assert e.free_collateral(trader) == free1 - 100 * USDC
    assert twin.w.events[-1] == ("MarginChanged", {
        "account": trader.address, "market_id": 0, "delta": 100 * USDC, "funding_paid": 0})
    twin.assert_same()
