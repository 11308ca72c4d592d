"""Shared steps for the PerpExits tests: market parameters, opening positions
on both twins (by order: request, a later round at the same price, execution
by the keeper), reading events on chain and in the model, and the solvency
check (token conservation) that every liquidation test runs.

Every number a test asserts is written out by hand in the test itself; these
helpers only drive the twin and read state.

Orders cost the trader the market's execution fee (1 USDC on the default
devnet parameters), paid to whoever executes them: in these tests that is
the keeper unless a test names another executor, so the keeper's free
collateral grows by 1 USDC per order it executes, and tests that look at the
keeper's balance measure it across the one action they are about.
"""

from dataclasses import replace

from ape import chain

USDC = 10**6
WAD = 10**18
BPS = 10**14
FEED = 10**8  # MockAggregator answers carry 8 decimals
BTC = 0
EXEC_FEE = 1 * USDC  # the default market's execution fee
KEEPER = 3  # tests/conftest.py lists the roles owner, trader, other_trader, keeper, ...


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


def oracle(twin, mid=BTC):
    """The market's current oracle price (WAD), as the model holds it."""
    return twin.w.feeds[twin.p.feeds[mid].address].answer * twin.w.e.feed_scale[mid]


def keeper_of(twin):
    """The keeper account: the default executor of the helpers' orders."""
    return twin.accounts[KEEPER]


def order(twin, who, size, margin, acceptable, mid=BTC, executor=None):
    """A whole order (request, a later round at the same price, execution)
    that must execute; returns the order id."""
    executed, reason = twin.order(who, mid, size, margin, acceptable, executor or keeper_of(twin))
    assert executed, f"order request reverted or execution cancelled it: {reason!r}"
    return twin.w.e.order_count


def cancelled(twin, who, size, margin, acceptable, reason, mid=BTC, executor=None):
    """A whole order whose execution must cancel it with `reason` (the
    OrderCancelled event, which Twin.act checks is the same on chain and in
    the model); returns the order id."""
    executor = executor or keeper_of(twin)
    ok_, got, oid = twin.request(who, mid, size, margin, acceptable)
    assert ok_, f"request_order reverted {got!r}"
    twin.restamp(mid, executor)
    status, got = twin.execute(executor, oid)
    assert (status, got) == ("cancelled", reason), f"order {oid} {status} {got!r}, expected cancelled {reason!r}"
    assert int(twin.p.engine.get_order(oid)[0], 16) == 0  # deleted
    return oid


def request_reverts(twin, who, size, margin, acceptable, reason, mid=BTC):
    """request_order must revert with `reason` on both twins."""
    reverts(twin, who, "request_order", mid, size, margin, acceptable, reason=reason)


def open_position(twin, who, size, margin, mid=BTC, deposit=None, funded=True, executor=None):
    """Deposit (minting first unless `funded`) and open by order at the
    oracle price: the acceptable price is the current price, which the
    execution round repeats, so the escrowed trading fee is the one charged.
    The trader pays margin + trading fee + the execution fee."""
    if not funded:
        twin.fund(who, deposit or margin * 2)
    ok(twin, who, "deposit", deposit or margin * 2)
    return order(twin, who, size, margin, oracle(twin, mid), mid, executor)


def close(twin, who, size, acceptable=None, mid=BTC, executor=None):
    """A reduce order of `size` (a long reduces with a negative size) that
    must execute; the acceptable price defaults to one that never binds."""
    if acceptable is None:
        acceptable = 0 if size < 0 else 2**128 - 1
    return order(twin, who, size, 0, acceptable, mid, executor)


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
    balanceOf(engine) == sum of free collateral + sum of position margins
    + the escrow of every pending order."""
    e = twin.p.engine
    holders = {str(getattr(a, "address", a)) for a in twin.accounts} | set(twin.w.e.free)
    free_sum = sum(e.free_collateral(a) for a in holders)
    margins = 0
    for mid in range(e.market_count()):
        for is_long in (True, False):
            for i in range(e.position_count(mid, is_long)):
                margins += e.get_position(e.position_at(mid, is_long, i), mid).margin
    escrows = sum(e.get_order(oid).escrow for oid in range(1, e.order_count() + 1))
    assert twin.p.token.balanceOf(e) == free_sum + margins + escrows, (
        f"engine holds {twin.p.token.balanceOf(e)}, owes {free_sum} free + {margins} margins + {escrows} escrow")
    w = twin.w
    assert w.token.balance_of(w.engine_address) == sum(w.e.free.values()) + sum(
        p.margin for p in w.e.positions.values()) + sum(w.view("get_order", oid).escrow for oid in w.e.orders)


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
