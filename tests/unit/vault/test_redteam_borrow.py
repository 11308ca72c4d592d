"""Red team of the borrowing fee (decision 96), played with numbers against
the real contracts in process (revm; tests/unit/vault/redteam_lab.py) and,
where the keeper or a bound is the question, against the model. Each test
is an attack. Where the mechanism holds it asserts the bound; where the
attack works the test asserts the safe behaviour and is a strict xfail
naming the finding.

Mechanism: per market a second index B grows by ceil(borrow_rate * price *
dt / 1e18); a long settles against F + B, a short against F - B
(funding.side_index), through funding.owed (rounded up); the valuation
counts F * (L - S) + B * (L + S) - sum_size_index.

Devnet parameters: BTC at 80,000, ETH at 3,000, trading fee 5 bps, imf 1%,
mmf 0.5%, liq fee 0.5%, max profit 50%, funding off unless asked, a 1,000,000
USDC LP seed. Units: size 1e18 per coin, price 1e18 per dollar, SCALE 1e30
(size * price / SCALE is USDC units)."""

import copy
from fractions import Fraction

import pytest

from model import funding as MF
from model import perp_engine as PE
from model import positions as P
from tests.unit.vault.in_process import _narrow_twin, _roles_first  # noqa: F401 (fixtures)
from tests.unit.vault.redteam_lab import BTC, USDC, WAD, Lab, restoring

SEED = 1_000_000 * USDC
DAY = 86_400
HOUR = 3_600
SCALE = 10**30
OFFSET = 2**127
BORROW_10_PCT = 10**17 // (365 * DAY)  # Sepolia's 10% of notional a year, per second
MAX_RATE = 10**14 // 3600  # positions.MAX_BORROW_RATE (1 bp of notional an hour)
MS = "(uint256,uint256,uint256,uint256,int256,int256,uint256,int256,uint256)"  # MarketState


@pytest.fixture(scope="module")
def base():
    lab = Lab()
    assert lab.lp_in("lp", SEED) == SEED * 10**3
    return lab


@pytest.fixture
def lab(base):
    yield from restoring(base)


@pytest.fixture(scope="module")
def fbase():
    """The same with funding on (the devnet's 1 bp an hour at full skew)."""
    lab = Lab(funding=True)
    assert lab.lp_in("lp", SEED) == SEED * 10**3
    return lab


@pytest.fixture
def flab(fbase):
    yield from restoring(fbase)


# ---------------------------------------------------------------- helpers

def set_rate(lab, rate, mid=BTC):
    lab.tx("owner", "engine", "set_borrow_rate(uint256,uint256)", mid, rate)


def owed(lab, who, mid=BTC):
    return lab.e("funding_owed(address,uint256)", lab.a.get(who, who), mid, out=("int256",))


def state(lab, mid=BTC):
    st = lab.e("market_state(uint256)", mid, out=(MS,))
    return dict(zip(["long_oi", "short_oi", "long_cost", "short_cost", "sum_size_index", "funding_index",
                     "last", "borrow_index", "borrow_rate"], st))


def liquidatable(lab, who, mid=BTC):
    return lab.e("is_liquidatable(address,uint256)", lab.a.get(who, who), mid, out=("bool",))


def remove_margin(lab, who, amount, mid=BTC):
    """A margin removal order, a later round, its execution: the margin moved."""
    before = lab.position(who, mid)[2]
    oid = lab.tx(who, "engine", "request_order(uint256,int256,int256,uint256)", mid, 0, -amount, 0,
                 out=["uint256"])[0]
    lab.round()
    lab.tx("keeper", "engine", "execute_order(uint256)", oid)
    return lab.position(who, mid)[2] != before


def claim_gap(lab, accounts, mid=BTC):
    """traders_claim minus the sum over `accounts` of (upnl - funding_owed),
    each position's upnl exact at the latest price: the aggregates'
    unsettled funding (F * (L - S) + B * (L + S) - sum_size_index) against
    each position's own side index. Per-position rounding (owed up, the
    claim up) keeps it within len(accounts) + 1 units."""
    price = lab.prices[mid] * WAD
    total = Fraction(0)
    for a in accounts:
        size, entry = lab.position(a, mid)[:2]
        if size:
            total += Fraction(size * (price - entry), SCALE) - owed(lab, a, mid)
    return lab.e("traders_claim()", out=("int256",)) - total


