"""PerpEngine.set_borrow_rate (decision 96): owner only, known market, at
most MAX_BORROW_RATE, a price to accrue at; refused calls change nothing
(chain and model agree on every stored value after each), and the indices
accrue at the old rate before the new one applies."""

from model import funding
from model.positions import MAX_BORROW_RATE
from tests.unit.perp_engine.helpers import (
    USDC, WAD, expect_ok, expect_order_ok, expect_revert, no_fallback, set_round)

RATE_10_PCT = 10**17 // (365 * 86400)  # 10% of notional a year


def borrow(twin, mid=0):
    """(borrow index, borrow rate) as market_state returns them."""
    st = twin.p.engine.market_state(mid)
    return st[7], st[8]


def test_set_borrow_rate__stranger__reverts_not_owner_nothing_changed(twin, stranger):
    expect_revert(twin, stranger, "set_borrow_rate", 0, RATE_10_PCT, reason="ownable: caller is not the owner")
    assert borrow(twin) == (0, 0)


def test_set_borrow_rate__zero_and_the_cap_accepted__one_past_the_cap_refused(twin, owner):
    assert MAX_BORROW_RATE == 10**14 // 3600  # 1 bp of notional an hour
    expect_ok(twin, owner, "set_borrow_rate", 0, MAX_BORROW_RATE)
    assert borrow(twin) == (0, MAX_BORROW_RATE)
    for bad in (MAX_BORROW_RATE + 1, 2**256 - 1):
        expect_revert(twin, owner, "set_borrow_rate", 0, bad, reason="params: borrow rate")
    assert borrow(twin)[1] == MAX_BORROW_RATE
    expect_ok(twin, owner, "set_borrow_rate", 0, 0)
    assert borrow(twin)[1] == 0
    twin.assert_same()


def test_set_borrow_rate__unknown_market__reverts(twin, owner):
    for mid in (2, 2**256 - 1):
        expect_revert(twin, owner, "set_borrow_rate", mid, RATE_10_PCT, reason="market: unknown")


def test_set_borrow_rate__broken_feed__bad_price_nothing_changed(twin, owner):
    """The old rate must accrue at a price first: with no sound price the
    change is refused and the stored rate stays."""
    no_fallback(twin, owner)
    set_round(twin, 0, owner, round_id=9, answer=0, started_at=0, updated_at=0, answered_in_round=9)
    assert twin.act(owner, "set_borrow_rate", 0, RATE_10_PCT) == (False, "bad price")
    assert borrow(twin) == (0, 0)


def test_set_borrow_rate__while_paused__accepted(twin, owner, pauser):
    """A pause stops new risk; the owner's parameters still move."""
    expect_ok(twin, owner, "set_pauser", pauser)
    expect_ok(twin, pauser, "pause")
    expect_ok(twin, owner, "set_borrow_rate", 1, RATE_10_PCT)
    assert borrow(twin, 1) == (0, RATE_10_PCT)
    twin.assert_same()


def test_set_borrow_rate__accrues_at_the_old_rate_first(twin, owner, trader, keeper):
    """A long of 1 BTC at 80,000: 1,000 s at 10% a year, then the rate is
    set to 0. The index holds exactly the 1,000 s at the old rate
    (ceil(rate * price * dt / 1e18)), and it stands after."""
    e = twin.p.engine
    expect_ok(twin, owner, "set_borrow_rate", 0, RATE_10_PCT)
    expect_ok(twin, trader, "deposit", 10_000 * USDC)
    expect_order_ok(twin, trader, 0, WAD, 2_000 * USDC, 80_000 * WAD, keeper)
    opened_at, b0 = e.market_state(0)[6], borrow(twin)[0]
    twin.advance(999)
    expect_ok(twin, owner, "set_borrow_rate", 0, 0)
    st = e.market_state(0)
    assert st[6] - opened_at == 1000
    # rate * 80,000e18 * 1,000 / 1e18 is whole here, so the ceil is exact
    assert st[7] - b0 == funding.borrow_step(RATE_10_PCT, 80_000 * WAD, 1000) == RATE_10_PCT * 80_000 * 1000
    twin.advance(5_000)
    expect_ok(twin, owner, "set_borrow_rate", 0, 0)
    assert e.market_state(0)[7] == st[7]  # rate 0: the index stands (funding still accrues)
    twin.assert_same()
