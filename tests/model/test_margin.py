"""model/margin.py: the seed numbers, the leverage scenarios of SPEC section 9
with the default configuration (config/networks.yaml via scripts/config.py),
and every formula against exact rational arithmetic in its named rounding
direction."""

import math
from fractions import Fraction

import pytest
from hypothesis import assume, given, strategies as st

from model import margin
from model.fixed_point import WAD, Revert
from tests.model.worlds import KEEPER, OWNER, TRADER, USDC, make_world, order, price_of, set_price, trade

SCALE = 10**30  # 6-decimal collateral: 10**(36 - 6)
BTC = 0  # market id of BTC-PERP in the default configuration


def mmf_of(w, mid=BTC):
    return w.e.params[mid].mmf


# ---------------------------------------------------------------- the seed numbers


def test_seed__long_1_btc_at_80000_with_5375_margin__liquidation_price_is_75000():
    w = make_world(traders=[TRADER])
    trade(w, TRADER, BTC, WAD, 5_375 * USDC, 80_000 * WAD)
    assert mmf_of(w) == 5 * 10**15  # 0.5%, from config/networks.yaml
    assert w.view("liquidation_price", TRADER, BTC) == 75_000 * WAD
    assert w.view("bankruptcy_price", TRADER, BTC) == 74_625 * WAD
    # The pure functions give the same figures.
    assert margin.liquidation_price(WAD, 80_000 * WAD, 5_375 * USDC, mmf_of(w), SCALE) == 75_000 * WAD
    assert margin.bankruptcy_price(WAD, 80_000 * WAD, 5_375 * USDC, SCALE) == 74_625 * WAD