# ---------------------------------------------------------------- 1. the rate: never retroactive

def test_rate_change__accrues_at_the_old_rate_first__never_retroactive(lab):
    """The owner raises BTC's rate from 10% a year to the cap (1 bp of
    notional an hour, 87.6% a year) after a day. set_borrow_rate accrues
    both indices at the old rate first, so the day already held costs
    273.97 at 10% and only the seconds after the change cost the new rate
    (2,400.00 a day on 1,000,000 of notional). There is no path that applies a rate to time before it."""
    set_rate(lab, BORROW_10_PCT)
    assert lab.open("victim", BTC, 125 * WAD // 10, 11_000 * USDC)
    lab.round(dt=DAY)
    before = owed(lab, "victim")
    b0 = state(lab)["borrow_index"]
    t0 = state(lab)["last"]
    set_rate(lab, MAX_RATE)
    st = state(lab)
    # the change accrued B at the old rate up to its own block, then stored the new one
    assert st["borrow_rate"] == MAX_RATE and st["last"] > t0
    assert st["borrow_index"] == b0 + MF.borrow_step(BORROW_10_PCT, 80_000 * WAD, st["last"] - t0)
    at_change = owed(lab, "victim")
    old_sec = -(-125 * 80_000 * BORROW_10_PCT * USDC // (10 * WAD))
    new_sec = 125 * 80_000 * MAX_RATE * USDC // (10 * WAD)
    assert 0 <= at_change - before <= old_sec + 1
    lab.round(dt=DAY)
    day_new = owed(lab, "victim") - at_change
    print(f"\nday at 10%: {before / USDC:,.2f}; change: +{(at_change - before) / USDC:,.4f}; "
          f"next day at the cap: {day_new / USDC:,.2f} USDC")
    assert new_sec * DAY <= day_new <= new_sec * (DAY + 3)
    assert before < 274 * USDC


def test_owner_max_rate__erodes_positions_no_faster_than_the_mmf_ramp(lab):
    """The owner (through the timelock, 2 days on Sepolia) sets the cap.
    Decision 75 bounds the owner's mmf lever: a position with margin ratio r
    stays healthy (r - m) / 1 bp hours at an unchanged price (5x at 0.5%:
    1,950 h). The borrow rate is a second lever on the same buffer, capped
    at the same pace (found by this red team at 1e11/s: 3.6 bps an hour, a
    5x position liquidatable after 542 h; the cap is now MAX_MMF_RAISE /
    MMF_RAMP_PERIOD, decision 96): 100 USDC an hour per 1,000,000 of
    notional, both sides. A 100x position (1% margin) is liquidatable
    about 50 h after the change lands, a 5x one after more than 1,950 h."""
    set_rate(lab, MAX_RATE)
    assert lab.open("victim", BTC, 125 * WAD // 10, 10_000 * USDC)       # 100x
    assert lab.open("trader", BTC, 125 * WAD // 10, 200_000 * USDC)      # 5x
    hours = {}
    h = 0
    while len(hours) < 2 and h <= 2_000:
        lab.round(dt=HOUR)
        h += 1
        for who in ("victim", "trader"):
            if who not in hours and liquidatable(lab, who):
                hours[who] = h
    hours.setdefault("trader", h)
    print(f"\nat the cap, unchanged price: 100x liquidatable after {hours['victim']} h, 5x after {hours['trader']} h "
          f"(decision 75's mmf bound for 5x: 1,950 h; the timelock adds 48 h of notice)")
    assert 49 <= hours["victim"] <= 51
    assert hours["trader"] > 1_950


# ---------------------------------------------------------------- 2. rounding: touching every second

def test_touch_every_second__rounding_up_costs_the_others_nothing_measurable(lab):
    """B rounds up at every accrual, so an attacker who touches the market
    every second (its own 1-unit margin removal each block) adds at most one
    index unit per second. At a price whose step is not whole (80,000.12345678,
    so rate * price / 1e18 has a fraction) B ends at most `touches` units
    above the exact integral; a unit of B costs a 12.5 BTC position 1.25e-11
    USDC units, so a day of touches (86,400) costs it 1.1e-6 units: the
    settlement's own ceil (one unit) dominates. Splitting a position over
    1,000 accounts only adds ceils (sum of ceils >= ceil of sum)."""
    set_rate(lab, BORROW_10_PCT)
    answer = 80_000_12345678  # 8 decimals
    price = answer * 10**10
    assert lab.open("victim", BTC, 125 * WAD // 10, 11_000 * USDC)
    assert lab.open("attacker", BTC, WAD // 10, 1_000 * USDC)

    def feeds():
        lab.tx("owner", "feed0", "set_answer(int256)", answer)
        lab.tx("owner", "feed1", "set_answer(int256)", lab.prices[1] * 10**8, dt=0)

    feeds()
    # one touch first so that the index runs from a known point at this price
    st0 = None
    touches = 0
    for i in range(61):
        oid = lab.tx("attacker", "engine", "request_order(uint256,int256,int256,uint256)", BTC, 0, -1, 0,
                     out=["uint256"])[0]
        feeds()
        lab.tx("keeper", "engine", "execute_order(uint256)", oid)
        if st0 is None:
            st0 = state(lab)
        else:
            touches += 1
    st1 = state(lab)
    dt = st1["last"] - st0["last"]
    exact = Fraction(BORROW_10_PCT * price * dt, WAD)
    excess = st1["borrow_index"] - st0["borrow_index"] - exact
    per_unit = Fraction(125 * WAD // 10, SCALE)  # USDC units a unit of B costs the victim
    print(f"\n{touches} touches over {dt} s: B exceeds the exact integral by {float(excess):.3f} units "
          f"(<= 1 a touch); a day of touches costs a 12.5 BTC position {float(excess / touches * DAY * per_unit):.2e} "
          f"USDC units")
    assert 0 <= excess <= touches
    assert excess / touches * DAY * per_unit < 1
    # 1,000 accounts: each settlement rounds up on its own
    delta_b = st1["borrow_index"] - st0["borrow_index"]
    parts = [12_345_678_901_234_567 + 7 * i for i in range(1_000)]
    assert sum(MF.owed(s, delta_b, 0, SCALE) for s in parts) >= MF.owed(sum(parts), delta_b, 0, SCALE)


def test_accrual_price__the_whole_interval_is_priced_at_the_touch(lab):
    """B grows by rate * (the price at the accrual) * (the whole time since
    the last one). An attacker who knows the next round and holds a large
    position in a market nobody touches chooses when to touch: a 12.5 BTC
    short touching at the low of a 5% swing (76,000) pays 5% less of its day
    of fee (13.70 of 273.97 at 10% a year); anyone (an LP, the keeper) can touch at the high instead,
    and an active market accrues every block. Bound asserted: the fee for an
    interval lies between rate * dt * the lowest and the highest price
    touched; the saving is at most the swing's share of one interval's fee."""
    set_rate(lab, BORROW_10_PCT)
    assert lab.open("attacker", BTC, -125 * WAD // 10, 11_000 * USDC)
    got = {}
    for p in (76_000, 80_000):
        snap = lab.b.snapshot()
        prices = list(lab.prices)
        lab.round({BTC: p}, dt=DAY)
        # the attacker's own touch (a 1-unit margin removal) at that price
        oid = lab.tx("attacker", "engine", "request_order(uint256,int256,int256,uint256)", BTC, 0, -1, 0,
                     out=["uint256"])[0]
        lab.round()
        lab.tx("keeper", "engine", "execute_order(uint256)", oid)
        got[p] = lab.position("attacker", BTC)[2]
        lab.b.restore(snap)
        lab.prices = prices
    saved = got[76_000] - got[80_000]
    day_fee = 125 * 80_000 * BORROW_10_PCT * DAY * USDC // (10 * WAD)
    print(f"\ntouching at 76,000 instead of 80,000 after a day: the attacker keeps {saved / USDC:,.2f} "
          f"of a {day_fee / USDC:,.2f} fee")
    slack = 10 * 125 * 4_000 * BORROW_10_PCT * USDC // (10 * WAD) + 10  # the few seconds after the day
    assert day_fee * 5 // 100 - 10 <= saved <= day_fee * 5 // 100 + slack


# ---------------------------------------------------------------- 3. the side index everywhere

def test_side_index__opens_increases_partial_closes_and_margin_removals_keep_the_aggregate_exact(flab):
    """With funding on (longs 10 BTC, a short of 2: the short receives about
    10.7 USDC an hour of funding and pays 1.8 of fee), every path that
    rewrites a position's index (open, increase, partial close, a margin
    removal that keeps received funding accrued) must store its own side's
    index, or sum_size_index drifts from the positions and the valuation's
    B * (L + S) term counts fee nobody owes. After each step the engine's
    traders_claim equals the sum of each position's upnl - funding_owed
    within one unit a position, and a position just settled owes 0."""
    lab = flab
    set_rate(lab, MAX_RATE // 10)  # 31.5% a year: visible in an hour
    who = ["trader", "trader2", "attacker"]
    assert lab.open("trader", BTC, 10 * WAD, 100_000 * USDC)
    assert lab.open("trader2", BTC, -2 * WAD, 20_000 * USDC)
    gaps = []

    def check(step, settled=None):
        g = claim_gap(lab, who)
        gaps.append((step, float(g)))
        assert abs(g) <= len(who) + 1, (step, g)
        if settled:
            assert owed(lab, settled) == 0, step

    lab.round(dt=HOUR)
    check("an hour")
    o = owed(lab, "trader2")
    assert o < 0  # funding received beats the fee
    assert remove_margin(lab, "trader2", 100 * USDC)  # margin removal: the received funding stays accrued
    check("short removes margin")
    assert owed(lab, "trader2") < 0
    lab.round(dt=HOUR)
    assert lab.order("trader", BTC, -3 * WAD, 0)  # partial close of the long
    check("long closes 3", "trader")
    lab.round(dt=HOUR)
    assert lab.order("trader2", BTC, -WAD, 5_000 * USDC)  # the short increases
    check("short increases", "trader2")
    lab.round(dt=HOUR)
    assert lab.order("trader", BTC, WAD, 1_000 * USDC)  # the long increases
    check("long increases", "trader")
    lab.round(dt=HOUR)
    assert lab.order("trader2", BTC, WAD, 0)  # partial close of the short
    check("short closes 1", "trader2")
    assert lab.open("attacker", BTC, -WAD, 10_000 * USDC)
    lab.round({BTC: 79_000}, dt=HOUR)
    check("a new short, price moved")
    print("\n" + "; ".join(f"{s}: {g:+.3f}" for s, g in gaps))


def _bankrupt_long_and_a_short_target(lab):
    """A 100x long of 5 BTC and a short of 8 BTC at 80,000 (a reserve of
    520,000 on 1,000,000), a day of fee at 10%, then BTC at 78,000: the long
    is bankrupt by about 6,060, the short in profit 16,000, the only ADL
    target."""
    set_rate(lab, BORROW_10_PCT)
    assert lab.open("victim", BTC, 5 * WAD, 4_050 * USDC)
    assert lab.open("trader2", BTC, -8 * WAD, 50_000 * USDC)
    lab.round(dt=DAY)
    lab.round({BTC: 78_000})


def test_adl_target__settles_against_its_own_side_index(lab):
    """The bankrupt is long; its ADL target is short and must settle its
    fee against F - B (liquidate passes _pending_index(mid, price,
    -old.size)). With the long's index (F + B) the short's owed would be
    8 * (B_now + B_open) / SCALE negative: it would be paid the fee (and
    twice the index at its open) instead of paying it. Asserted: the target
    paid its day of fee (175.34 at 80,000, priced at the 78,000 of the
    accrual: 170.96), its rest stores F - B and owes 0, and the aggregate
    matches."""
    _bankrupt_long_and_a_short_target(lab)
    fee = owed(lab, "trader2")
    day_fee = 8 * 78_000 * BORROW_10_PCT * DAY * USDC // WAD
    assert day_fee <= fee <= day_fee + 10 * 8 * 80_000 * BORROW_10_PCT * USDC // WAD
    margin_before = lab.position("trader2", BTC)[2]
    lab.tx("keeper", "engine", "liquidate(address,uint256,address[])", lab.a["victim"], BTC, [lab.a["trader2"]])
    size, entry, margin, index = lab.position("trader2", BTC)[:4]
    st = state(lab)
    print(f"\ntarget's fee at the ADL: {fee / USDC:,.2f}; its rest: {size / WAD} BTC, margin "
          f"{margin_before / USDC:,.2f} -> {margin / USDC:,.2f}, index F - B = {index}")
    assert 0 < -size < 8 * WAD  # partly deleveraged
    assert index == st["funding_index"] - st["borrow_index"]
    assert owed(lab, "trader2") == 0
    # the rest's margin is its share of margin - fee (released pro rata, floored)
    # (the liquidation runs a second after the read: one more second of fee)
    assert abs(margin - (margin_before - fee) * -size // (8 * WAD)) <= 8 * 80_000 * BORROW_10_PCT * USDC // WAD + 1
    assert abs(claim_gap(lab, ["trader2"])) <= 2


def test_adl_deleverage_continuation__accrues_the_targets_side():
    """deleverage (a job continued later) accrues with -job.bankrupt_size:
    the targets' side. Played in the model (a pending job needs 21 targets):
    a 10 BTC long bankrupt at 78,000, twenty 0.4 BTC shorts listed cover 8
    of its 10 BTC, the job stays pending; a day later `deleverage` takes 2
    BTC from the last short (5 BTC): it pays two days of fee (F - B), its
    rest stores F - B and owes 0, and the valuation's aggregate equals the
    sum over positions."""
    from tests.model import worlds as W

    crowd = [W.address(0x2000 + i) for i in range(20)]
    big = W.address(0x3000)
    w = W.make_world(traders=[W.TRADER, big, *crowd], funding_k=0, max_funding_rate=0)
    w.call(W.OWNER, "set_borrow_rate", 0, BORROW_10_PCT)
    W.trade(w, W.TRADER, 0, 10 * WAD, 8_100 * USDC, 80_000 * WAD)
    for a in crowd:
        W.trade(w, a, 0, -4 * WAD // 10, 5_000 * USDC, 80_000 * WAD)
    W.trade(w, big, 0, -5 * WAD, 200_000 * USDC, 80_000 * WAD)
    W.advance(w, DAY)
    W.set_price(w, 0, 78_000 * WAD, now=w.now)
    targets = PE.adl_ranking(w, W.TRADER, 0)
    assert big not in targets and len(targets) == 20
    w.call(W.KEEPER, "liquidate", W.TRADER, 0, targets)
    assert w.e.adl_jobs[0] and w.e.adl_jobs[0][0].remaining > 0
    W.advance(w, DAY)
    fee = PE.funding_owed(w, big, 0)
    day2 = 5 * 78_000 * BORROW_10_PCT * 2 * DAY * USDC // WAD
    w.call(W.KEEPER, "deleverage", 0, [big])
    pos = w.e.positions[(big, 0)]
    st = w.e.state[0]
    print(f"\nthe continued job took {(5 * WAD + pos.size) / WAD} BTC of the last short; its fee then "
          f"{fee / USDC:,.2f} (two days at 78,000: {day2 / USDC:,.2f}); rest stores F - B: "
          f"{pos.funding_index == st.funding_index - st.borrow_index}")
    assert 0 < -pos.size < 5 * WAD
    assert fee >= day2 * 99 // 100
    assert pos.funding_index == st.funding_index - st.borrow_index
    assert PE.funding_owed(w, big, 0) == 0
    W.assert_aggregates(w)
    price = P._price(w, 0, False)
    total = sum(Fraction(p.size * (price - p.entry_price), SCALE) - PE.funding_owed(w, a, 0)
                for (a, m), p in w.e.positions.items() if m == 0)
    assert abs(PE.traders_claim(w) - total) <= len(w.e.positions) + 1


# ---------------------------------------------------------------- 4. the valuation

def _squat(lab):
    assert lab.open("attacker", BTC, 125 * WAD // 10, 11_000 * USDC)
    assert lab.open("attacker2", BTC, -125 * WAD // 10, 11_000 * USDC)


def test_valuation__a_timely_keeper_leaves_no_fee_beyond_margin(lab):
    """The hedged squat at 10% a year: each leg owes 273.97 a day. The
    entry valuation counts it as the LPs' (traders_claim negative); the
    exit valuation never counts it (totalAssets <= cash). A keeper that
    liquidates at the first liquidatable hour (day 21.9: equity just under
    the 5,000 maintenance, still positive) collects all of it: the entry
    valuation does not drop at the liquidation."""
    set_rate(lab, BORROW_10_PCT)
    _squat(lab)
    lab.round(dt=21 * DAY)
    while not liquidatable(lab, "attacker"):
        lab.round(dt=HOUR)
        val = lab.valuation()
        assert val["exit"] <= val["cash"]
    drops = []
    for a in ("attacker", "attacker2"):
        assert liquidatable(lab, a)
        entry = lab.valuation()["entry"]
        lab.tx("keeper", "engine", "liquidate(address,uint256,address[])", lab.a[a], BTC, [])
        drops.append(entry - lab.valuation()["entry"])
    print(f"\ntimely keeper: entry valuation drop at each liquidation {[d / USDC for d in drops]} USDC")
    assert all(d <= 2 for d in drops)


def test_valuation__fee_owed_beyond_margin_counts_for_depositors_until_liquidated(lab):
    """No keeper for 60 days: each leg owes 16,438.36 of fee on its 11,000
    (10,500 for the short leg) of margin. traders_claim counts all 32,876.73
    as the LPs' (docs/solvency.md:
    the entry valuation counts losses in full, even beyond margin, so a
    deposit never buys in below worth), though only the margins can be
    collected (hedged at an unchanged price: no ADL target is in profit, so
    the excess is socialised). A deposit made then pays for 11,376.73 of fee
    beyond margin, of which the insurance fund's 300.00 arrives: the entry
    valuation drops by 11,076.73 at the liquidations. The
    exit valuation stays <= cash (no redemption is inflated). Bound: the
    excess grows only while every keeper ignores a liquidatable position
    (here 38 days past liquidatable at 10%; 50 h at the cap for 100x)."""
    set_rate(lab, BORROW_10_PCT)
    _squat(lab)
    lab.round(dt=60 * DAY)
    val = lab.valuation()
    assert val["exit"] <= val["cash"]
    fees = [owed(lab, a) for a in ("attacker", "attacker2")]
    margins = [lab.position(a, BTC)[2] for a in ("attacker", "attacker2")]
    beyond = sum(f - m for f, m in zip(fees, margins))
    fund = lab.bal(lab.addr["fund"])
    entry = val["entry"]
    for a in ("attacker", "attacker2"):
        lab.tx("keeper", "engine", "liquidate(address,uint256,address[])", lab.a[a], BTC, [])
    drop = entry - lab.valuation()["entry"]
    print(f"\n60 days unliquidated: fees {[f / USDC for f in fees]}, margins {[m / USDC for m in margins]}; "
          f"beyond margin {beyond / USDC:,.2f}; the fund covered {fund / USDC:,.2f}; "
          f"entry valuation drop at the liquidations {drop / USDC:,.2f}")
    assert beyond > 10_000 * USDC
    # what the entry valuation counted and lost: the fee beyond margin, less what the fund paid
    assert abs(drop - (beyond - fund)) <= 10 * USDC
    assert lab.valuation()["exit"] <= lab.valuation()["cash"]


# ---------------------------------------------------------------- 5. time alone: the keeper sees it

def test_time_alone_liquidation__the_keeper_plans_it():
    """A 100x long at an unchanged price becomes liquidatable by the fee
    alone (at the cap: after (10,000 - 5,000) / 100 per hour = 50 h). The
    keeper plans from its mirror (market_state, borrow index and rate
    included, read every block) at the next block's time: Keeper._due lists
    the liquidation from the first second the model (and so the engine,
    which it mirrors) calls it liquidatable, and not before."""
    from bots.keeper import Keeper
    from tests.model import worlds as W

    w = W.make_world(funding_k=0, max_funding_rate=0)
    w.call(W.OWNER, "set_borrow_rate", 0, MAX_RATE)
    W.trade(w, W.TRADER, 0, 125 * WAD // 10, 10_000 * USDC, 80_000 * WAD)
    k = Keeper.__new__(Keeper)
    k.in_flight, k._stale_logged, k._expired_logged = {}, set(), set()

    def due(at):
        c = copy.deepcopy(w)
        W.advance(c, at - c.now)
        return PE.is_liquidatable(c, W.TRADER, 0), [a.kind for a in k._due(c) if a.account == W.TRADER]

    t0 = w.now
    lo, hi = t0, t0 + 60 * HOUR
    assert due(hi)[0] and not due(lo)[0]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if due(mid)[0] else (mid, hi)
    print(f"\nliquidatable by time alone after {(hi - t0) / HOUR:.2f} h; keeper's plan then: {due(hi)[1]}, "
          f"a second before: {due(lo)[1]}")
    assert 49.5 * HOUR <= hi - t0 <= 50.5 * HOUR
    assert due(hi)[1] == ["liquidate"] and due(lo)[1] == []


def test_time_alone_liquidation__the_engine_accepts_it(lab):
    """The same on the contracts: at the cap, the 100x long at an unchanged
    80,000 is refused (`position healthy`) at 49 h and liquidated at 51 h."""
    set_rate(lab, MAX_RATE)
    assert lab.open("victim", BTC, 125 * WAD // 10, 10_000 * USDC)
    lab.round(dt=49 * HOUR)
    assert lab.reason("keeper", "engine", "liquidate(address,uint256,address[])", lab.a["victim"], BTC, []) \
        == "position healthy"
    lab.round(dt=2 * HOUR)
    lab.tx("keeper", "engine", "liquidate(address,uint256,address[])", lab.a["victim"], BTC, [])
    assert lab.position("victim", BTC)[0] == 0


# ---------------------------------------------------------------- 6. the payout cap

def test_past_cap__the_fee_owed_counts_against_the_cap(lab):
    """A long of 1 BTC from 80,000 at 50% max profit: cap 40,000. At
    120,000 its price profit is exactly the cap, but it owes a day of fee
    (21.92 at 10%): net of it the position is below its cap and nobody can
    close it at any round (`not triggered`). At 121,000 it is past the cap:
    anyone closes it, and the vault pays the price profit less the fee, at
    most the cap."""
    set_rate(lab, BORROW_10_PCT)
    assert lab.open("trader", BTC, WAD, 10_000 * USDC)
    lab.round(dt=DAY)
    lab.round({BTC: 120_000})
    assert owed(lab, "trader") > 0
    assert lab.reason("keeper", "engine", "execute_tp_sl(address,uint256)", lab.a["trader"], BTC) == "not triggered"
    lab.round({BTC: 121_000})
    cash = lab.v("cash()")
    fee_owed = owed(lab, "trader")
    lab.tx("keeper", "engine", "execute_tp_sl(address,uint256)", lab.a["trader"], BTC)
    paid = cash - lab.v("cash()")
    print(f"\nat the cap with {fee_owed / USDC:,.2f} of fee owed: the vault paid {paid / USDC:,.2f} net (cap 40,000)")
    fee = -(-121_000 * USDC * 5 // 10_000)  # 5 bps of the close's notional, 30% to the fund
    assert abs(paid - (40_000 * USDC - (fee - fee * 3 // 10))) <= 1


# ---------------------------------------------------------------- 7. overflow: |F| + B < 2**127

def test_overflow__the_index_bound_in_time():
    """B grows by at most MAX_BORROW_RATE * price a second. At a configured
    market's highest sound price (Sepolia BTC 10,000,000 USD) it needs 2e13
    years to reach 2**127. But a market without price bounds (a new market
    accepts any price below 2**128 until set_oracle bounds it; the devnet's
    markets) at a price near 2**128 reaches it in 208 days (57.9 at the
    first cap, 1e11/s; decision 96 first said "10^20 years", corrected);
    past it every accrual reverts `funding: index overflow`, so no order,
    liquidation or close can run in that market. Funding at
    MAX_FUNDING_RATE at that price does it in 1.4 hours, so the fee adds no
    new exposure."""
    from scripts import config as cfg

    year = 365 * DAY
    top = P.MAX_PRICE - 1
    t_top = OFFSET // MF.borrow_step(MAX_RATE, top, 1)
    t_fund = OFFSET // MF.index_step(P.MAX_FUNDING_RATE, top, 1)
    bounded = {m["name"]: OFFSET // MF.borrow_step(MAX_RATE, m["max_price"] * WAD, 1) // year
               for m in cfg.load("sepolia")["markets"]}
    print(f"\nto 2**127 at the cap: {t_top / DAY:.1f} days at a 2**128 price (funding at its cap: {t_fund / HOUR:.1f} h); "
          f"years at the configured max prices: {bounded}")
    assert all(y > 10**9 for y in bounded.values())
    assert 208 * DAY < t_top < 209 * DAY
    assert t_fund < t_top


def test_past_cap__a_winner_beyond_its_cap_holds_its_reserve_without_paying_the_fee(lab):
    """The cap absorbs the fee: _capped_pnl pays min(pnl, cap + owed), so a
    position whose price profit exceeds cap + owed closes for margin + cap
    whatever fee it owes. A 1 BTC long from 80,000 at 130,000 (profit
    50,000, cap 40,000) left open 30 days at 10% owes 1,068.49 of fee (the
    whole month priced at the 130,000 of the touch) and is paid exactly
    what it would have been paid a month earlier (49,934.00: margin + cap -
    trading and execution fees): holding its
    40,000 of reserve cost it nothing. What bounds it: the same position is
    past its cap, so anyone may close it at any round (decision 95) and the
    keeper plans that close; the fee is free only for a position anyone can
    close. Asserted: the payout does not depend on the fee, and the close
    is open to a stranger at once."""
    set_rate(lab, BORROW_10_PCT)
    assert lab.open("trader", BTC, WAD, 10_000 * USDC)
    lab.round({BTC: 130_000})
    pays = {}
    for days in (0, 30):
        snap = lab.b.snapshot()
        prices = list(lab.prices)
        lab.round(dt=days * DAY + 1)
        fee = owed(lab, "trader")
        free = lab.free("trader")
        lab.tx("stranger", "engine", "execute_tp_sl(address,uint256)", lab.a["trader"], BTC)
        pays[days] = (fee, lab.free("trader") - free)
        lab.b.restore(snap)
        lab.prices = prices
    print(f"\npast the cap: fee owed {pays[0][0] / USDC:,.2f} -> {pays[30][0] / USDC:,.2f} after 30 days; "
          f"paid {pays[0][1] / USDC:,.2f} -> {pays[30][1] / USDC:,.2f}")
    assert pays[30][0] - pays[0][0] >= 30 * 80_000 * BORROW_10_PCT * DAY * USDC // WAD
    assert pays[30][1] == pays[0][1]


def test_capacity_squat_by_the_majority_lp__pays_the_fee_mostly_to_itself(lab):
    """Finding 3 again, by an attacker that owns 90% of the vault: it
    deposits 9,000,000 beside the LP's 1,000,000 and squats the whole
    10,000,000 of capacity (125 BTC long and short at 80,000). The fee,
    5,479.45 a day, goes to the vault, 90% of it back to the attacker: the
    squat costs it only the LP's 10% share, 547.95 a day (about 20% a year
    of the LP's 1,000,000, twice the rate). The LP's redemption is cut to
    the free cash while it holds; the LP is paid for the wait at twice the
    rate on its whole stake, whoever squats. Asserted: after 20 days the
    LP's value grew by at least 2 * rate * 20 days on its stake and the
    attacker lost what the LP gained (within the trading fees)."""
    set_rate(lab, BORROW_10_PCT)
    assert lab.lp_in("attacker", 9 * SEED) > 0
    lp0 = lab.v("convertToAssets(uint256)", lab.shares("lp"))
    att0 = lab.v("convertToAssets(uint256)", lab.shares("attacker"))
    start = sum(lab.bal(a) + lab.free(a) for a in ("attacker", "attacker2")) + 2 * (165_000 * USDC + 10 * USDC)
    assert lab.open("attacker", BTC, 125 * WAD, 110_000 * USDC)
    assert lab.open("attacker2", BTC, -125 * WAD, 110_000 * USDC)
    val = lab.valuation()
    assert val["free"] < 10_000 * USDC
    got = lab.lp_out("lp", lab.shares("lp") // 10)
    assert got < 10_000 * USDC
    lab.round(dt=20 * DAY)
    for a in ("attacker", "attacker2"):
        lab.close(a, BTC)
        lab.withdraw_all(a)
    lp1 = lab.v("convertToAssets(uint256)", lab.shares("lp")) + got
    att1 = lab.v("convertToAssets(uint256)", lab.shares("attacker"))
    end = sum(lab.bal(a) for a in ("attacker", "attacker2"))
    attacker = (end - start) + (att1 - att0)
    floor = 2 * BORROW_10_PCT * 20 * DAY * lp0 // WAD
    print(f"\nmajority-LP squat, 20 days: the LP's 10% request paid {got / USDC:,.2f}; LP "
          f"{(lp1 - lp0) / USDC:+,.2f} (2 x rate on its stake: {floor / USDC:,.2f}); attacker, trader legs and "
          f"shares together, {attacker / USDC:+,.2f}")
    assert lp1 - lp0 >= floor
    assert -attacker >= (lp1 - lp0) * 9 // 10
