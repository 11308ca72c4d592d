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
ANY_PRICE = P.MAX_PRICE - 1  # the highest acceptable price an order may name: a buy at any price


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
    if lp_assets:
        # before any market: no feed to wait for, so the epoch settles at once
        w.mint(LP, lp_assets)
        w.approve(LP, VAULT, MAX_UINT)
        lp_deposit(w, LP, lp_assets)
    for mid, m in enumerate(markets if markets is not None else default_markets()):
        feed = feed_address(mid)
        w.add_feed(feed, FEED_DECIMALS, m["initial_price"] * 10**FEED_DECIMALS)
        params = replace(cfg.market_params(m, feed, 6), **overrides)
        w.call(OWNER, "add_market", params)
    if insurance:
        w.mint(FUND, insurance)
    for t in traders:
        if trader_funds:
            w.mint(t, trader_funds)
            w.approve(t, ENGINE, MAX_UINT)
            if deposit:
                w.call(t, "deposit", trader_funds)
    return w


def lp_deposit(w, lp, assets, settler=None):
    """An LP deposit through the vault's epochs (ERC-7540): requestDeposit,
    a later round on every feed one second on (when any market exists),
    settle by `settler` (the LP itself by default), and the claim. Returns
    the shares claimed."""
    w.call(lp, "vault.requestDeposit", assets, lp, lp)
    if w.e.market_count:
        advance(w, 1)
    w.call(settler or lp, "vault.settle")
    return w.call(lp, "vault.deposit", w.view("vault.claimable_deposit", lp), lp)


def lp_redeem(w, lp, shares, settler=None):
    """An LP redemption through the vault's epochs: requestRedeem, a later
    round on every feed one second on, settle, and the claim of whatever
    free cash paid (the rest is back in the LP's shares). Returns the
    assets claimed (0 when free cash paid nothing)."""
    w.call(lp, "vault.requestRedeem", shares, lp, lp)
    advance(w, 1)
    w.call(settler or lp, "vault.settle")
    claimable = w.view("vault.claimable_redeem", lp)
    if claimable == 0:
        return 0
    return w.call(lp, "vault.redeem", claimable, lp, lp)


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


# ---------------------------------------------------------------- orders


def later_round(w, mid, dt=1):
    """A new round of market `mid`'s feed at its current answer, `dt`
    seconds later: the price an order requested before it waits for."""
    feed = feed_address(mid)
    w.set_answer(feed, w.feeds[feed].answer, now=w.now + dt)


def execute(w, order_id, executor=KEEPER):
    """execute_order by `executor`; None when the order executed, else the
    reason of its OrderCancelled (an execution revert raises Revert)."""
    n = len(w.events)
    w.call(executor, "execute_order", order_id)
    for name, f in w.events[n:]:
        if name == "OrderCancelled":
            return f["reason"]
        if name == "OrderExecuted":
            return None
    raise AssertionError(f"execute_order({order_id}) logged neither OrderExecuted nor OrderCancelled")


def order(w, sender, mid, size_delta, margin_delta, acceptable, executor=KEEPER):
    """A whole order: request (a revert raises Revert), a later round at the
    same answer one second on, execution. None when it executed, else the
    reason it was cancelled with."""
    oid = w.call(sender, "request_order", mid, size_delta, margin_delta, acceptable)
    later_round(w, mid)
    return execute(w, oid, executor)


def trade(w, sender, mid, size_delta, margin_delta, acceptable, executor=KEEPER):
    """An order that must execute."""
    reason = order(w, sender, mid, size_delta, margin_delta, acceptable, executor)
    assert reason is None, f"order {size_delta} / {margin_delta} of {sender} in market {mid} cancelled: {reason}"


def close(w, sender, mid, executor=KEEPER):
    """A full close through an order (acceptable at any price)."""
    size = w.e.positions[(sender, mid)].size
    trade(w, sender, mid, -size, 0, 0 if size > 0 else ANY_PRICE, executor)


def escrows(w, account=None):
    """Collateral held by pending orders (of `account`, or of everyone)."""
    return sum(P._escrow(w, o) for o in w.e.orders.values() if account is None or o.account == account)


# ---------------------------------------------------------------- invariants


def assert_token_conservation(w):
    """The engine holds exactly free collateral plus margins plus the escrow
    of pending orders (fees are settled at once, so nothing is owed), and no
    token appears or disappears."""
    free = sum(w.e.free.values())
    margins = sum(p.margin for p in w.e.positions.values())
    held = escrows(w)
    engine = w.token.balance_of(ENGINE)
    assert engine == free + margins + held, f"engine holds {engine}, free {free} + margins {margins} + escrows {held}"
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
