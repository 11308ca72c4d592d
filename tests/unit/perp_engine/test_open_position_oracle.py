"""Orders against the oracle. request_order reads no price (it is accepted
whatever the feed says); execute_order needs a fresh, complete, positive
answer no later than the block (MockAggregator.set_round_data), from a round
updated after the request. Otherwise the execution reverts and the order
stays pending, to execute once the feed is sound again."""

import pytest

from tests.unit.perp_engine.helpers import (
    USDC, WAD, btc, execution_fee, expect_ok, free, next_timestamp, no_fallback, position, set_round)

SIZE, MARGIN, ACCEPTABLE = WAD // 10, 100 * USDC, 80_100 * WAD


@pytest.fixture
def funded(twin, owner, trader):
    """These tests break market 0's only feed: the devnet's fallback for
    BTC-PERP is unregistered first (tests/model/test_oracle.py and the
    machine cover the fallback)."""
    expect_ok(twin, trader, "deposit", 10_000 * USDC)
    no_fallback(twin, owner)
    return twin


def request_long(twin, trader):
    """A 0.1 BTC long order; returns its id. The request reads no price."""
    ok, reason, oid = twin.request(trader, 0, SIZE, MARGIN, ACCEPTABLE)
    assert ok, reason
    return oid


def expect_pending(twin, owner, keeper, oid, reason, restore=True):
    """execute_order reverts `reason` on both and the order is still there,
    its escrow held. With `restore`, a valid answer (a later round) is
    published and chain and model compared; without, the caller compares
    once the feed is valid again (the views `assert_same` reads price the
    market, so they revert on a broken answer)."""
    escrow = twin.p.engine.get_order(oid).escrow
    assert twin.execute(keeper, oid) == ("reverted", reason)
    assert twin.p.engine.get_order(oid).escrow == escrow > 0
    if restore:
        twin.set_price(0, btc(80_000), owner)
        twin.assert_same()


def expect_executed(twin, trader, keeper, oid, entry=80_000 * WAD):
    assert twin.execute(keeper, oid) == ("executed", None)
    assert position(twin, trader)[:2] == (SIZE, entry)
    assert int(twin.p.engine.get_order(oid).account, 16) == 0
    twin.assert_same()


def test_execute_order__answer_exactly_max_age_old__executes_one_second_more_reverts_stale(
        funded, owner, trader, keeper):
    twin = funded
    first = request_long(twin, trader)
    twin.set_price(0, btc(80_000), owner)
    twin.advance(3_600 - 1)  # the execution runs 3,600 s after the answer
    expect_executed(twin, trader, keeper, first)
    second = request_long(twin, trader)
    twin.set_price(0, btc(80_000), owner)
    twin.advance(3_600)
    expect_pending(twin, owner, keeper, second, "stale price", restore=False)
    twin.set_price(0, btc(80_000), owner)  # a fresh round: the pending order executes
    assert twin.execute(keeper, second) == ("executed", None)
    assert position(twin, trader)[0] == 2 * SIZE
    assert free(twin, keeper) == 2 * execution_fee(twin)
    twin.assert_same()


def test_request_order__broken_or_stale_feed__accepted_nothing_reads_the_price(funded, owner, trader, other_trader):
    """One order per account and market: the opposite request comes from a
    second trader (the trader's own second request in that market reverts
    'order: pending', which is checked before anything else and reads no
    price either)."""
    twin = funded
    expect_ok(twin, other_trader, "deposit", 10_000 * USDC)
    set_round(twin, 0, owner, round_id=7, answer=0, started_at=0, updated_at=0, answered_in_round=7)
    assert twin.request(trader, 0, SIZE, MARGIN, ACCEPTABLE)[:2] == (True, None)
    assert twin.request(trader, 0, -SIZE, MARGIN, 0)[:2] == (False, "order: pending")
    t = next_timestamp(twin)
    # An answer >= 2**128 is a bad price at execution; a request does not read it.
    set_round(twin, 0, owner, round_id=8, answer=2**128, started_at=t, updated_at=t, answered_in_round=8)
    assert twin.request(other_trader, 0, -SIZE, MARGIN, 0)[:2] == (True, None)  # the other side, no position
    twin.set_price(0, btc(80_000), owner)
    twin.advance(86_400)  # a day old: stale
    assert twin.request(trader, 1, SIZE, MARGIN, 10**24)[:2] == (True, None)
    assert twin.p.engine.order_count() == 3
    assert twin.p.engine.pending_order(trader, 0) == 1
    assert twin.p.engine.pending_order(other_trader, 0) == 2
    assert twin.p.engine.pending_order(trader, 1) == 3
    twin.set_price(0, btc(80_000), owner)  # the views need a fresh answer
    twin.assert_same()


