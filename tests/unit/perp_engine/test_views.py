"""PerpEngine's views, each against the formula of SPEC.md written out here
with plain integers (independently of model/), and against the model."""

from ape import chain

from tests.unit.perp_engine.helpers import (
    SCALE, USDC, WAD, ceil_div, expect_ok, expect_order_ok, params, position)

ENTRY = 80_000 * WAD
NOW_ANSWER = 8_123_456_000_000  # 81,234.56
NOW = NOW_ANSWER * 10**10


def floor_div(a, b):
    return a // b


def open_book(twin, owner, trader, other_trader, keeper):
    """A long of 2 BTC (2,000 margin) and a short of 0.5 BTC (1,000 margin)
    at 80,000 (orders executed by the keeper); an hour of long-skewed
    funding; the price at 81,234.56."""
    expect_ok(twin, trader, "deposit", 10_000 * USDC)
    expect_ok(twin, other_trader, "deposit", 10_000 * USDC)
    expect_order_ok(twin, trader, 0, 2 * WAD, 2_000 * USDC, ENTRY, keeper)
    # acceptable at the entry: the fee escrowed is the fee paid, the margin stays whole
    expect_order_ok(twin, other_trader, 0, -WAD // 2, 1_000 * USDC, ENTRY, keeper)
    twin.advance(3_600)
    twin.set_price(0, NOW_ANSWER, owner)


def pending_index(e, mid=0):
    """positions._pending_index, from SPEC §4 and the stored state."""
    p = e.market_params(mid)
    long_oi, short_oi, _, _, _, idx, last, _, _ = e.market_state(mid)
    k, cap = p[7], p[8]
    rate = max(-cap, min(cap, floor_div(k * (long_oi - short_oi), long_oi + short_oi)))
    dt = chain.blocks.head.timestamp - last
    return idx + floor_div(rate * NOW * dt, WAD), rate


def test_views__positions_market_and_funding__match_the_spec_formulas(twin, owner, trader, other_trader, keeper):
    e = twin.p.engine
    open_book(twin, owner, trader, other_trader, keeper)
    mmf = e.market_params(0)[2]
    idx, rate = pending_index(e)
    assert rate == e.funding_rate(0) > 0  # longs outweigh shorts: longs pay
    assert rate == floor_div(e.market_params(0)[7] * 3, 5)  # k * 1.5 / 2.5

    claims = []
    for who, size, margin in ((trader, 2 * WAD, 2_000 * USDC), (other_trader, -WAD // 2, 1_000 * USDC)):
        pos = position(twin, who)
        assert pos[:3] == (size, ENTRY, margin)
        owed = ceil_div(size * (idx - pos[3]), SCALE)  # rounded up: against the trader
        assert e.funding_owed(who, 0) == owed
        assert (owed > 0) == (size > 0)
        upnl = floor_div(size * (NOW - ENTRY), SCALE)
        eff = margin - owed
        equity = eff + upnl
        assert e.equity(who, 0) == equity
        maintenance = ceil_div(ceil_div(abs(size) * NOW, SCALE) * mmf, WAD)
        assert e.is_liquidatable(who, 0) == (equity < maintenance)
        s = abs(size)
        if size > 0:  # (entry - m/size) / (1 - mmf), up; bankruptcy entry - m/size, up
            liq = ceil_div((s * ENTRY - eff * SCALE) * WAD, s * (WAD - mmf))
            bankrupt = ceil_div(s * ENTRY - eff * SCALE, s)
        else:  # (entry + m/|size|) / (1 + mmf), down; bankruptcy entry + m/|size|, down
            liq = floor_div((s * ENTRY + eff * SCALE) * WAD, s * (WAD + mmf))
            bankrupt = floor_div(s * ENTRY + eff * SCALE, s)
        assert e.liquidation_price(who, 0) == liq
        assert e.bankruptcy_price(who, 0) == bankrupt
        # (upnl / margin) * (notional / (margin + upnl)), each division down; 0 unless in profit
        score = floor_div(floor_div(upnl * WAD, margin) * floor_div(s * NOW, SCALE), margin + upnl) if upnl > 0 else 0
        assert e.adl_score(who, 0) == score
        claims.append(upnl - owed)
    assert e.adl_score(trader, 0) > 0 and e.adl_score(other_trader, 0) == 0

    assert e.open_interest(0) == (2 * WAD, WAD // 2)
    st = e.market_state(0)
    assert st[2:4] == (2 * WAD * ENTRY, WAD // 2 * ENTRY)
    sum_size_index = 2 * WAD * position(twin, trader)[3] - WAD // 2 * position(twin, other_trader)[3]
    assert st[4] == sum_size_index
    # traders_claim: net upnl minus funding owed, from the aggregates, rounded up.
    aggregate = NOW * (3 * WAD // 2) - st[2] + st[3] - (idx * (3 * WAD // 2) - sum_size_index)
    assert e.traders_claim() == ceil_div(aggregate, SCALE)
    assert sum(claims) <= e.traders_claim() <= sum(claims) + len(claims)
    # traders_gain: each side's unrealised profit and the funding owed to
    # traders, each floored at zero, each rounded up (at most the reserve).
    # Here only the long side wins.
    long_pnl, short_pnl = NOW * 2 * WAD - st[2], st[3] - NOW * (WAD // 2)
    funding_to_traders = sum_size_index - idx * (3 * WAD // 2)
    assert long_pnl > 0 > short_pnl and funding_to_traders < 0
    assert e.traders_gain() == ceil_div(long_pnl, SCALE)
    # traders_reserve: every position's payout cap, ceil(max_profit *
    # sum(|size| * entry) / (1e18 * SCALE)), whatever the price.
    assert e.total_cost() == st[2] + st[3]
    assert e.traders_reserve() == ceil_div(e.max_profit() * (st[2] + st[3]), WAD * SCALE)
    assert twin.p.vault.free_cash() == twin.p.vault.cash() - e.traders_reserve()
    assert twin.p.vault.totalAssets() == twin.p.vault.cash() - e.traders_gain()
    twin.assert_same()


def test_views__liquidation_price__separates_healthy_from_liquidatable(twin, owner, trader, other_trader, keeper):
    e = twin.p.engine
    # Without funding: what is owed accrues at the current price, so with it
    # the liquidation price holds only at the price it was computed for.
    expect_ok(twin, owner, "set_market_params", 0, params(twin, 0, funding_k=0, max_funding_rate=0))
    open_book(twin, owner, trader, other_trader, keeper)
    unit = 10**10  # one feed unit
    for who, below_is_liquidatable in ((trader, True), (other_trader, False)):
        liq = e.liquidation_price(who, 0)
        # 10,000 feed units move equity by 50 to 200 token units: beyond every rounding.
        twin.set_price(0, liq // unit - 10_000, owner)
        assert e.is_liquidatable(who, 0) == below_is_liquidatable
        twin.set_price(0, liq // unit + 10_000, owner)
        assert e.is_liquidatable(who, 0) != below_is_liquidatable
        bankrupt = e.bankruptcy_price(who, 0)
        twin.set_price(0, bankrupt // unit, owner)
        assert abs(e.equity(who, 0)) <= 1  # equity is zero at the bankruptcy price, to the unit
        twin.assert_same()


def test_views__over_collateralised_long__no_liquidation_or_bankruptcy_price(twin, trader, keeper):
    e = twin.p.engine
    expect_ok(twin, trader, "deposit", 2_000 * USDC)
    expect_order_ok(twin, trader, 0, WAD // 100, 1_000 * USDC, ENTRY, keeper)  # 800 notional
    assert e.liquidation_price(trader, 0) == 0
    assert e.bankruptcy_price(trader, 0) == 0
    assert not e.is_liquidatable(trader, 0)
    twin.assert_same()


def test_views__account_without_a_position__zeros(twin, owner, trader, other_trader, stranger, keeper):
    e = twin.p.engine
    open_book(twin, owner, trader, other_trader, keeper)
    for mid in (0, 1):
        assert tuple(e.get_position(stranger, mid)) == (0, 0, 0, 0, 0, 0)
        assert e.equity(stranger, mid) == 0
        assert e.is_liquidatable(stranger, mid) is False
        assert e.liquidation_price(stranger, mid) == 0
        assert e.bankruptcy_price(stranger, mid) == 0
        assert e.adl_score(stranger, mid) == 0
        assert e.funding_owed(stranger, mid) == 0
    assert e.free_collateral(stranger) == 0
    assert e.open_interest(1) == (0, 0) and e.funding_rate(1) == 0
    twin.assert_same()


def test_views__market_count_and_params__the_devnet_configuration(twin):
    e = twin.p.engine
    assert e.market_count() == 2
    for mid, feed in enumerate(twin.p.feeds):
        p = e.market_params(mid)
        assert p.feed == feed.address
        assert (p.imf, p.mmf) == (10**16, 5 * 10**15)  # 100x, maintenance 0.5%
        assert 0 < p.trading_fee <= 10**15  # at most 10 bps
        assert p.max_price_age == 3_600
        assert tuple(p) == twin.w.e.params[mid].as_tuple()
    assert tuple(e.market_params(2)) == ("0x" + "00" * 20,) + (0,) * 12  # unknown: empty


def test_views__position_count_and_position_at__swap_and_pop(twin, trader, other_trader, keeper):
    e = twin.p.engine
    for who in (trader, other_trader, keeper):
        expect_ok(twin, who, "deposit", 1_000 * USDC)
        expect_order_ok(twin, who, 0, WAD // 100, 100 * USDC, ENTRY, keeper)
    members = [e.position_at(0, True, i) for i in range(e.position_count(0, True))]
    assert members == [trader.address, other_trader.address, keeper.address]
    expect_order_ok(twin, trader, 0, -WAD // 100, 0, 0, keeper)
    members = [e.position_at(0, True, i) for i in range(e.position_count(0, True))]
    assert members == [keeper.address, other_trader.address]  # the last moved into the hole
    assert e.position_count(0, False) == 0 and e.position_count(1, True) == 0
    expect_order_ok(twin, trader, 0, -WAD // 100, 100 * USDC, ENTRY, keeper)
    assert e.position_count(0, False) == 1 and e.position_at(0, False, 0) == trader.address
    twin.assert_same()
