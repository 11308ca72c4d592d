"""The machine's funding property (tests/stateful/funding_check.py) on the
model alone: it holds for the real model, and it catches a model whose
longs pay twice the funding they owe, which token conservation does not
(the surplus lands in the vault)."""

import pytest

from model import funding
from tests.model.worlds import (CROWD, TRADER, USDC, advance, assert_token_conservation, later_round,
                                make_world, price_of)
from tests.stateful.funding_check import FundingViolation, check_funding, funding_before


def _skewed_close(w):
    """Two longs against one short (longs pay), an hour of funding, then
    the first long closes; returns the close's execution as (before, events)."""
    price = price_of(w, 0)
    for t, size in ((TRADER, 10**18), (CROWD[0], 10**18), (CROWD[1], -(10**18))):
        oid = w.call(t, "request_order", 0, size, 10_000 * USDC, price * 11 // 10 if size > 0 else 0)
        later_round(w, 0)
        w.call(CROWD[2], "execute_order", oid)
    advance(w, 3_600)
    oid = w.call(TRADER, "request_order", 0, -(10**18), 0, 0)
    later_round(w, 0)
    assert price == price_of(w, 0)
    before, n = funding_before(w), len(w.events)
    w.call(CROWD[2], "execute_order", oid)
    return before, w.events[n:]


def test_funding_property__real_model__holds_on_a_close_after_an_hour_of_skew():
    w = make_world()
    before, events = _skewed_close(w)
    paid = [f["funding_paid"] for n, f in events if n == "PositionClosed"]
    assert len(paid) == 1 and paid[0] > 0, events
    check_funding(w, before, events)
    assert_token_conservation(w)


def test_funding_property__longs_pay_double__caught_while_tokens_are_conserved(monkeypatch):
    real = funding.owed

    def longs_pay_double(size, index_now, index_at, scale):
        owed = real(size, index_now, index_at, scale)
        return 2 * owed if size > 0 else owed

    monkeypatch.setattr(funding, "owed", longs_pay_double)
    w = make_world()
    before, events = _skewed_close(w)
    (paid,) = [f["funding_paid"] for n, f in events if n == "PositionClosed"]
    assert paid == 2 * real(10**18, w.e.state[0].funding_index, before[1][(TRADER, 0)][3], w.e.scale)
    assert_token_conservation(w)  # the doubled funding went to the vault: every token is where it should be
    with pytest.raises(FundingViolation, match=r"longs accrued|unsettled funding fell"):
        check_funding(w, before, events)
