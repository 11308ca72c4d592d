"""PerpEngine.open_position against the oracle: a fresh, complete, positive
answer no later than the block (MockAggregator.set_round_data)."""

import pytest

from tests.unit.perp_engine.helpers import (
    MAX_UINT, USDC, WAD, btc, expect_ok, expect_revert, next_timestamp, set_round)


@pytest.fixture
def funded(twin, trader):
    expect_ok(twin, trader, "deposit", 10_000 * USDC)
    return twin


def open_long(twin, trader):
    return twin.act(trader, "open_position", 0, WAD // 10, 100 * USDC, MAX_UINT)


def expect_bad_price(twin, owner, trader):
    """open_position reverts "bad price"; a valid answer is restored before
    comparing state (the views read the feed too)."""
    expect_revert(twin, trader, "open_position", 0, WAD // 10, 100 * USDC, MAX_UINT, reason="bad price",
                  then=lambda: twin.set_price(0, btc(80_000), owner))


def test_open_position__answer_exactly_max_age_old__accepted_one_second_more_reverts(funded, owner, trader):
    twin = funded
    twin.set_price(0, btc(80_000), owner)
    twin.advance(3_600 - 1)  # the next action runs 3,600 s after the answer
    assert open_long(twin, trader) == (True, None)
    twin.set_price(0, btc(80_000), owner)
    twin.advance(3_600)
    expect_revert(twin, trader, "open_position", 0, WAD // 10, 100 * USDC, MAX_UINT, reason="stale price")


def test_open_position__non_positive_answer__reverts_bad_price(funded, owner, trader):
    for answer in (0, -1, -(2**255)):
        t = next_timestamp(funded)
        set_round(funded, 0, owner, round_id=7, answer=answer, started_at=t, updated_at=t, answered_in_round=7)
        expect_bad_price(funded, owner, trader)


def test_open_position__incomplete_round__reverts_bad_price(funded, owner, trader):
    t = next_timestamp(funded)
    set_round(funded, 0, owner, round_id=7, answer=btc(80_000), started_at=t, updated_at=t, answered_in_round=6)
    expect_bad_price(funded, owner, trader)
    set_round(funded, 0, owner, round_id=7, answer=btc(80_000), started_at=t, updated_at=t, answered_in_round=7)
    assert open_long(funded, trader) == (True, None)


def test_open_position__answer_from_the_future__reverts_bad_price(funded, owner, trader):
    t = next_timestamp(funded)
    set_round(funded, 0, owner, round_id=7, answer=btc(80_000), started_at=t, updated_at=t + 2, answered_in_round=7)
    # set_round itself ran at t; the open runs at t + 1: one second early.
    expect_bad_price(funded, owner, trader)
    t = next_timestamp(funded)
    set_round(funded, 0, owner, round_id=8, answer=btc(80_000), started_at=t, updated_at=t + 1, answered_in_round=8)
    assert open_long(funded, trader) == (True, None)  # stamped the very block: accepted
    funded.assert_same()


def test_open_position__zero_timestamp__reverts_bad_price(funded, owner, trader):
    set_round(funded, 0, owner, round_id=7, answer=btc(80_000), started_at=0, updated_at=0, answered_in_round=7)
    expect_bad_price(funded, owner, trader)


def test_open_position__answer_at_2_128__reverts_bad_price(funded, owner, trader):
    unit = 10**10  # one feed unit (8 decimals) in 1e18
    top = (2**128 - 1) // unit  # the largest answer below 2**128 once normalised
    # One unit past: refused as a price. At it: a price, and the fee check refuses the trade.
    twin = funded
    twin.set_price(0, top + 1, owner)
    expect_bad_price(twin, owner, trader)
    twin.set_price(0, top, owner)
    expect_revert(twin, trader, "open_position", 0, WAD // 10, 100 * USDC, MAX_UINT, reason="collateral: insufficient")