def test_execute_order__non_positive_answer__reverts_bad_price_and_stays_pending(funded, owner, trader, keeper):
    twin = funded
    oid = request_long(twin, trader)
    for answer in (0, -1, -(2**255)):
        t = next_timestamp(twin)
        set_round(twin, 0, owner, round_id=7, answer=answer, started_at=t, updated_at=t, answered_in_round=7)
        expect_pending(twin, owner, keeper, oid, "bad price")
    expect_executed(twin, trader, keeper, oid)


def test_execute_order__incomplete_round__reverts_bad_price_until_complete(funded, owner, trader, keeper):
    twin = funded
    oid = request_long(twin, trader)
    t = next_timestamp(twin)
    set_round(twin, 0, owner, round_id=7, answer=btc(80_000), started_at=t, updated_at=t, answered_in_round=6)
    expect_pending(twin, owner, keeper, oid, "bad price", restore=False)
    set_round(twin, 0, owner, round_id=7, answer=btc(80_000), started_at=t, updated_at=t, answered_in_round=7)
    expect_executed(twin, trader, keeper, oid)


def test_execute_order__answer_from_the_future__reverts_bad_price_the_very_block_executes(
        funded, owner, trader, keeper):
    twin = funded
    oid = request_long(twin, trader)
    t = next_timestamp(twin)
    set_round(twin, 0, owner, round_id=7, answer=btc(80_000), started_at=t, updated_at=t + 2, answered_in_round=7)
    # set_round itself ran at t; the execution runs at t + 1: one second early.
    expect_pending(twin, owner, keeper, oid, "bad price", restore=False)
    t = next_timestamp(twin)
    set_round(twin, 0, owner, round_id=8, answer=btc(80_000), started_at=t, updated_at=t + 1, answered_in_round=8)
    expect_executed(twin, trader, keeper, oid)  # stamped the very block: accepted


def test_execute_order__zero_timestamp__reverts_bad_price(funded, owner, trader, keeper):
    twin = funded
    oid = request_long(twin, trader)
    set_round(twin, 0, owner, round_id=7, answer=btc(80_000), started_at=0, updated_at=0, answered_in_round=7)
    expect_pending(twin, owner, keeper, oid, "bad price")


def test_execute_order__round_stamped_at_the_request__no_later_price_one_second_later_executes(
        funded, owner, trader, keeper):
    """The price must come from a round published after the request: one
    updated in the very second of the request does not count."""
    twin = funded
    t = next_timestamp(twin)
    # stamped ahead (t + 1): valid from the request's block on
    set_round(twin, 0, owner, round_id=7, answer=btc(80_000), started_at=t, updated_at=t + 1, answered_in_round=7)
    oid = request_long(twin, trader)
    assert twin.p.engine.get_order(oid).requested_at == t + 1
    expect_pending(twin, owner, keeper, oid, "order: no later price", restore=False)
    t = next_timestamp(twin)
    set_round(twin, 0, owner, round_id=8, answer=btc(80_000), started_at=t, updated_at=t, answered_in_round=8)
    expect_executed(twin, trader, keeper, oid)


def test_execute_order__answer_at_2_128__reverts_bad_price_just_under_prices_and_cancels(
        funded, owner, trader, keeper):
    unit = 10**10  # one feed unit (8 decimals) in 1e18
    top = (2**128 - 1) // unit  # the largest answer below 2**128 once normalised
    twin = funded
    # A short accepting any price escrows no fee, so the request passes.
    ok, reason, oid = twin.request(trader, 0, -SIZE, MARGIN, 0)
    assert ok, reason
    # One unit past: refused as a price; the order waits.
    twin.set_price(0, top + 1, owner)
    expect_pending(twin, owner, keeper, oid, "bad price", restore=False)
    # At it: a price, and the fee on that notional cancels the trade.
    twin.set_price(0, top, owner)
    assert twin.execute(keeper, oid) == ("cancelled", "collateral: insufficient")
    assert position(twin, trader) == (0, 0, 0, 0, 0, 0)
    assert free(twin, trader) == 10_000 * USDC - execution_fee(twin)
    twin.set_price(0, btc(80_000), owner)
    twin.assert_same()
