"""Model worlds for the pure-Python tests: the devnet configuration of
config/networks.yaml (read through scripts/config.py), role-named actors,
and the invariants every step must keep.

No chain here: the World is the model alone (model/protocol.py).
"""

from dataclasses import replace

from model import World
from model import positions as P
from scripts import config as cfg

USDC = 10**6
WAD = 10**18
FEED_DECIMALS = 8
T0 = 1_700_000_000
MAX_UINT = 2**256 - 1


def address(n):
    return "0x" + format(n, "040x")


OWNER = address(0x0E)
ENGINE = address(0xE0)
VAULT = address(0xA0)
FUND = address(0xF0)
LP = address(0x1F)
KEEPER = address(0x4E)
TRADER = address(0x71)
OTHER_TRADER = address(0x72)
CROWD = [address(0x1000 + i) for i in range(8)]
TRADERS = [TRADER, OTHER_TRADER, *CROWD]


def feed_address(mid):
    return address(0xFEED00 + mid)


def default_markets():
    """The `local` entry of config/networks.yaml: BTC-PERP and ETH-PERP."""
    return cfg.load("local")["markets"]


def make_world(*, markets=None, now=T0, lp_assets=5_000_000 * USDC, insurance=0,
               traders=TRADERS, trader_funds=1_000_000 * USDC, deposit=True, **overrides):
    """A World with the configured markets, an LP deposit in the vault,
    `insurance` tokens in the fund, and each trader minted `trader_funds`
    and (when `deposit`) holding them as free collateral.

    `overrides` replace MarketParams fields of every market (e.g. trading_fee=0).
    """
    w = World(engine=ENGINE, vault=VAULT, fund=FUND, owner=OWNER, token_decimals=6, now=now)
    w.call(OWNER, "initialize", VAULT, FUND)
    for mid, m in enumerate(markets if markets is not None else default_markets()):
        feed = feed_address(mid)
        w.add_feed(feed, FEED_DECIMALS, m["initial_price"] * 10**FEED_DECIMALS)
        params = replace(cfg.market_params(m, feed, 6), **overrides)
        w.call(OWNER, "add_market", params)
    if lp_assets:
        w.mint(LP, lp_assets)
        w.approve(LP, VAULT, MAX_UINT)
        w.call(LP, "vault.deposit", lp_assets, LP)
    if insurance:
        w.mint(FUND, insurance)
    for t in traders:
        if trader_funds:
            w.mint(t, trader_funds)
            w.approve(t, ENGINE, MAX_UINT)
            if deposit:
                w.call(t, "deposit", trader_funds)
    return w


def price_of(w, mid):
    """The feed's answer, 1e18."""
    return P._price(w, mid, False)


def set_price(w, mid, price_wad, now=None):
    """Move market `mid`'s feed to `price_wad` (1e18), stamped at `now`."""
    w.set_answer(feed_address(mid), price_wad // 10 ** (18 - FEED_DECIMALS), now=now)


def advance(w, seconds):
    """Let time pass and re-stamp every feed at its current answer, so the
    price stays fresh (no `stale price`) while funding accrues."""
    w.now += seconds
    for f in w.feeds.values():
        f.set_answer(f.answer, w.now)


def capital(w, account):
    """What an account could walk away with without closing anything."""
    return w.token.balance_of(account) + w.e.free.get(account, 0)


def open_positions(w, account):
    return [mid for (a, mid) in w.e.positions if a == account]


# ---------------------------------------------------------------- invariants


def assert_token_conservation(w):
    """The engine holds exactly free collateral plus margins (fees are settled
    at once, so nothing is owed), and no token appears or disappears."""
    free = sum(w.e.free.values())
    margins = sum(p.margin for p in w.e.positions.values())
    engine = w.token.balance_of(ENGINE)
    assert engine == free + margins, f"engine holds {engine}, free {free} + margins {margins}"
    assert sum(w.token.balances.values()) == w.token.total_supply
    assert all(b >= 0 for b in w.token.balances.values())
    assert all(f >= 0 for f in w.e.free.values())


def assert_aggregates(w):
    """Open interest, cost and funding aggregates, and the side sets, equal
    the sums over positions."""
    for mid in range(w.e.market_count):
        longs = {a: p for (a, m), p in w.e.positions.items() if m == mid and p.size > 0}
        shorts = {a: p for (a, m), p in w.e.positions.items() if m == mid and p.size < 0}
        st = w.e.state[mid]
        assert st.long_oi == sum(p.size for p in longs.values())
        assert st.short_oi == sum(-p.size for p in shorts.values())
        assert st.long_cost == sum(p.size * p.entry_price for p in longs.values())
        assert st.short_cost == sum(-p.size * p.entry_price for p in shorts.values())
        assert st.sum_size_index == sum(p.size * p.funding_index for p in {**longs, **shorts}.values())
        assert w.view("open_interest", mid) == (st.long_oi, st.short_oi)
        members_long = w.e.members.get(mid * 2, [])
        members_short = w.e.members.get(mid * 2 + 1, [])
        assert sorted(members_long) == sorted(longs) and len(set(members_long)) == len(members_long)
        assert sorted(members_short) == sorted(shorts) and len(set(members_short)) == len(members_short)
    assert all(p.size != 0 for p in w.e.positions.values())