def test_seed__at_exactly_75000__healthy_and_one_cent_below__liquidatable():
    w = make_world(traders=[TRADER])
    trade(w, TRADER, BTC, WAD, 5_375 * USDC, 80_000 * WAD)
    set_price(w, BTC, 75_000 * WAD)
    # equity 375 USDC == maintenance 0.5% of 75,000: not below it.
    assert w.view("equity", TRADER, BTC) == 375 * USDC
    assert not w.view("is_liquidatable", TRADER, BTC)
    set_price(w, BTC, 75_000 * WAD - WAD // 100)
    assert w.view("is_liquidatable", TRADER, BTC)


def test_seed__at_the_bankruptcy_price__equity_is_zero():
    w = make_world(traders=[TRADER])
    trade(w, TRADER, BTC, WAD, 5_375 * USDC, 80_000 * WAD)
    set_price(w, BTC, 74_625 * WAD)
    assert w.view("equity", TRADER, BTC) == 0


def test_seed__short_mirror__liquidation_and_bankruptcy_prices():
    # Short 1 BTC at 80,000 with 5,025 margin: (80,000 + 5,025) / 1.005 = 84,602.98...
    liq = margin.liquidation_price(-WAD, 80_000 * WAD, 5_025 * USDC, 5 * 10**15, SCALE)
    assert liq == math.floor(Fraction(85_025 * WAD, 1) / Fraction(1005, 1000))
    assert margin.bankruptcy_price(-WAD, 80_000 * WAD, 5_025 * USDC, SCALE) == 85_025 * WAD


# ---------------------------------------------------------------- leverage scenarios


def open_at_leverage(w, account, leverage, is_long, mid=BTC):
    """Open 1 BTC at the current price with margin = notional / leverage."""
    price = price_of(w, mid)
    notional = price // WAD * USDC
    size = WAD if is_long else -WAD
    trade(w, account, mid, size, notional // leverage, price)


def moved(w, pct_times_100, is_long, mid=BTC):
    """Move the price against a long (down) or a short (up) by pct/100 %."""
    p0 = price_of(w, mid)
    delta = p0 * pct_times_100 // 10_000
    set_price(w, mid, p0 - delta if is_long else p0 + delta)


@pytest.mark.parametrize("is_long", [True, False], ids=["long", "short"])
def test_100x__one_percent_adverse_move__liquidates_and_half_a_percent_does_not(is_long):
    w = make_world(traders=[TRADER])
    open_at_leverage(w, TRADER, 100, is_long)
    liq = w.view("liquidation_price", TRADER, BTC)
    # The liquidation price sits about 0.5% away: (1 - 1/100) / (1 - 0.5%).
    assert abs(liq - 80_000 * WAD) * 10_000 // (80_000 * WAD) in (49, 50)
    moved(w, 40, is_long)
    assert not w.view("is_liquidatable", TRADER, BTC)
    set_price(w, BTC, 80_000 * WAD)
    moved(w, 100, is_long)
    assert w.view("is_liquidatable", TRADER, BTC)


@pytest.mark.parametrize("is_long", [True, False], ids=["long", "short"])
def test_50x__two_percent_adverse_move__liquidates_and_one_percent_does_not(is_long):
    w = make_world(traders=[TRADER])
    open_at_leverage(w, TRADER, 50, is_long)
    moved(w, 100, is_long)
    assert not w.view("is_liquidatable", TRADER, BTC)
    set_price(w, BTC, 80_000 * WAD)
    moved(w, 200, is_long)
    assert w.view("is_liquidatable", TRADER, BTC)


@pytest.mark.parametrize("leverage", [2, 3, 4, 5])
@pytest.mark.parametrize("is_long", [True, False], ids=["long", "short"])
def test_2x_to_5x__fifteen_percent_adverse_move__survives(leverage, is_long):
    w = make_world(traders=[TRADER])
    open_at_leverage(w, TRADER, leverage, is_long)
    moved(w, 1_500, is_long)
    assert not w.view("is_liquidatable", TRADER, BTC)
    assert w.view("equity", TRADER, BTC) > 0
    # A keeper's attempt is refused with the spec's reason.
    with pytest.raises(Revert) as exc:
        w.call(KEEPER, "liquidate", TRADER, BTC, [])
    assert exc.value.reason == "position healthy"


def test_100x__open_at_exactly_the_initial_margin__is_accepted_and_one_unit_less_is_cancelled():
    w = make_world(traders=[TRADER, OWNER])
    trade(w, TRADER, BTC, WAD, 800 * USDC, 80_000 * WAD)
    # the failed check cancels the order at execution, with its reason
    assert order(w, OWNER, BTC, WAD, 800 * USDC - 1, 80_000 * WAD) == "margin: below initial"
    assert (OWNER, BTC) not in w.e.positions


# ---------------------------------------------------------------- formulas against Fraction

sizes = st.one_of(st.integers(1, 10**24), st.integers(1, 2**120 - 1))
prices = st.one_of(st.integers(1, 10**24), st.integers(1, 2**128 - 1))
signed_sizes = st.builds(lambda s, neg: -s if neg else s, sizes, st.booleans())
fractions_wad = st.integers(1, WAD - 1)
scales = st.sampled_from([10**30, 10**18, 10**12, 1])  # 6, 18, 24 and 36 decimals
margins = st.integers(-(10**30), 10**30)


@given(size=signed_sizes, price=prices, scale=scales)
def test_notional__any_position__rounds_down_for_payouts_and_up_for_charges(size, price, scale):
    exact = Fraction(abs(size) * price, scale)
    assert margin.notional_down(size, price, scale) == math.floor(exact)
    assert margin.notional_up(size, price, scale) == math.ceil(exact)


@given(size=signed_sizes, price=prices, fraction=fractions_wad, scale=scales)
def test_requirement__any_position__is_at_least_the_exact_fraction_of_notional(size, price, fraction, scale):
    exact = Fraction(abs(size) * price, scale) * Fraction(fraction, WAD)
    req = margin.requirement(size, price, fraction, scale)
    assert req >= exact
    # two ceilings: at most two units above the exact value
    assert req - exact < 2


@given(size=signed_sizes, entry=prices, price=prices, scale=scales)
def test_upnl__any_position__is_floored_against_the_trader(size, entry, price, scale):
    exact = Fraction(size * (price - entry), scale)
    assert margin.upnl(size, entry, price, scale) == math.floor(exact)


def exact_liquidation_price(size, entry, m, mmf, scale):
    s = abs(size)
    if size > 0:
        return Fraction(s * entry - m * scale, s) / (1 - Fraction(mmf, WAD))
    return Fraction(s * entry + m * scale, s) / (1 + Fraction(mmf, WAD))


@given(size=signed_sizes, entry=prices, m=margins, mmf=st.integers(1, WAD // 2), scale=scales)
def test_liquidation_price__any_position__rounds_to_the_traders_unsafe_side(size, entry, m, mmf, scale):
    exact = exact_liquidation_price(size, entry, m, mmf, scale)
    got = margin.liquidation_price(size, entry, m, mmf, scale)
    if exact <= 0:
        assert got == 0
    elif size > 0:
        assert got == math.ceil(exact)  # a long is told a higher price
    else:
        assert got == math.floor(exact)  # a short is told a lower price


@given(size=signed_sizes, entry=prices, m=margins, scale=scales)
def test_bankruptcy_price__any_position__rounds_to_the_traders_unsafe_side(size, entry, m, scale):
    s = abs(size)
    exact = Fraction(s * entry - m * scale, s) if size > 0 else Fraction(s * entry + m * scale, s)
    got = margin.bankruptcy_price(size, entry, m, scale)
    if exact <= 0:
        assert got == 0
    elif size > 0:
        assert got == math.ceil(exact)
    else:
        assert got == math.floor(exact)


@given(size=st.integers(10**15, 10**22), entry=st.integers(10**18, 10**23), lev=st.integers(2, 100),
       mmf=st.sampled_from([10**15, 5 * 10**15, 10**16]), is_long=st.booleans())
def test_liquidation_price__one_token_unit_beyond_it__is_below_maintenance(size, entry, lev, mmf, is_long):
    """Past the reported liquidation price by the price distance worth two token
    units, equity is below maintenance; before it by as much, it is above."""
    m = size * entry // SCALE // lev
    assume(m > 10)
    signed = size if is_long else -size
    liq = margin.liquidation_price(signed, entry, m, mmf, SCALE)
    assume(liq > 0)
    step = 2 * SCALE // size + 2  # price distance worth about two token units
    worse, better = (liq - step, liq + step) if is_long else (liq + step, liq - step)
    for p, liquidatable in ((worse, True), (better, False)):
        if p <= 0:
            continue
        equity = m + margin.upnl(signed, entry, p, SCALE)
        assert (equity < margin.requirement(signed, p, mmf, SCALE)) == liquidatable


@given(pnl=st.integers(-(10**20), 10**20), m=st.integers(0, 10**20), notional=st.integers(0, 10**24))
def test_adl_score__any_position__is_two_floored_divisions_and_zero_unless_in_profit(pnl, m, notional):
    got = margin.adl_score(pnl, m, notional)
    if pnl <= 0 or m == 0:
        assert got == 0
        return
    assert got == (pnl * WAD // m) * notional // (m + pnl)
    assert got <= Fraction(pnl, m) * Fraction(notional, m + pnl) * WAD


def test_adl_score__higher_leverage_at_the_same_profit_ratio__ranks_higher():
    # Both 10% up on margin; the 50x position's notional per equity is larger.
    hi = margin.adl_score(100 * USDC, 1_000 * USDC, 50_000 * USDC)
    lo = margin.adl_score(1_000 * USDC, 10_000 * USDC, 20_000 * USDC)
    assert hi > lo > 0
