"""Shared steps for the PerpExits tests: market parameters, opening positions
on both twins, reading events on chain and in the model, and the solvency
check (token conservation) that every liquidation test runs.

Every number a test asserts is written out by hand in the test itself; these
helpers only drive the twin and read state.
"""

from dataclasses import replace

from ape import chain

from model.fixed_point import MAX_UINT256

USDC = 10**6
WAD = 10**18
BPS = 10**14
FEED = 10**8  # MockAggregator answers carry 8 decimals
BTC = 0


def usd(x):
    """A feed answer for a USD price (8 decimals); x may be a string like "79300.5"."""
    whole, _, frac = str(x).partition(".")
    return int(whole) * FEED + int((frac + "00000000")[:8])


def set_params(twin, owner, mid=BTC, **changes):
    """set_market_params with some fields changed, on both twins."""
    p = replace(twin.w.e.params[mid], **changes)
    ok, reason = twin.act(owner, "set_market_params", mid, p.as_tuple())
    assert ok, reason


def no_funding(twin, owner, mid=BTC, **changes):
    """Funding off (so equity stays put between blocks) plus any other changes."""
    set_params(twin, owner, mid, funding_k=0, max_funding_rate=0, **changes)


def price(twin, owner, usd_price, mid=BTC):
    twin.set_price(mid, usd(usd_price), owner)


def _plain(args):
    """Lists of accounts (ADL targets) as address strings, for both twins."""
    return [[str(getattr(x, "address", x)) for x in a] if isinstance(a, (list, tuple)) else a for a in args]


def ok(twin, sender, verb, *args):
    """Run a verb on both twins and insist it succeeds."""
    success, reason = twin.act(sender, verb, *_plain(args))
    assert success, f"{verb} reverted {reason!r}"


def reverts(twin, sender, verb, *args, reason):
    """Run a verb on both twins (which must agree) and insist on `reason`."""
    success, got = twin.act(sender, verb, *_plain(args))
    assert not success, f"{verb} succeeded, expected {reason!r}"
    assert got == reason, f"{verb} reverted {got!r}, expected {reason!r}"


def open_position(twin, who, size, margin, mid=BTC, deposit=None, funded=True):
    """Deposit (minting first unless `funded`) and open at the oracle price,
    with a slippage bound that never binds."""
    if not funded:
        twin.fund(who, deposit or margin * 2)
    ok(twin, who, "deposit", deposit or margin * 2)
    ok(twin, who, "open_position", mid, size, margin, MAX_UINT256 if size > 0 else 0)


def seed_fund(twin, amount):
    """Mint tokens straight into the insurance fund, on both twins."""
    fund = twin.p.insurance_fund.address
    twin._next_time()
    twin.p.token.mint(fund, amount, sender=twin.accounts[0])
    twin.w.mint(fund, amount)


def position(twin, who, mid=BTC):
    """(size, entry_price, margin, funding_index, take_profit, stop_loss) on chain."""
    return tuple(int(x) for x in twin.p.engine.get_position(who, mid))


def free(twin, who):
    return twin.p.engine.free_collateral(who)


def balance(twin, holder):
    return twin.p.token.balanceOf(holder)


def chain_events(name):
    """Events `name` of the last mined transaction, as dicts."""
    tx = chain.blocks.head.transactions[-1]
    receipt = chain.provider.get_receipt(tx.txn_hash.hex() if hasattr(tx.txn_hash, "hex") else tx.txn_hash)
    return [dict(log.event_arguments) for log in receipt.events if log.event_name == name]


def model_events(twin, name, since=0):
    return [dict(f) for n, f in twin.w.events[since:] if n == name]


def norm(events):
    """Events with addresses lower-cased, for chain/model comparison."""
    return [{k: (v.lower() if isinstance(v, str) else v) for k, v in e.items()} for e in events]


def assert_events_agree(twin, name, since):
    """The last transaction's `name` events on chain equal the model's."""
    c, m = norm(chain_events(name)), norm(model_events(twin, name, since))
    assert c == m, f"{name}: chain {c} model {m}"
    return c


def assert_conserved(twin):
    """Token conservation to the unit, on chain and in the model:
    balanceOf(engine) == sum of free collateral + sum of position margins."""
    e = twin.p.engine
    holders = {str(getattr(a, "address", a)) for a in twin.accounts} | set(twin.w.e.free)
    free_sum = sum(e.free_collateral(a) for a in holders)
    margins = 0
    for mid in range(e.market_count()):
        for is_long in (True, False):
            for i in range(e.position_count(mid, is_long)):
                margins += e.get_position(e.position_at(mid, is_long, i), mid).margin
    assert twin.p.token.balanceOf(e) == free_sum + margins, (
        f"engine holds {twin.p.token.balanceOf(e)}, owes {free_sum} free + {margins} margins")
    w = twin.w
    assert w.token.balance_of(w.engine_address) == sum(w.e.free.values()) + sum(
        p.margin for p in w.e.positions.values())


def step(twin):
    """After every step: model equals chain, and the engine is solvent."""
    twin.assert_same()
    assert_conserved(twin)


def haircuts(twin, since):
    """AutoDeleveraged events of the last transaction (chain == model), as
    (target lower-cased, size, haircut)."""
    return [(e["target"], e["size"], e["haircut"]) for e in assert_events_agree(twin, "AutoDeleveraged", since)]


def hand_score(size, entry, px, margin_):
    """The ADL score written out for a position in profit:
    (upnl / margin) * (notional / (margin + upnl)), each division floored."""
    upnl = size * (px - entry) // 10**30
    notional = abs(size) * px // 10**30
    assert upnl > 0
    return (upnl * WAD // margin_) * notional // (margin_ + upnl)
