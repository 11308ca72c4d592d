"""How fast the model evaluates what a keeper evaluates every price tick:
`is_liquidatable` for 10,000 open positions at one price. A benchmark, not a
timed assert: the test checks the answers (so it can fail on a wrong
result) and prints the figure; run it alone to read it:

    python -m tests.model.test_speed
"""

import time

from model import perp_engine, perp_orders
from model import positions as P
from model.positions import MAX_SIDE_POSITIONS
from tests.model.worlds import KEEPER, USDC, WAD, address, default_markets, make_world, price_of, set_price

N_ACCOUNTS = 10_000
LEVERAGES = (2, 5, 10, 20, 50, 100)


def _direct(w, sender, fn, *args):
    """Run a verb's model function without World.call's snapshot (setup only:
    a snapshot deep-copies the whole world, which is what this file avoids
    measuring)."""
    w.sender = w.caller = sender
    return fn(w, *args)


def build_book(n=N_ACCOUNTS):
    """n accounts, each with one 0.1 BTC-sized position, spread over enough
    copies of BTC-PERP that no side exceeds MAX_SIDE_POSITIONS. Account k is
    long when k is even, at leverage LEVERAGES[k // 2 % 6]."""
    per_market = 2 * MAX_SIDE_POSITIONS
    n_markets = -(-n // per_market)
    btc = default_markets()[0]
    w = make_world(markets=[dict(btc, name=f"BTC-{i}") for i in range(n_markets)], traders=[], lp_assets=10**9 * USDC)
    accounts = [address(0x10_0000 + k) for k in range(n)]
    price = price_of(w, 0)
    size = WAD // 10
    notional = size * price // 10**30
    orders = []
    for k, a in enumerate(accounts):
        mid = k // per_market
        lev = LEVERAGES[k // 2 % len(LEVERAGES)]
        w.mint(a, 20_000 * USDC)
        w.approve(a, w.engine_address, 2**256 - 1)
        _direct(w, a, perp_engine.deposit, 20_000 * USDC)
        long_ = k % 2 == 0
        # acceptable = the price: the escrowed fee is the fee charged, so
        # the margin moved in is notional // lev exactly
        orders.append((mid, _direct(w, a, perp_orders.request_order, mid, size if long_ else -size,
                                    notional // lev, price)))
    # a later round at the same answer, then each order's execution. The
    # inner half directly (as the engine calls it): execute_order's nested
    # snapshot of a 10,000-position world per order is what this file avoids
    w.now += 1
    for f in w.feeds.values():
        f.set_answer(f.answer, w.now)
    for mid, oid in orders:
        _direct(w, w.engine_address, perp_orders.execute_order_inner, oid, KEEPER, P._price(w, mid, True))
    assert not w.e.orders and len(w.e.positions) == n
    return w, accounts, per_market


def bench_is_liquidatable(n=N_ACCOUNTS, drop_bps=300):
    """Seconds to evaluate is_liquidatable for n accounts after every market
    drops by drop_bps, and the accounts found liquidatable."""
    w, accounts, per_market = build_book(n)
    for mid in range(w.e.market_count):
        p = price_of(w, mid)
        set_price(w, mid, p - p * drop_bps // 10_000)
    t0 = time.perf_counter()
    hits = [a for k, a in enumerate(accounts) if w.view("is_liquidatable", a, k // per_market)]
    return time.perf_counter() - t0, hits, accounts


def test_is_liquidatable__10k_accounts_at_one_tick__benchmark():
    seconds, hits, accounts = bench_is_liquidatable()
    # A 3% fall liquidates exactly the longs at 50x and 100x (liquidation 1.5%
    # and 0.5% away); 20x longs sit 4.5% away; no short is hurt by a fall.
    expected = [a for k, a in enumerate(accounts) if k % 2 == 0 and LEVERAGES[k // 2 % 6] >= 50]
    assert hits == expected
    assert len(hits) == 1666  # even k = 2j with j % 6 in (4, 5), j < 5000
    print(f"\nmodel is_liquidatable: {len(accounts)} accounts in {seconds * 1000:.0f} ms "
          f"({seconds / len(accounts) * 1e6:.1f} us each), {len(hits)} liquidatable")


if __name__ == "__main__":
    s, h, acc = bench_is_liquidatable()
    print(f"is_liquidatable x {len(acc)}: {s * 1000:.0f} ms ({s / len(acc) * 1e6:.1f} us each); {len(h)} liquidatable")
