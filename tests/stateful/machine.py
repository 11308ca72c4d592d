"""The differential state machine: contracts and model/, same random actions,
exact comparison after every step.

    Session(backend)        deploys nothing itself: it mirrors the backend's
                            freshly deployed protocol into a model World, then
                            funds the actors on both (the base state)
    machine_for(session)    the RuleBasedStateMachine class bound to it

Layout (STYLE.md): `Twin` runs one verb on chain and model at the same block
timestamp and compares outcomes; `BackstopActions` is the per-example base
(snapshot/restore, the comparison invariant, SPEC section 8 checks, event
labels); `BackstopMachine` holds the rules. Rules restrict their strategies
to reach interesting states (positions near liquidation, crash gaps through
bankruptcy, an insurance fund that is often empty, a crowd big enough to need
more than one ADL call) instead of filtering with assume().

Every rule's reverts are compared reason for reason; a step where nothing
succeeded must leave every stored value unchanged on chain (and the model's
World restores itself on Revert).

Replay a failure: rerun the test (hypothesis replays it from .hypothesis/),
or set BACKSTOP_REPRODUCE="<version> <blob>" from the printed
@reproduce_failure line; run() applies it to the machine class.
"""

import copy
import gc
import os
import time
from collections import Counter

from eth_utils import to_checksum_address
from hypothesis import event, reproduce_failure, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from model import World, adl, liquidity_vault, margin, perp_engine
from scripts.governance import OWNER_VERBS
from model import positions as P
from model.fixed_point import Revert
from model.mocks import Feed
from tests.stateful.backends import ZERO_ORDER, extra_feeds
from tests.stateful.funding_check import check_funding, funding_before

USDC = 10**6
WAD = 10**18
FEED_UNIT = 10**8
BPS = 10**14
MAX_UINT = 2**256 - 1
BORROW_10_PCT = 10**17 // (365 * 86400)  # 10% of notional a year, per second
MAX_BORROW_RATE = 10**14 // 3600  # positions.MAX_BORROW_RATE: 1 bp of notional an hour
ANY_PRICE = P.MAX_PRICE - 1  # the highest acceptable price an order may name: a buy at any price
N_TRADERS = 25
# Role -> index in ape's test accounts (30 of them; tests/conftest.py uses the same).
ANVIL_ROLES = {"owner": 0, "trader0": 1, "trader1": 2, "keeper": 3, "lp": 4, "pauser": 5, "lp2": 6}
ANVIL_ROLES.update({f"trader{i}": 5 + i for i in range(2, N_TRADERS)})
ROLES = list(ANVIL_ROLES)

LABELS = ("oracle: fallback priced a liquidation", "oracle: sequencer down", "oracle: sequencer grace",
          "liquidation", "bad debt", "partial ADL", "full ADL", "socialized loss", "TP/SL execution",
          "pending deleverage",
          # ADL jobs (issue 14): a second bankruptcy queued behind a pending
          # job; a profitable opposite position closing meanwhile pays its
          # share first; a deleverage after the oracle moved, at the job's price
          "ADL job queued behind another", "escape paid its ADL share",
          "deleverage at the job's price, the oracle moved",
          # orders (docs/orders.md): executed; refused before a later round and
          # past expiry; cancelled by the requester after expiry (refused
          # before); cancelled at execution for the reasons the machine reaches
          "order executed", "order: no later price", "order: expired", "order cancelled after expiry",
          "order: not expired", "cancelled: acceptable price", "cancelled: margin: below initial",
          "cancelled: pausable: contract is paused", "cancelled: position: none", "reduce executed as full close",
          # edges aimed at, not hoped for (the edge rules): the maintenance
          # boundary in feed units and one unit on the healthy side; a price
          # exactly max_price_age old and one second older; an execution in
          # the request's own second and one a second later; two identical
          # positions (equal ADL scores) and ADL deciding between them by
          # address; a stop at the liquidation price and one unit inside
          "edge: liquidated at the maintenance boundary", "edge: healthy one unit from the boundary",
          "edge: fresh at exactly max_price_age", "edge: stale at max_price_age + 1",
          "edge: refused in the request's second", "edge: executed one second after the request",
          "edge: identical positions, equal ADL scores", "edge: equal ADL scores ranked by address",
          "edge: stop at the liquidation price refused", "edge: stop one unit inside accepted",
          "edge: zero-PnL opposite position not a target",
          # solvency (docs/solvency.md): an open refused for the vault's
          # capacity; a raised payout cap refused; the vault's cash exactly
          # at its reserve after an LP's withdrawal
          "cancelled: vault: capacity", "set_max_profit refused: vault: capacity",
          "edge: vault cash exactly at the reserve",
          # the borrowing fee (decision 96): set on a market, refused above its cap
          "borrowing fee set",
          # keepers (docs/liquidation.md): a caller's reward topped up to the
          # floor; an open below the minimum notional refused
          "keeper floor paid", "cancelled: position: notional below minimum",
          # the vault's epochs (ERC-7540, issue 12): requests, an epoch closed
          # before its rounds and a settlement refused for them, an epoch
          # priced after them (the invariant is checked there), redemptions
          # cut to free cash, claims, a claim above what is claimable
          "lp: deposit requested", "lp: redemption requested", "lp: epoch closed before its rounds",
          "lp settle refused: vault: no later round", "lp: epoch priced at the first round after its requests",
          "lp: redemptions paid up to free cash", "lp: deposit claimed", "lp: redeem claimed",
          "lp: claim above claimable refused", "lp: unpaid shares claimed back")
# Verbs that touch no market (the funding property is checked after every other success).
NOT_ENGINE = ("token.", "vault.", "fund.", "feed")
# ADL lists: the model's ranking, or one broken on purpose (see _wrong_list).
TARGET_LISTS = st.sampled_from(["ranked"] * 5 + ["unsorted", "skipped rank", "wrong side", "losing", "no position",
                                                 "duplicate"])
# Reasons that mean "this ADL list is not the ranking": the model's list must never get one.
RANKING_REASONS = {"adl: unsorted", "adl: not ranked", "adl: wrong side", "adl: not in profit",
                   "adl: duplicate target", "adl: no position", "adl: more targets needed"}


# ---------------------------------------------------------------- the model's view of the world


def _pos_tuple(p):
    return (p.size, p.entry_price, p.margin, p.funding_index, p.take_profit, p.stop_loss)


def _order_tuple(w, oid):
    """Model order `oid` as backends' ("order", id) tuple."""
    if oid not in w.e.orders:
        return ZERO_ORDER
    o = P._load_order(w, oid)
    return (o.account.lower(), o.market_id, o.size_delta, o.margin_delta, o.acceptable_price, o.requested_at,
            int(o.reduce_only), o.trading_fee, o.execution_fee, o.expires_at)


def order_escrow(o, scale):
    """positions._escrow from an ("order", id) tuple: the execution fee, plus
    the margin in and the trading fee at the acceptable price for an open or
    increase (used by the token-conservation check on either side)."""
    _, _, size, margin_delta, acceptable, _, reduce, fee, exec_fee, _ = o
    if size == 0 or reduce:
        return exec_fee
    return exec_fee + margin_delta + margin.requirement(size, acceptable, fee, scale)


_KEYS = {}


def _keys(accounts):
    """Worked out once per account list: (account, lower-case key) pairs,
    and the per-account keys of the state dicts (pos keys per market)."""
    key = tuple(accounts)
    got = _KEYS.get(key)
    if got is None:
        if len(_KEYS) > 2048:  # partial comparisons name many account subsets
            _KEYS.clear()
        pairs = [(a, a.lower()) for a in accounts]
        low = [k for _, k in pairs]
        per_market = {}

        def pos(mid):
            if mid not in per_market:
                per_market[mid] = [("pos", k, mid) for k in low]
            return per_market[mid]

        got = _KEYS[key] = {"pairs": pairs, "low": low, "bal": [("bal", k) for k in low],
                            "free": [("free", k) for k in low], "shares": [("shares", k) for k in low], "pos": pos}
    return got


def model_state(w, accounts, touched=None, valuation=True, orders=(), tp_sl_at=False, lps=()):
    """(stored, views) from the model, keyed as backends.py documents.
    touched=None: views of every open position (and each order's escrow);
    else only of those pairs. `orders`: the order ids to report;
    `tp_sl_at`: report the TP/SL setting times and each (account, market)'s
    last order word (in-process backends)."""
    e = w.e
    bal = w.token.balances
    stored, views = {}, {}
    stored[("totals",)] = (e.market_count, e.paused, e.owner.lower(), e.pauser.lower())
    stored[("bal", "engine")] = bal.get(w.engine_address, 0)
    stored[("bal", "vault")] = bal.get(w.vault_address, 0)
    stored[("bal", "fund")] = bal.get(w.fund_address, 0)
    stored[("vault.supply",)] = w.v.total_supply
    stored[("solvency",)] = (e.max_profit, e.total_cost, e.min_keeper_reward, e.min_notional)
    ks = _keys(accounts)
    pairs = ks["pairs"]
    free, shares = e.free, w.v.balances
    stored.update(zip(ks["bal"], [bal.get(a, 0) for a, _ in pairs]))
    stored.update(zip(ks["free"], [free.get(a, 0) for a, _ in pairs]))
    stored.update(zip(ks["shares"], [shares.get(a, 0) for a, _ in pairs]))
    closed = (0, 0, 0, 0, 0, 0)
    positions = e.positions
    for mid in range(e.market_count):
        p = e.params[mid]
        stored[("params", mid)] = (p.feed.lower(), *p.as_tuple()[1:])
        s = e.state[mid]
        stored[("state", mid)] = (s.long_oi, s.short_oi, s.long_cost, s.short_cost, s.sum_size_index,
                                  s.funding_index, s.last_funding_time, s.borrow_index, s.borrow_rate)
        jobs = e.adl_jobs.get(mid, [])
        stored[("pending", mid)] = tuple(
            (q.remaining, q.bad_debt, q.bankrupt_size, q.size_left, q.bankrupt.lower(), q.bankruptcy_price, q.price)
            for q in jobs + [P.AdlPending()] * (P.MAX_ADL_JOBS - len(jobs)))
        f = w.feeds[p.feed]
        stored[("feed", mid)] = (f.round_id, f.answer, f.started_at, f.updated_at, f.answered_in_round)
        for side in (0, 1):
            stored[("members", mid, side)] = tuple(x.lower() for x in e.members.get(mid * 2 + side, ()))
        get = positions.get
        stored.update(zip(ks["pos"](mid), [
            closed if (pos := get((a, mid))) is None else _pos_tuple(pos) for a, _ in pairs]))
    pairs = [k for k in positions] if touched is None else [k for k in touched if k in positions]
    for a, mid in pairs:
        views[("views", a.lower(), mid)] = (
            perp_engine.equity(w, a, mid), perp_engine.is_liquidatable(w, a, mid),
            perp_engine.liquidation_price(w, a, mid), perp_engine.bankruptcy_price(w, a, mid),
            perp_engine.adl_score(w, a, mid), perp_engine.funding_owed(w, a, mid))
    stored[("orders",)] = (e.order_count, e.order_expiry)
    for oid in orders:
        stored[("order", oid)] = _order_tuple(w, oid)
        if touched is None:
            views[("escrow", oid)] = P._load_order(w, oid).escrow
    if tp_sl_at:
        low = set(ks["low"])  # the accounts read: the chain side reads these slots for them only
        stored.update((("tp_sl_at", k, mid), t) for (a, mid), t in e.tp_sl_at.items() if t and (k := a.lower()) in low)
        stored.update((("last order", k, mid), v) for (a, mid), v in e.pending.items()
                      if v != (0, 0) and (k := a.lower()) in low)
    for role, address in getattr(w, "extra_feeds", {}).items():
        f = w.feeds[address]
        stored[("feed", role)] = (f.round_id, f.answer, f.started_at, f.updated_at)
    stored.update(vault_state(w, lps))
    if valuation:
        views[("valuation",)] = (liquidity_vault.total_assets(w), liquidity_vault.free_cash(w),
                                 perp_engine.traders_claim(w), perp_engine.traders_gain(w),
                                 perp_engine.traders_reserve(w), liquidity_vault.entry_assets(w)[1])
    return stored, views


def vault_state(w, lps):
    """The vault's epochs (ERC-7540) as backends.vault_reads reads them."""
    v = w.v
    stored = {("vault.epochs",): (v.epoch, v.closing, v.settle_fee)}
    for e in sorted({v.epoch, v.closing} - {0}):
        x = liquidity_vault.get_epoch(w, e)
        stored[("vault.epoch", e)] = (x.deposit_assets, x.redeem_shares, x.last_request, x.settled_at,
                                      x.deposit_shares, x.redeem_filled, x.redeem_assets)
    stored[("bal", "escrow")] = w.token.balances.get(liquidity_vault.escrow(w), 0)
    stored[("vault.own",)] = v.balances.get(w.vault_address, 0)
    for a in lps:
        stored[("lp", a.lower())] = (
            liquidity_vault.pending_deposit(w, a), liquidity_vault.claimable_deposit(w, a),
            liquidity_vault.claimable_deposit_shares(w, a), liquidity_vault.pending_redeem(w, a),
            liquidity_vault.claimable_redeem(w, a), liquidity_vault.claimable_redeem_assets(w, a),
            liquidity_vault.claimable_returned(w, a))
    return stored


def check_invariants(stored, accounts, minted, where, scale=10**30):
    """SPEC section 8 on one side's stored values (chain or model). Every
    pending order must be among the ("order", id) keys read (the model's
    pending ones always are)."""
    keys = _keys(accounts)["low"]
    # 1. token conservation: tokens in == tokens held, to the unit; the engine
    #    holds exactly free collateral plus position margins plus the escrow
    #    of pending orders.
    held = sum(stored[("bal", k)] for k in keys) + sum(stored[("bal", r)] for r in ("engine", "vault", "fund", "escrow"))
    assert held == minted, f"{where}: tokens held {held} != tokens minted {minted}"
    n = stored[("totals",)][0]
    free = sum(stored[("free", k)] for k in keys)
    # open positions per market: (key, (size, entry, margin, funding_index, tp, sl))
    open_ = [[(k, p) for k in keys if (p := stored[("pos", k, mid)])[0] != 0] for mid in range(n)]
    margins = sum(p[2] for ps in open_ for _, p in ps)
    count = stored[("orders",)][0]
    pending = [(k[1], o) for k, o in stored.items() if k[0] == "order" and o != ZERO_ORDER]
    escrows = sum(order_escrow(o, scale) for _, o in pending)
    assert stored[("bal", "engine")] == free + margins + escrows, (
        f"{where}: engine holds {stored[('bal', 'engine')]} != free {free} + margins {margins} + escrows {escrows}")
    for oid, o in pending:
        assert 1 <= oid <= count and o[0] in keys and o[1] < n, f"{where}: order {oid} of {count}: {o}"
    # vault shares: the supply is what the LPs hold, and what the vault holds
    # for them (requested redemptions, settled deposits not yet claimed)
    assert stored[("vault.supply",)] == sum(stored[("shares", k)] for k in keys) + stored[("vault.own",)], (
        f"{where}: share supply")
    for mid in range(n):
        # 5. open interest, cost and funding aggregates equal the sums over positions
        ps = open_[mid]
        longs = [(k, p) for k, p in ps if p[0] > 0]
        shorts = [(k, p) for k, p in ps if p[0] < 0]
        long_oi = sum(p[0] for _, p in longs)
        short_oi = sum(-p[0] for _, p in shorts)
        long_cost = sum(p[0] * p[1] for _, p in longs)
        short_cost = sum(-p[0] * p[1] for _, p in shorts)
        ssi = sum(p[0] * p[3] for _, p in ps)
        s = stored[("state", mid)]
        assert s[:5] == (long_oi, short_oi, long_cost, short_cost, ssi), f"{where}: market {mid} aggregates {s[:5]}"
        for side, group in ((0, longs), (1, shorts)):
            mem = stored[("members", mid, side)]
            want = {k for k, _ in group}
            assert len(mem) == len(set(mem)) and set(mem) == want, f"{where}: market {mid} side {side} set"
        # the ADL queue: live jobs first, each with size left to close and
        # its own bankrupt not open in the market; the free slots empty
        jobs = stored[("pending", mid)]
        live = [q for q in jobs if q[0]]
        assert list(jobs[:len(live)]) == live, f"{where}: a gap in the ADL queue {jobs}"
        for q in live:
            assert q[3] > 0 and q[2] != 0 and q[6] > 0, f"{where}: pending ADL with nothing left to close {q}"
            assert stored.get(("pos", q[4], mid), (0,))[0] == 0, f"{where}: {q[4]} open while its ADL job pends"
        for q in jobs[len(live):]:
            assert q == (0, 0, 0, 0, "0x" + "00" * 20, 0, 0), f"{where}: stale pending record {q}"
    # 11. the insurance fund never negative (the model's ints can be)
    assert stored[("bal", "fund")] >= 0
    # 7. solvency: total_cost is the sum of |size| * entry over open
    #    positions, and the vault's cash covers the reserve (every position's
    #    payout cap, rounded up), after every step
    max_profit, total_cost, _, _ = stored[("solvency",)]
    assert total_cost == sum(abs(p[0]) * p[1] for ps in open_ for _, p in ps), f"{where}: total_cost {total_cost}"
    reserve = -(-max_profit * total_cost // (10**18 * scale))
    assert stored[("bal", "vault")] >= reserve, (
        f"{where}: invariant 7: vault cash {stored[('bal', 'vault')]} < reserve {reserve}")


def diff(chain, model, what):
    if chain == model:
        return
    keys = sorted(set(chain) | set(model), key=repr)
    bad = [k for k in keys if chain.get(k) != model.get(k)]
    assert not bad, f"model and chain differ ({what}):\n" + "\n".join(
        f"  {k}: chain={chain.get(k)!r} model={model.get(k)!r}" for k in bad[:12])


# ---------------------------------------------------------------- chain and model in lockstep


class Twin:
    """One backend and one model World, run at the same timestamps."""

    def __init__(self, backend, world, now, minted, accounts):
        self.b = backend
        self.w = world
        self.now = now  # time of the last mined transaction
        self.minted = minted
        self.accounts = accounts
        self.events = []  # model events of the current step
        self.succeeded = 0
        self.acted = 0  # calls in the current step
        self.acted_total = 0
        self.order_ids = set()  # ids the calls since the last comparison named (read even when done)
        # The accounts the calls since the last comparison could have changed
        # (compare(full=False) reads only theirs), and the last full chain
        # state that a partial read is merged into (None: the next read is full).
        self.dirty = set()
        self.stored = None
        self._index = {}  # lower-case account -> its keys in self.stored
        self._canon = {a.lower(): a for a in accounts}
        # every round each market's feed published since this Twin began: (updatedAt, answer)
        self.rounds = {mid: [(f.updated_at, f.answer)] for mid in range(world.e.market_count)
                       for f in [world.feeds[backend.addresses[f"feed{mid}"]]]}

    def act(self, sender, verb, *args, same_second=False):
        """Run `verb` on both at now + 1 (`same_second`: at now, in a block
        of its own with the last one's timestamp); return the revert reason
        (None on success). Fails on any disagreement."""
        t = self.now if same_second else self.now + 1
        self.now = t
        self.acted_total += 1  # first: a call that fails its check still counts as unchecked
        w = self.w
        self._mark_dirty(sender, args)
        if verb in ("execute_order", "cancel_order") and (o := w.e.orders.get(args[0])) is not None:
            self.dirty.add(o.account)
        chain_reason = self.b.send(sender, verb, args, t)
        n = len(w.events)
        model_reason = None
        try:
            if verb == "token.mint":
                w.mint(*args)  # checks before it changes anything
            elif verb == "token.approve":
                w.approve(sender, *args)
            elif verb.endswith(".set_answer"):
                w.set_answer(self.b.addresses[verb.split(".")[0]], args[0], now=t)
            elif verb == "sequencer.set_status":
                w.feeds[self.b.addresses["sequencer"]].set_status(args[0], t)
            elif verb == "sequencer.set_round_data":
                f = w.feeds[self.b.addresses["sequencer"]]
                f.round_id += 1
                f.answered_in_round = f.round_id
                f.answer, f.started_at, f.updated_at = args[0], args[1], t
            elif verb.endswith(".set_reverts"):
                w.feeds[self.b.addresses[verb.split(".")[0]]].set_reverts(args[0])
            else:
                # The snapshot that restores the model on a revert is needed
                # only when the chain reverted: had the chain succeeded, a
                # model revert fails the comparison below anyway.
                if verb in OWNER_VERBS and sender == self.b.accounts["owner"]:
                    sender = self.b.addresses["timelock"]  # through the timelock on chain
                w.call(sender, verb, *args, now=t, atomic=chain_reason is not None)
        except Revert as exc:
            model_reason = exc.reason or ""
        w.now = t
        assert chain_reason == model_reason, (
            f"{verb}{_short(args)} from {sender}: chain "
            f"{'ok' if chain_reason is None else 'reverted ' + repr(chain_reason)}, model "
            f"{'ok' if model_reason is None else 'reverted ' + repr(model_reason)}")
        self.call_events = w.events[n:]
        for _, f in self.call_events:  # every account the model's events name (targets, bankrupts, keepers)
            self._mark_dirty(None, f.values())
        self.events.extend(self.call_events)
        del w.events[:]
        self.acted += 1
        if verb in ("execute_order", "cancel_order"):
            self.order_ids.add(args[0])
        if chain_reason is None:
            self.succeeded += 1
            if verb == "token.mint":
                self.minted += args[1]
            elif verb.startswith("feed") and verb.endswith(".set_answer"):
                self.rounds[int(verb[4:verb.index(".")])].append((t, args[0]))
            elif verb == "request_order":
                self.order_ids.add(w.e.order_count)
        return chain_reason

    def _mark_dirty(self, sender, values):
        """Add the sender and every account among `values` (addresses, lists
        of them) to the accounts the next partial comparison reads."""
        canon, dirty = self._canon, self.dirty
        if sender is not None:
            dirty.add(canon.get(sender.lower(), sender))
        for v in values:
            if isinstance(v, str):
                if (a := canon.get(v.lower())) is not None:
                    dirty.add(a)
            elif isinstance(v, (list, tuple)):
                self._mark_dirty(None, v)

    def outcome(self):
        """The last execute_order's outcome from its model events (equal to
        the chain's: the state comparison follows): ("executed", price) or
        ("cancelled", reason)."""
        for name, f in self.call_events:
            if name == "OrderExecuted":
                return "executed", f["price"]
            if name == "OrderCancelled":
                return "cancelled", f["reason"]
        raise AssertionError(f"execute_order logged neither OrderExecuted nor OrderCancelled: {self.call_events}")

    def restamp(self, mid, sender, same_second=False):
        """A new round of market `mid`'s feed at its answer, stamped at the
        next call: the later price an order or a TP/SL trigger waits for."""
        role = f"feed{mid}"
        answer = self.w.feeds[self.b.addresses[role]].answer
        assert self.act(sender, f"{role}.set_answer", answer, same_second=same_second) is None

    def order(self, sender, mid, size, margin_delta, acceptable, executor, feeder):
        """request_order, a later round (set by `feeder`), execute_order by
        `executor`: ("reverted", reason) when the request reverted, else
        execute_order's outcome (an execution that reverts fails here)."""
        reason = self.act(sender, "request_order", mid, size, margin_delta, acceptable)
        if reason is not None:
            return "reverted", reason
        oid = self.w.e.order_count
        self.restamp(mid, feeder)
        reason = self.act(executor, "execute_order", oid)
        assert reason is None, f"order {oid} did not execute after a later round: {reason!r}"
        return self.outcome()

    def restamp_feeds(self, sender, older_than=0):
        """Each mock feed's answer again, freshly stamped, where it would be
        at least `older_than` seconds old at the next call (every call is a
        second: long sequences outlive max_price_age)."""
        for mid in range(self.w.e.market_count):
            role = f"feed{mid}"
            feed = self.w.feeds[self.b.addresses[role]]
            if self.now + 1 - feed.updated_at >= older_than:
                assert self.act(sender, f"{role}.set_answer", feed.answer) is None

    def compare(self, touched=(), valuation=False, full=True):
        """Read both sides, assert equality; return the chain's (stored, views).
        Anvil reads every view anyway; in process only `touched` pairs' views
        and, when asked, the vault's valuation. Orders: get_order of every id
        the model holds pending and of every id named since the last
        comparison (executed, cancelled or refused: all zero on both), and
        order_count.

        full=False (in process, the machine's per-step check): every value
        except the per-account ones (keys whose second element is an
        account) of accounts no call since the last comparison named (as
        sender, argument, order owner, or in the model's events) and no
        `touched` pair names, on both sides; the returned stored values are
        the last full state with what was read merged in. The machine reads
        everything every few steps and at the end of every example, so a
        change to an account nobody named is caught there."""
        orders = sorted(set(self.w.e.orders) | self.order_ids)
        self.order_ids = set()
        accounts = self.accounts
        partial = not full and self.stored is not None and not self.b.full_views
        if partial:
            want = self.dirty
            want.update(a for a, _ in touched)
            accounts = [a for a in accounts if a in want]
        self.dirty = set()
        cs, cv = self.b.read(accounts, touched, valuation, orders)
        lps = [self.b.accounts[r] for r in ("lp", "lp2") if r in self.b.accounts]
        if self.b.full_views:
            ms, mv = model_state(self.w, accounts, orders=orders, lps=lps)
        else:
            ms, mv = model_state(self.w, accounts, set(touched), valuation, orders, tp_sl_at=True, lps=lps)
        diff(cs, ms, "stored values")
        diff(cv, mv, "views")
        # the per-account keys read, by account (merging drops a read
        # account's old keys: a value that went to zero may have no key now)
        canon, index = self._canon, {}
        for k in cs:
            if len(k) > 1 and k[1] in canon:
                index.setdefault(k[1], []).append(k)
        if partial:
            # the unread accounts' values from the last full state, the rest as read now
            merged = dict(self.stored)
            old = dict(self._index)  # (the session's base index is shared by every example)
            for a in accounts:
                for k in old.pop(a.lower(), ()):
                    del merged[k]
            merged.update(cs)
            old.update(index)
            index, cs = old, merged
        self.stored, self._index = cs, index
        return cs, cv


def _short(args):
    return tuple(a if not isinstance(a, (list, tuple)) or len(a) < 4 else f"[{len(a)} items]" for a in args)


_SHARED_FEEDS = "<the feeds, shared with the snapshot>"


class MachineWorld(World):
    """The model World, its revert snapshot without a copy of the feeds: no
    verb World.call runs writes a feed (the mocks move only through
    set_answer, set_status and the like, which Twin.act calls outside
    call()), and the feeds' round histories were a third of the snapshot's
    cost. Should a verb ever write one, its revert would leave the model's
    feed moved and the comparison would report it."""

    def _snapshot(self):
        feeds, self.feeds = self.feeds, _SHARED_FEEDS  # clone() passes a str through untouched
        try:
            state, n = super()._snapshot()
        finally:
            self.feeds = feeds
        return tuple(feeds if x is _SHARED_FEEDS else x for x in state), n


def mirror_world(backend, stored, now):
    """A model World equal to the backend's freshly deployed protocol.

    The owner of engine, vault and fund is the timelock (deploy_protocol's
    hand-over); the machine's "owner" account proposes and executes through
    it. The model does not model the timelock: an owner verb the machine's
    owner sends runs in the model from the timelock's address, at the time
    the timelock executes it (delay 0; backends.governed_send)."""
    A = backend.addresses
    w = MachineWorld(engine=A["engine"], vault=A["vault"], fund=A["fund"], owner=A["timelock"],
              token_decimals=6, now=now, token_address=A["token"])
    n, paused, owner, pauser = stored[("totals",)]
    assert owner == A["timelock"].lower()
    w.e.vault, w.e.insurance_fund = A["vault"], A["fund"]
    w.v.escrow = A["escrow"]
    w.e.paused, w.e.pauser = paused, to_checksum_address(pauser)
    for mid in range(n):
        feed = A[f"feed{mid}"]
        f = Feed(decimals=8)
        f.round_id, f.answer, f.started_at, f.updated_at, f.answered_in_round = stored[("feed", mid)]
        w.feeds[feed] = f
        p = stored[("params", mid)]
        assert p[0] == feed.lower()
        w.e.params[mid] = P.MarketParams(feed, *p[1:])
        w.e.feed_scale[mid] = 10 ** (18 - f.decimals)
        w.e.state[mid] = P.MarketState(*stored[("state", mid)])
    w.e.market_count = n
    # the oracle wiring as deploy_in_process / deploy_protocol did it from
    # the same config (set_oracle, set_sequencer_feed); the mocks' rounds
    # from the chain
    from scripts import config as cfg
    from scripts.oracles import set_oracle_calls

    w.extra_feeds = {role: A[role] for role in extra_feeds(A)}
    for role, address in w.extra_feeds.items():
        f = w.feeds[address] = Feed(decimals=0 if role == "sequencer" else 8)
        f.round_id, f.answer, f.started_at, f.updated_at = stored[("feed", role)]
        f.answered_in_round = f.round_id
        # MockAggregator keeps every round (getRoundData): the fallback's
        # history bound reads the previous one; at deployment only this one
        f.history[f.round_id] = (f.answer, f.started_at, f.updated_at, f.round_id)
    conf = cfg.load("local")
    fallbacks = {int(r[8:]): A[r] for r in w.extra_feeds if r.startswith("fallback")}
    for mid, o in set_oracle_calls(conf, fallbacks):
        scale = 10**10 if o.fallback != P.ZERO else 0
        w.e.oracle[mid] = P.OracleParams(o.min_price, o.max_price, o.heartbeat, o.fallback, o.fallback_max_age, scale)
    if "sequencer" in A:
        w.e.sequencer_feed, w.e.sequencer_grace = A["sequencer"], conf["sequencer"]["grace_period"]
    w.e.order_count, w.e.order_expiry = stored[("orders",)]
    w.e.max_profit, w.e.total_cost, w.e.min_keeper_reward, w.e.min_notional = stored[("solvency",)]
    for role in ("engine", "vault", "fund"):
        if stored[("bal", role)]:
            w.token.balances[A[role]] = stored[("bal", role)]
    w.token.total_supply = sum(w.token.balances.values())
    return w


class Session:
    """The base state every example starts from: deployed, mirrored, funded.

    Setup (once): the pauser is named; every actor is minted tokens and
    approves engine and vault; the LPs seed the vault; every trader deposits
    free collateral. Then chain and model are compared in full."""

    LP_SEED = 20_000_000 * USDC
    exit_every = 1  # the everyone-exits check (PROPERTIES 20) on every n-th example
    TRADER_DEPOSIT = 1_000_000 * USDC
    MINT = 50_000_000 * USDC

    def __init__(self, backend):
        self.backend = backend
        r = backend.accounts
        self.roles = r
        self.traders = [r[f"trader{i}"] for i in range(N_TRADERS)]
        self.lps = [r["lp"], r["lp2"]]
        self.accounts = [r[name] for name in ROLES]
        stored, _ = backend.read(self.accounts)
        now = backend.head_time()
        world = mirror_world(backend, stored, now)
        minted = sum(stored[("bal", k)] for k in ("engine", "vault", "fund", "escrow")) + sum(
            stored[("bal", a.lower())] for a in self.accounts)
        tw = Twin(backend, world, now, minted, self.accounts)
        A = backend.addresses
        assert tw.act(r["owner"], "set_pauser", r["pauser"]) is None
        for a in self.accounts:
            assert tw.act(a, "token.mint", a, self.MINT) is None
            assert tw.act(a, "token.approve", A["engine"], MAX_UINT) is None
            assert tw.act(a, "token.approve", A["vault"], MAX_UINT) is None
        # the vault's epochs (ERC-7540): requests, a round on every feed, settle, claims
        for lp in self.lps:
            assert tw.act(lp, "vault.requestDeposit", self.LP_SEED // 2, lp, lp) is None
        tw.restamp_feeds(r["owner"])
        assert tw.act(r["keeper"], "vault.settle") is None
        for lp in self.lps:
            assert tw.act(lp, "vault.deposit", self.LP_SEED // 2, lp) is None
        for t in self.traders:
            assert tw.act(t, "deposit", self.TRADER_DEPOSIT) is None
        self.stored, _ = tw.compare()
        self.index = tw._index
        self.world, self.now, self.minted = tw.w, tw.now, tw.minted
        self.initial_answers = [self.world.feeds[A[f"feed{m}"]].answer for m in range(self.world.e.market_count)]


# ---------------------------------------------------------------- the machine


class BackstopActions(RuleBasedStateMachine):
    """Per-example plumbing: the chain snapshot, a fresh model copy, the
    comparison after every step, the section 8 checks and event labels."""

    session = None  # bound by machine_for
    stats = None
    # Every n-th step compares every stored value; the steps between compare
    # what their calls named (Twin.compare(full=False)); teardown, full.
    full_every = 8

    def __init__(self):
        super().__init__()
        s = self.session
        self.b = s.backend
        self.snap = self.b.snapshot()
        self.tw = Twin(self.b, copy.deepcopy(s.world), s.now, s.minted, s.accounts)
        self.tw.stored, self.tw._index = s.stored, s.index  # the chain's state at the snapshot: partial reads merge into it
        self.w = self.tw.w
        self.r = s.roles
        self.traders = s.traders
        # PROPERTIES 16 is checked for them: no LPs (their shares carry the
        # traders' PnL by design) and no owner (it may drain the fund)
        self.bystanders = [*s.traders, s.roles["keeper"]]
        self.last_stored = s.stored
        self.touched = set()  # (account, market) pairs whose views the in-process backend reads
        self.valuation = False  # ... and whether it reads the vault's valuation
        self.risk_added = []  # (account, market, call number) after a risk-adding success
        self.checked = 0  # calls made when the last comparison passed
        self.step_labels = set()  # labels of reverted order calls (no event to read them from)
        self.stats["examples"] += 1

    def teardown(self):
        """The in-process backends compare views only for the positions a step
        touched; the last state of every example also gets every view of
        every open position and the vault's valuation (unless the example
        already failed: its first difference is the one to report)."""
        try:
            if self.checked == self.tw.acted_total:
                if not self.b.full_views:
                    self.tw.compare(list(self.w.e.positions), valuation=True)
                if self.stats["examples"] % self.session.exit_every == 0:
                    t0 = time.perf_counter()
                    self._everyone_exits()
                    self.stats["exit seconds"] += time.perf_counter() - t0
        finally:
            self.b.restore(self.snap)

    def _everyone_exits(self):
        """PROPERTIES 20, on the example's last state (the snapshot restore
        undoes it): pending ADL finishes, every position is liquidated (if it
        must be) or closed, losers first; every account withdraws its free
        collateral and every LP redeems. Each of these succeeds on both
        sides; the engine ends holding nothing and the vault only the
        virtual shares' part and rounding. Losers first: a loser's margin,
        held by the engine, pays its loss into the vault before a winner
        takes its profit from there.

        No exemption: the vault's cash covers every position's payout cap
        (invariant 7, docs/solvency.md), so no close, liquidation or ADL fill
        may revert for lack of cash, whatever the price did since the LPs
        last withdrew."""
        tw, w = self.tw, self.w
        acted, keeper, owner = tw.acted_total, self.r["keeper"], self.r["owner"]

        def state():
            return (f"vault cash {liquidity_vault.cash(w)}, reserve {perp_engine.traders_reserve(w)}, claim "
                    f"{perp_engine.traders_claim(w)}, open positions (account, market, size, entry, margin, pnl less "
                    f"funding): {[(k[0][:8], k[1], p.size, p.entry_price, p.margin, self._gain(k)) for k, p in sorted(w.e.positions.items())][:12]}")

        self._refresh_prices()

        def must(sender, verb, *args):
            self._refresh_prices()
            reason = self.act(sender, verb, *args)
            assert reason not in RANKING_REASONS, f"the model's ADL ranking was refused: {reason} (exit: {verb})"
            assert reason is None, f"exit: {verb}{_short(args)} from {sender} reverted {reason!r}; {state()}"

        # Pending orders first: each executes (a later round first where its
        # feed has none) or, expired, is cancelled by its requester.
        for oid in sorted(w.e.orders):
            o = w.e.orders[oid]
            if tw.now + 1 > P._load_order(w, oid).expires_at:
                must(o.account, "cancel_order", oid)
                continue
            self._refresh_prices()
            if w.feeds[self.b.addresses[f"feed{o.market_id}"]].updated_at <= o.requested_at:
                tw.restamp(o.market_id, owner)
            must(keeper, "execute_order", oid)
        assert not w.e.orders
        for _ in range(6 * len(w.e.positions) + 10):
            pending = sorted(m for m, q in w.e.adl_pending.items() if q.remaining)
            if pending:
                mid = pending[0]
                must(keeper, "deleverage", mid, self.ranking(mid))
                continue
            left = list(w.e.positions)
            if not left:
                break
            self._refresh_prices()
            due = [k for k in sorted(left) if self.at_next_block(perp_engine.is_liquidatable, *k)]
            if due:
                a, mid = due[0]
                must(keeper, "liquidate", a, mid, perp_engine.adl_ranking(w, a, mid))
                continue
            a, mid = min(left, key=lambda k: (self._gain(k), k))
            size = w.e.positions[(a, mid)].size
            # A close is an order: its execution fee comes from free collateral.
            fee = w.e.params[mid].execution_fee
            if w.e.free.get(a, 0) < fee:
                must(a, "deposit", fee - w.e.free.get(a, 0))
            self._refresh_prices()
            must(a, "request_order", mid, -size, 0, 0 if size > 0 else ANY_PRICE)
            oid = w.e.order_count
            tw.restamp(mid, owner)
            must(keeper, "execute_order", oid)
            status, reason = tw.outcome()
            if status == "executed":
                continue
            if reason == "position: liquidatable":
                # it crossed its maintenance margin in the order's two blocks:
                # the loop liquidates it next
                assert self.at_next_block(perp_engine.is_liquidatable, a, mid), (
                    f"exit: close of {a} market {mid} cancelled 'position: liquidatable' but it is not; {state()}")
                continue
            raise AssertionError(f"exit: close of {a} market {mid} cancelled {reason!r}; {state()}")
        assert not w.e.positions and not any(q.remaining for q in w.e.adl_pending.values()), (
            f"exit: did not finish; {state()}")
        for a in sorted(x for x, v in w.e.free.items() if v):
            must(a, "withdraw", w.e.free[a])
        margins = sum(p.margin for p in w.e.positions.values())
        assert w.token.balance_of(self.b.addresses["engine"]) == margins, "exit: the engine kept tokens"
        # the vault's epochs: whatever is requested is priced (a round on
        # every feed first) and claimed
        for _ in range(2):
            if w.v.closing or any(getattr(liquidity_vault.get_epoch(w, w.v.epoch), k) for k in
                                  ("deposit_assets", "redeem_shares")):
                tw.restamp_feeds(owner)
                must(keeper, "vault.settle")
        self._claim_all(must)
        cash, supply = liquidity_vault.cash(w), w.v.total_supply
        lps = sorted(x for x, v in w.v.balances.items() if v and x != w.vault_address)
        for lp in lps:
            for _ in range(5):
                # a request for every share, priced after a round on every
                # feed, claimed; free cash is all the cash now (no position
                # is left), and any shares it did not pay come back at the claim
                shares = w.v.balances.get(lp, 0)
                if liquidity_vault.to_assets(w, shares, False) == 0:
                    break
                must(lp, "vault.requestRedeem", shares, lp, lp)
                tw.restamp_feeds(owner)
                must(keeper, "vault.settle")
                if n := liquidity_vault.max_redeem(w, lp):
                    must(lp, "vault.redeem", n, lp, lp)
                if liquidity_vault.claimable_returned(w, lp):
                    must(lp, "vault.claimCancelRedeemRequest", 0, lp, lp)
            assert liquidity_vault.to_assets(w, w.v.balances.get(lp, 0), False) == 0, (
                f"exit: {lp} cannot redeem shares worth something: shares {w.v.balances.get(lp, 0)}, supply "
                f"{w.v.total_supply}, cash {liquidity_vault.cash(w)}, total assets {liquidity_vault.total_assets(w)}, "
                f"free cash {liquidity_vault.free_cash(w)}")
        # what the virtual shares (10**DECIMALS_OFFSET) own, plus a unit of
        # floor per redemption and per LP's worthless remainder
        # and the vault's own shares: the rounding leftovers of its epochs, which no one can claim
        own = w.v.balances.get(w.vault_address, 0)
        dust = (cash + 1) * (10**liquidity_vault.DECIMALS_OFFSET + own) // (supply + 10**liquidity_vault.DECIMALS_OFFSET)
        assert liquidity_vault.cash(w) <= dust + 2 * len(lps) + 2, (
            f"exit: the vault kept {liquidity_vault.cash(w)} > dust {dust} after every LP redeemed")
        stored, _ = tw.compare(self.touched, valuation=True)
        check_invariants(stored, tw.accounts, tw.minted, f"{self.b.name} after every exit", w.e.scale)
        self.stats["exits"] += 1
        self.stats["exit calls"] += tw.acted_total - acted

    def _gain(self, key):
        """A position's PnL less funding owed at the next block (its equity
        less its margin): the exit closes the smallest first."""
        return self.at_next_block(perp_engine.equity, *key) - self.w.e.positions[key].margin

    def _refresh_prices(self):
        """The same answers, freshly stamped, when half the shortest allowed
        age has passed (exits take many blocks)."""
        self.tw.restamp_feeds(self.r["owner"], older_than=30)

    # ------------------------------------------------------------ helpers
    def act(self, sender, verb, *args, same_second=False):
        w = self.w
        funding_seen = None if verb.startswith(NOT_ENGINE) else funding_before(w)
        before = {mid: (st.funding_index, st.last_funding_time, st.long_oi - st.short_oi, st.borrow_index,
                        st.borrow_rate) for mid, st in w.e.state.items()}
        holders = {k[0] for k in w.e.positions}
        capital = self._capitals([a for a in self.bystanders if a not in holders])
        targets = liquidated = None
        adl_market = {"liquidate": 1, "deleverage": 0}.get(verb)
        if adl_market is not None and len(args) > adl_market:
            mid = args[adl_market]
            targets = {k: (p.size, self.at_next_block(perp_engine.is_liquidatable, *k))
                       for k, p in w.e.positions.items() if k[1] == mid}
            if verb == "liquidate" and (args[0], mid) in w.e.positions:
                liquidated = (args[0], mid, self.at_next_block(perp_engine.equity, args[0], mid),
                              self._capital(sender))
        order = None
        if verb in ("execute_order", "cancel_order"):
            order = w.e.orders.get(args[0])
            if order is not None:
                pos = w.e.positions.get((order.account, order.market_id))
                order = (order, pos.size if pos else 0)
        reason = self.tw.act(sender, verb, *args, same_second=same_second)
        if verb in ("execute_order", "cancel_order", "request_order") and reason in (
                "order: no later price", "order: expired", "order: not expired"):
            self.step_labels.add(reason)
        if reason is None:
            if verb in ("execute_order", "execute_tp_sl") and any(
                    n == "AutoDeleveraged" for n, _ in self.tw.call_events):
                self.step_labels.add("escape paid its ADL share")
            if verb == "liquidate" and len(w.e.adl_jobs.get(args[1], [])) >= 2:
                self.step_labels.add("ADL job queued behind another")
            self._check_adl_accounting(self.tw.call_events)
            self._check_funding_direction(before)
            if funding_seen is not None:
                check_funding(w, funding_seen, self.tw.call_events, f" after {verb}{_short(args)}")
            if targets is not None:
                self._check_adl_fills(self.tw.call_events, targets)
            if liquidated is not None:
                self._check_liquidation(sender, *liquidated)
            fee_lost = {}
            if verb == "execute_order":
                fee_lost = self._check_execution(*order)
            holders = {k[0] for k in w.e.positions}
            after = self._capitals([a for a in capital if a not in holders])
            for a, c in after.items():
                # a cancelled order costs its account the execution fee
                assert c >= capital[a] - fee_lost.get(a, 0), (
                    f"{verb}{_short(args)}: {a}, with no position before or after, lost "
                    f"{capital[a] - c} (PROPERTIES 16)")
        return reason

    def _check_execution(self, o, size_before):
        """One successful execute_order (the model's events; the chain's
        state equals the model's after the step). Executed: the price is the
        answer of the market's latest round, and that round was published
        after the request (an order requested before a price update never
        executes at a price from before it); a risk-adding order leaves its
        position not liquidatable. Returns {account: execution fee} when it
        was cancelled (what the requester may lose)."""
        status, got = self.tw.outcome()
        if status == "cancelled":
            return {o.account: o.execution_fee}
        rounds = self.tw.rounds[o.market_id]
        updated_at, answer = rounds[-1]
        assert got == answer * 10**10 and updated_at > o.requested_at, (
            f"order requested at {o.requested_at} executed at {got}: the latest round of market {o.market_id} is "
            f"{answer} at {updated_at} (rounds {rounds[-4:]})")
        if o.reduce_only and abs(o.size_delta) > abs(size_before):
            self.step_labels.add("reduce executed as full close")
            assert (o.account, o.market_id) not in self.w.e.positions, f"an oversized reduce left a position: {o}"
        if o.size_delta == 0 or not o.reduce_only:
            self.added_risk(o.account, o.market_id)
        return {}

    def _capitals(self, accounts):
        """{account: _capital(account)} for many accounts, the pending
        orders' escrow summed in one pass."""
        w = self.w
        escrow = {}
        # an order's escrow is fixed from its request on (the model never
        # edits a pending order): worked out once per order object
        known = self.__dict__.setdefault("_escrows", {})
        for oid, o in w.e.orders.items():
            got = known.get(oid)
            if got is None or got[0] is not o:
                got = known[oid] = (o, P._escrow(w, o))
            escrow[o.account] = escrow.get(o.account, 0) + got[1]
        bal, free = w.token.balances, w.e.free
        return {a: bal.get(a, 0) + free.get(a, 0) + escrow.get(a, 0) for a in accounts}

    def _capital(self, account):
        """What an account holds outside positions and vault shares: its
        wallet, its free collateral and the escrow of its pending orders."""
        w = self.w
        escrow = sum(P._escrow(w, o) for o in w.e.orders.values() if o.account == account)
        return w.token.balance_of(account) + w.e.free.get(account, 0) + escrow

    def _check_liquidation(self, sender, account, mid, equity, capital):
        """PROPERTIES 8, 9 and 12 on one successful liquidation: the penalty
        is at most what the position had left and the keeper at most half of
        it; liquidating yourself never pays (your wallet and free collateral
        after are at most what they were plus the position's equity); with
        equity left there is no bad debt, no fund draw and no ADL."""
        (f,) = [f for n, f in self.tw.call_events if n == "PositionLiquidated"]
        assert 2 * f["keeper_reward"] <= f["penalty"] <= max(equity, 0), (
            f"liquidation of {account}: penalty {f['penalty']}, keeper {f['keeper_reward']}, equity {equity}")
        # PROPERTIES 34: the caller's floor, topped up by the fund, then the
        # vault's free cash (all of it unless both are short)
        top_up = sum(x["from_fund"] + x["from_vault"] for n, x in self.tw.call_events if n == "KeeperPaid")
        floor = self.w.e.min_keeper_reward
        assert f["keeper_reward"] + top_up <= max(f["keeper_reward"], floor), (
            f"liquidation of {account}: reward {f['keeper_reward']} + top-up {top_up} past the floor {floor}")
        if top_up:
            self.step_labels.add("keeper floor paid")
        if sender == account:
            # within one call the top-up may pay a self-liquidator; the
            # trading fee paid at the open (min_notional) costs more
            after = self._capital(sender)
            assert after <= capital + max(equity, 0) + top_up, (
                f"self-liquidation paid: {capital} + equity {equity} -> {after} (PROPERTIES 9)")
        if equity >= 0:
            assert f["bad_debt"] == 0 and not any(
                n in ("InsuranceFundDrawn", "AutoDeleveraged", "BadDebtSocialized", "DeleveragePending")
                for n, _ in self.tw.call_events), f"liquidation with equity {equity} >= 0 drew on the fund or ADL"

    def _check_adl_fills(self, events, before):
        """PROPERTIES 13 on one liquidation or deleverage: each ADL fill only
        reduces its target, never flips its sign, and a target that was
        healthy before stays healthy."""
        for name, f in events:
            if name != "AutoDeleveraged":
                continue
            key = (f["target"], f["market_id"])
            size, was_liquidatable = before[key]
            pos = self.w.e.positions.get(key)
            closed = f["size"]
            assert closed != 0 and (closed > 0) == (size > 0) and abs(closed) <= abs(size), (
                f"ADL closed {closed} of {size}: {key}")
            if pos is None:
                assert closed == size, f"ADL closed {closed} of {size} but the position is gone: {key}"
                continue
            assert pos.size == size - closed, f"ADL left {pos.size} of {size} after closing {closed}: {key}"
            assert was_liquidatable or not perp_engine.is_liquidatable(self.w, *key), (
                f"ADL left a healthy target liquidatable: {key}, {pos}")

    def _check_funding_direction(self, before):
        """PROPERTIES 19 on one successful call: a market accrues at most once
        a call, at the skew it had before the call, so its funding index
        moves only with that skew's sign (longs heavier: up) and its clock
        only forward; its borrow index (decision 96) never falls, and rises
        only when the rate in force before the call is above 0. Checked on
        the model, which equals the chain after every step."""
        for mid, (idx, t, skew, borrow, rate) in before.items():
            st = self.w.e.state[mid]
            moved = st.funding_index - idx
            assert st.last_funding_time >= t, f"market {mid}: funding clock went back {t} -> {st.last_funding_time}"
            assert moved == 0 or (moved > 0) == (skew > 0) and skew != 0, (
                f"market {mid}: funding index moved {moved} with skew {skew}")
            assert st.borrow_index == borrow or st.borrow_index > borrow and rate > 0, (
                f"market {mid}: borrow index moved {borrow} -> {st.borrow_index} at rate {rate}")

    def price(self, mid):
        return self.w.feeds[self.b.addresses[f"feed{mid}"]].answer

    def open_positions(self, mid=None):
        return [k for k in self.w.e.positions if mid is None or k[1] == mid]

    def at_next_block(self, fn, *args):
        """A model view evaluated at the next transaction's timestamp."""
        saved, self.w.now = self.w.now, self.tw.now + 1
        try:
            return fn(self.w, *args)
        finally:
            self.w.now = saved

    def touch(self, account, mid):
        self.touched.add((account, mid))

    def added_risk(self, account, mid):
        """After a successful open, increase or margin removal: the position
        must not be liquidatable, on the model now and on chain when the
        step ends with this call."""
        assert not perp_engine.is_liquidatable(self.w, account, mid), (
            f"liquidatable right after a risk-adding action: {account} market {mid}")
        self.risk_added.append((account, mid, self.tw.acted))

    def ranking(self, mid):
        """The next targets of the market's oldest pending job, at its price."""
        return adl.job_ranking(self.w, mid)

    # ------------------------------------------------------------ after every step
    @invariant()
    def chain_and_model_agree(self):
        tw = self.tw
        self.checked = -1  # until this comparison passes
        # every full_every-th step (and the example's last state, in
        # teardown) reads every stored value; the others only what the
        # step's calls named (Twin.compare)
        full = self.stats["steps"] % self.full_every == 0
        stored, views = tw.compare(self.touched, self.valuation, full=full)
        if tw.succeeded == 0:
            # (order ids read this step and not the last: refused, all zero on both sides, checked above)
            common = stored.keys() & self.last_stored.keys()
            diff({k: stored[k] for k in common}, {k: self.last_stored[k] for k in common},
                 "a step where every call reverted (or none ran) changed state")
        check_invariants(stored, tw.accounts, tw.minted, self.b.name, self.w.e.scale)
        for a, mid, n in self.risk_added:
            if n == tw.acted:  # the step's last call: the chain's view is still "right after"
                v = views.get(("views", a.lower(), mid))
                assert v is not None and v[1] is False, f"liquidatable right after a risk-adding action: {a} market {mid}"
        self._label(tw.events, self.step_labels)
        self.step_labels = set()
        self.checked = tw.acted_total
        self.last_stored = stored
        self.stats["steps"] += 1
        self.stats["calls"] += tw.acted
        tw.events, tw.succeeded, tw.acted = [], 0, 0
        self.touched = set()
        self.valuation = False
        self.risk_added = []

    def _label(self, events, labels):
        labels = set(labels)
        for name, f in events:
            if name == "PositionLiquidated":
                labels.add("liquidation")
                if f["bad_debt"] > 0:
                    labels.add("bad debt")
            elif name == "AutoDeleveraged":
                still_open = (f["target"], f["market_id"]) in self.w.e.positions
                labels.add("partial ADL" if still_open else "full ADL")
            elif name == "BadDebtSocialized":
                labels.add("socialized loss")
            elif name == "TpSlExecuted":
                labels.add("TP/SL execution")
            elif name == "DeleveragePending":
                labels.add("pending deleverage")
            elif name == "InsuranceFundDrawn":
                labels.add("insurance fund draw")
            elif name == "OrderExecuted":
                labels.add("order executed")
            elif name == "OrderCancelled":
                reason = f["reason"]
                if reason == "order: expired":  # only cancel_order logs it
                    labels.add("order cancelled after expiry")
                elif reason.endswith("acceptable"):
                    labels.add("cancelled: acceptable price")
                else:
                    labels.add(f"cancelled: {reason}")
        for label in sorted(labels):
            event(label)
            self.stats[label] += 1

    def _check_adl_accounting(self, events):
        """SPEC 8.4 on one call's model events: the fund pays first; ADL
        haircuts plus the socialized part plus what is left pending equal the
        uncovered bad debt, to the unit."""
        bad = sum(f["bad_debt"] for n, f in events if n == "PositionLiquidated")
        if bad:  # with bad debt, the vault's advance for the keeper joins the deficit
            bad += sum(f["from_vault"] for n, f in events if n == "KeeperPaid")
        covered = sum(f["amount"] for n, f in events if n == "InsuranceFundDrawn")
        haircuts = sum(f["haircut"] for n, f in events if n == "AutoDeleveraged")
        social = sum(f["amount"] for n, f in events if n == "BadDebtSocialized")
        pending = sum(f["remaining"] for n, f in events if n == "DeleveragePending")
        if bad and any(n == "PositionLiquidated" for n, _ in events):
            assert bad == covered + haircuts + social + pending, (
                f"bad debt {bad} != fund {covered} + haircuts {haircuts} + socialized {social} + pending {pending}")
            if haircuts or social or pending:
                assert self.w.token.balance_of(self.w.fund_address) == 0, "ADL while the insurance fund had money"


class BackstopMachine(BackstopActions):
    """The rules. Actors are role-named: traders, keeper, lp/lp2, owner, pauser."""

    # ------------------------------------------------------------ initial states
    @initialize(seed=st.sampled_from([0, 0, 0, 1_000 * USDC, 50_000 * USDC, 5_000_000 * USDC]),
                fee_share=st.sampled_from([0, 0, 3_000 * BPS]),
                borrow=st.sampled_from([0, BORROW_10_PCT, BORROW_10_PCT, 10**10]))
    def insurance_fund_seed(self, seed, fee_share, borrow):
        """The fund starts often empty, sometimes thin, sometimes deep; with
        no fee share it stays empty until a penalty or a top-up feeds it.
        Most runs start with a borrowing fee on every market (decision 96)."""
        if seed:
            self.act(self.r["owner"], "token.mint", self.b.addresses["fund"], seed)
        for mid in range(self.w.e.market_count):
            p = list(self.w.e.params[mid].as_tuple())
            if p[6] != fee_share:
                p[6] = fee_share
                assert self.act(self.r["owner"], "set_market_params", mid, tuple(p)) is None
            if borrow:
                assert self.act(self.r["owner"], "set_borrow_rate", mid, borrow) is None

    @initialize(
        mid=st.integers(0, 1),
        crowd_long=st.booleans(),
        n=st.sampled_from([21, 23, 8, 0, 3, 20]),  # 21 and 23: deeper than one ADL call takes
        crowd_margin=st.integers(10, 300),
        crowd_levs=st.lists(st.sampled_from([2, 5, 10, 20, 50, 90]), min_size=1, max_size=4),
        whale_lev=st.sampled_from([5, 10, 20, 50, 100]),
        whale_margin=st.integers(100_000, 500_000),
        opening=st.sampled_from(["quiet", "crash through the whale", "crash through the crowd", "stops and targets"]),
        gap_bps=st.integers(1, 3_000),
    )
    def crowd_and_whale(self, mid, crowd_long, n, crowd_margin, crowd_levs, whale_lev, whale_margin, opening, gap_bps):
        """A crowd of small positions on one side of a market and one large
        position against it (at low leverage it survives the small moves and
        waits for a crash): a crash either way makes one side bankrupt and
        the other the ADL queue, more than 20 deep when the crowd is.
        The opening then either leaves it there, or, with the fund emptied,
        crashes through the whale's bankruptcy price and liquidates it (a
        pending ADL when the crowd is deep enough), or through the largest
        crowd position's (the whale is then the ADL target, partly closed),
        or gives every position a take profit and a stop near entry and
        crosses one of them."""
        if opening == "crash through the whale":
            n = max(n, 22)  # deeper than one call's MAX_ADL_TARGETS = 20
        # every open requested, one later round, every order executed
        ids = []
        for i in range(n):
            margin_ = (crowd_margin + 37 * i) * USDC + i
            ids.append(self._open(self.traders[2 + i], mid, crowd_long, crowd_levs[i % len(crowd_levs)], margin_,
                                  i * 7919, then="pending"))
        ids.append(self._open(self.traders[0], mid, not crowd_long, whale_lev, whale_margin * USDC, 0, then="pending"))
        self._later_round(mid)
        for status, oid in ids:
            if status == "pending":
                self._execute(oid)
        whale = (self.traders[0], mid)
        crowd = sorted((k for k in self.open_positions(mid) if k != whale),
                       key=lambda k: -abs(self.w.e.positions[k].size))
        if opening == "crash through the whale" and whale in self.w.e.positions:
            self._crash_through(*whale, extra_bps=gap_bps, then_liquidate=True, fund_drained=True)
        elif opening == "crash through the crowd" and crowd:
            self._crash_through(*crowd[0], extra_bps=gap_bps, then_liquidate=True, fund_drained=True)
        elif opening == "stops and targets":
            for i in range(len(self.open_positions())):
                self.set_tp_sl(pick=i, tp_bps=5 + (gap_bps + 7 * i) % 100, sl_permille=900 + (gap_bps + i) % 100)
            if self.open_positions():
                self.price_crosses_trigger(pick=gap_bps, take_profit=gap_bps % 2 == 0, beyond=gap_bps % 50,
                                           then_execute=True)

    # ------------------------------------------------------------ collateral
    @rule(i=st.integers(0, N_TRADERS - 1),
          amount=st.one_of(st.sampled_from([0, 1, MAX_UINT]), st.integers(1, 300_000).map(lambda x: x * USDC)))
    def deposit(self, i, amount):
        self.act(self.traders[i], "deposit", amount)

    @rule(i=st.integers(0, N_TRADERS - 1), frac=st.sampled_from([0, 1, 2_500, 5_000, 10_000, 10_000, 10_001]))
    def withdraw(self, i, frac):
        t = self.traders[i]
        free = self.w.e.free.get(t, 0)
        amount = free * frac // 10_000 if frac <= 10_000 else free + 1
        self.act(t, "withdraw", amount)

    # ------------------------------------------------------------ orders
    # Every open, increase, reduce, close and margin removal is an order:
    # requested, then executed by the keeper after a later round (`then`:
    # at once; "early": first an execution before that round and the
    # requester's cancel before expiry, both refused; left pending for the
    # pending-order rules; with the engine paused in between; or "late":
    # past its expiry, where execution is refused and the requester cancels
    # it for a full refund).
    THEN = st.sampled_from(["execute"] * 4 + ["early", "pending", "paused", "late"])

    def _order(self, trader, mid, size, margin_delta, acceptable, then="execute"):
        """request_order, then as `then` says. Returns ("reverted", reason),
        ("pending", order id), or execute_order's outcome."""
        reason = self.act(trader, "request_order", mid, size, margin_delta, acceptable)
        self.touch(trader, mid)
        if reason is not None:
            return "reverted", reason
        oid = self.w.e.order_count
        if then == "pending":
            return "pending", oid
        if then == "early":
            # nothing changes: the comparison after the step checks the chain
            # (a step of refusals alone must leave every stored value as it was)
            expected = self._refusal(oid)
            assert expected is not None and self._execute(oid) == ("reverted", expected)
            assert self.act(trader, "cancel_order", oid) == "order: not expired"
        if then == "late":
            self.tw.now = max(self.tw.now, P._load_order(self.w, oid).expires_at)
            self.tw.restamp_feeds(self.r["owner"])
            self._touch_market(mid)
            assert self._execute(oid) == ("reverted", "order: expired")
            assert self.act(trader, "cancel_order", oid) is None
            return "cancelled", "order: expired"
        paused = then == "paused" and self.act(self.r["pauser"], "pause") is None
        self._later_round(mid)
        out = self._execute(oid)
        if paused:
            assert self.act(self.r["pauser"], "unpause") is None
        return out

    def _later_round(self, mid):
        """A new round of the market's feed at its answer (the price an order
        waits for); touches the market's views."""
        self.tw.restamp(mid, self.r["owner"])
        self._touch_market(mid)

    def _execute(self, oid, executor=None, same_second=False):
        """execute_order by the keeper (or `executor`); ("reverted", reason)
        or its outcome."""
        o = self.w.e.orders.get(oid)
        reason = self.act(executor or self.r["keeper"], "execute_order", oid, same_second=same_second)
        if o is not None:
            self.touch(o.account, o.market_id)
            self._touch_market(o.market_id)
        if reason is not None:
            return "reverted", reason
        return self.tw.outcome()

    def _open(self, trader, mid, long, lev, margin_, jitter, slippage="loose", then="execute"):
        return self._order(trader, mid, *self._open_args(mid, long, lev, margin_, jitter, slippage), then=then)

    def _open_args(self, mid, long, lev, margin_, jitter, slippage):
        """(size, margin, acceptable) of an open at `lev` at the current price.
        slippage: "loose" (10% above the price for a buy, which escrows the
        fee at that price; any price for a sell), "exact" (the price: the fee
        escrowed is the fee charged) or "worse" (one unit on the wrong side:
        cancelled at execution on the same answer)."""
        answer = self.price(mid)
        price = answer * 10**10
        size = margin_ * lev * self.w.e.scale // price + jitter
        size = max(size, 1)
        delta = size if long else -size
        if slippage == "loose":
            acceptable = price * 11 // 10 if long else 0
        elif slippage == "exact":
            acceptable = price
        else:
            acceptable = price - 1 if long else price + 1
        return delta, margin_, acceptable

    @rule(i=st.integers(0, N_TRADERS - 1), mid=st.integers(0, 1), long=st.booleans(),
          lev=st.sampled_from([1, 2, 3, 5, 10, 20, 33, 50, 80, 95, 99, 100, 101, 150]),
          margin_=st.one_of(st.integers(10, 60_000).map(lambda x: x * USDC), st.sampled_from([0, 1, 10 * USDC - 1])),
          jitter=st.integers(0, 10**15), slippage=st.sampled_from(["loose", "loose", "exact", "exact", "worse"]),
          edge=st.one_of(st.none(), st.none(), st.none(), st.none(), st.tuples(
              st.sampled_from([2**120, -(2**120), 2**120 - 1, 2**255 - 1, -(2**255), 1, -1, 0]),
              st.sampled_from([0, 10 * USDC, 2**127, 2**128, -1]),
              st.sampled_from([0, ANY_PRICE, P.MAX_PRICE, MAX_UINT]))),
          then=THEN)
    def open_order(self, i, mid, long, lev, margin_, jitter, slippage, edge, then):
        """Leverage from 1x to past the 100x limit (cancelled at execution:
        margin below initial), acceptable prices that the same answer misses
        (cancelled); sometimes (`edge`) sizes, margins and acceptable prices
        at and past the caps, which the request refuses."""
        t = self.traders[i]
        if edge is None:
            self._open(t, mid, long, lev, margin_, jitter, slippage, then)
            return
        self._order(t, mid, *edge, then=then)

    @precondition(lambda self: self.w.e.positions)
    @rule(pick=st.integers(0, 2**16), add_bps=st.integers(1, 20_000),
          margin_=st.one_of(st.just(0), st.integers(1, 20_000).map(lambda x: x * USDC)),
          opposite=st.sampled_from([False] * 9 + [True]), then=THEN)
    def increase_order(self, pick, add_bps, margin_, opposite, then):
        """An increase (or, `opposite`, a reduce that carries margin: refused
        at request unless the margin is 0)."""
        keys = self.open_positions()
        a, mid = keys[pick % len(keys)]
        size = self.w.e.positions[(a, mid)].size
        delta = max(abs(size) * add_bps // 10_000, 1) * (1 if size > 0 else -1)
        if opposite:
            delta = -delta
        self._order(a, mid, delta, margin_, self.price(mid) * 11 // 10 * 10**10 if delta > 0 else 0, then)

    @precondition(lambda self: self.w.e.positions)
    @rule(pick=st.integers(0, 2**16), frac=st.one_of(st.integers(1, 9_999), st.integers(1, 9_999),
                                                      st.sampled_from([0, 10_000, 10_001, 10_001])),
          wrong_sign=st.sampled_from([False] * 9 + [True]), slippage=st.sampled_from(["loose"] * 4 + ["worse"]),
          then=THEN)
    def reduce_order(self, pick, frac, wrong_sign, slippage, then):
        """A reduce of part of the position, all of it, or more than all (a
        full close); the wrong sign is an increase with no margin; a worse
        acceptable price is cancelled at execution."""
        keys = self.open_positions()
        a, mid = keys[pick % len(keys)]
        size = self.w.e.positions[(a, mid)].size
        amount = abs(size) * frac // 10_000 if frac <= 10_000 else abs(size) + 1 + abs(size) // 3
        delta = -amount if size > 0 else amount
        if wrong_sign:
            delta = -delta
        price = self.price(mid) * 10**10
        if slippage == "loose":
            acceptable = 0 if delta < 0 else ANY_PRICE
        else:
            acceptable = price + 1 if delta < 0 else price - 1
        self._order(a, mid, delta, 0, acceptable, then)

    @precondition(lambda self: self.w.e.positions)
    @rule(pick=st.integers(0, 2**16), liquidated=st.sampled_from([False, False, True]),
          extra_bps=st.integers(1, 3_000))
    def close_order(self, pick, liquidated, extra_bps):
        """A full close; `liquidated`: while the close waits, a gap through
        the position's bankruptcy price and its liquidation (that round is
        the later one): the close finds no position (cancelled,
        position: none)."""
        keys = self.open_positions()
        a, mid = keys[pick % len(keys)]
        size = self.w.e.positions[(a, mid)].size
        acceptable = 0 if size > 0 else ANY_PRICE
        if not liquidated:
            self._order(a, mid, -size, 0, acceptable)
            return
        status, oid = self._order(a, mid, -size, 0, acceptable, "pending")
        if status == "pending":
            self._crash_through(a, mid, extra_bps, then_liquidate=True, fund_drained=False)
            self._execute(oid)

    @precondition(lambda self: any(self.w.e.adl_jobs.get(m) for m in range(self.w.e.market_count)))
    @rule(pick=st.integers(0, 2**16), half=st.booleans())
    def target_closes_during_job(self, pick, half):
        """The escape (decision 86): while a job pends, one of its targets
        (opposite side, in profit at the job's price) closes all or half of
        its position: it pays the job first, out of its payout."""
        w = self.w
        mids = [m for m in range(w.e.market_count) if w.e.adl_jobs.get(m)]
        mid = mids[pick % len(mids)]
        job = w.e.adl_jobs[mid][0]
        targets = sorted(a for (a, m), p in w.e.positions.items()
                         if m == mid and (p.size > 0) != (job.bankrupt_size > 0)
                         and margin.upnl(p.size, p.entry_price, job.price, w.e.scale) > 0)
        if not targets:
            return
        a = targets[pick % len(targets)]
        size = w.e.positions[(a, mid)].size
        close = size // 2 if half and abs(size) > 1 else size
        self._order(a, mid, -close, 0, 0 if size > 0 else ANY_PRICE)

    @precondition(lambda self: self.w.e.positions)
    @rule(pick=st.integers(0, 2**16),
          amount=st.one_of(st.sampled_from([0, 1]), st.integers(1, 50_000).map(lambda x: x * USDC)))
    def add_margin(self, pick, amount):
        keys = self.open_positions()
        a, mid = keys[pick % len(keys)]
        self.act(a, "add_margin", mid, amount)
        self.touch(a, mid)

    @precondition(lambda self: self.w.e.positions)
    @rule(pick=st.integers(0, 2**16), frac=st.one_of(st.integers(1, 10_000), st.sampled_from([0, 2**130])),
          then=THEN)
    def remove_margin_order(self, pick, frac, then):
        """A margin removal: cancelled at execution below the initial
        margin or the minimum; past the order margin bound refused."""
        keys = self.open_positions()
        a, mid = keys[pick % len(keys)]
        m = self.w.e.positions[(a, mid)].margin
        amount = m * frac // 10_000 if frac <= 10_000 else frac
        self._order(a, mid, 0, -amount, 0, then)

    # ------------------------------------------------------------ pending orders
    @precondition(lambda self: self.w.e.orders)
    @rule(pick=st.integers(0, 2**16),
          when=st.sampled_from(["later round", "later round", "moved price", "same round", "past expiry"]),
          bps=st.integers(-300, 300), by=st.sampled_from(["keeper", "keeper", "requester", "other"]))
    def execute_pending(self, pick, when, bps, by):
        """Execute a pending order: after a later round (at the same answer
        or a moved one: an acceptable price missed cancels it); before one
        (`same round`: reverts "order: no later price", nothing changes);
        or past its expiry (a time jump, fresh feeds: reverts
        "order: expired"). Anyone may execute."""
        w = self.w
        ids = sorted(w.e.orders)
        oid = ids[pick % len(ids)]
        o = w.e.orders[oid]
        if when == "later round":
            self._later_round(o.market_id)
        elif when == "moved price":
            self._set_price(o.market_id, self.price(o.market_id) * (10_000 + bps) // 10_000)
        elif when == "past expiry":
            self.tw.now = max(self.tw.now, P._load_order(w, oid).expires_at)
            self.tw.restamp_feeds(self.r["owner"])
        executor = {"keeper": self.r["keeper"], "requester": o.account,
                    "other": self.traders[(pick + 3) % N_TRADERS]}[by]
        expected = self._refusal(oid)
        status, reason = self._execute(oid, executor)
        assert (reason if status == "reverted" else None) == expected, (
            f"execute_order({oid}) {when}: {status} {reason!r}, expected {expected!r}")

    def _refusal(self, oid):
        """The reason execute_order of pending order `oid` must revert with
        at the next call (docs/orders.md, "At execution"), None when it
        must go through (executed or cancelled)."""
        o = self.w.e.orders[oid]
        t = self.tw.now + 1
        feed = self.w.feeds[self.b.addresses[f"feed{o.market_id}"]]
        if t > P._load_order(self.w, oid).expires_at:
            return "order: expired"
        if t - feed.updated_at > self.w.e.params[o.market_id].max_price_age:
            return "stale price"
        if feed.updated_at <= o.requested_at:
            return "order: no later price"
        return None

    @precondition(lambda self: self.w.e.orders)
    @rule(pick=st.integers(0, 2**16), wait=st.booleans(), other=st.sampled_from([False] * 4 + [True]))
    def cancel_pending(self, pick, wait, other):
        """The requester cancels a pending order: refused before it expires
        ("order: not expired"); after (`wait`: a time jump past
        order_expiry) the whole escrow, execution fee included, comes back.
        Anyone else is refused ("order: not yours")."""
        w = self.w
        ids = sorted(w.e.orders)
        oid = ids[pick % len(ids)]
        o = w.e.orders[oid]
        if wait:
            self.tw.now = max(self.tw.now, P._load_order(w, oid).expires_at)
        sender = self.traders[(pick + 1) % N_TRADERS] if other and o.account != self.traders[(pick + 1) % N_TRADERS] \
            else o.account
        expired = self.tw.now + 1 > P._load_order(w, oid).expires_at
        free, escrow = w.e.free.get(o.account, 0), P._load_order(w, oid).escrow
        reason = self.act(sender, "cancel_order", oid)
        expected = "order: not yours" if sender != o.account else None if expired else "order: not expired"
        assert reason == expected, f"cancel_order({oid}): {reason!r}, expected {expected!r}"
        if reason is None:
            assert w.e.free[o.account] == free + escrow and oid not in w.e.orders, "an expired order's cancel"

    @rule(who=st.sampled_from(["owner", "owner", "keeper"]),
          expiry=st.sampled_from([59, 60, 600, 7_200, 7_200, 7 * 86_400, 7 * 86_400 + 1]))
    def set_order_expiry(self, who, expiry):
        """The owner changes the expiry (60 s to 7 days), pending orders
        included."""
        self.act(self.r[who], "set_order_expiry", expiry)

    @rule(i=st.integers(0, N_TRADERS - 1), mid=st.sampled_from([0, 1, 0, 1, 2]))
    def act_without_position(self, i, mid):
        """Verbs on a market without a position (or an unknown market):
        margin removal and reduce-like requests, unknown order ids, and a
        deleverage with nothing pending."""
        t = self.traders[i]
        if (t, mid) not in self.w.e.positions:
            self.act(t, "add_margin", mid, USDC)
            self.act(t, "request_order", mid, 0, -USDC, 0)
            self.act(t, "set_tp_sl", mid, 0, 0)
            self.act(self.r["keeper"], "execute_tp_sl", t, mid)
            self.act(self.r["keeper"], "liquidate", t, mid, [])
        unknown = self.w.e.order_count + 1 + i % 2
        self.act(self.r["keeper"], "execute_order", unknown)
        self.act(t, "cancel_order", unknown)
        if self.w.e.adl_pending.get(mid, P.AdlPending()).remaining == 0:
            self.act(self.r["keeper"], "deleverage", mid, [])

    # ------------------------------------------------------------ TP / SL
    @precondition(lambda self: self.w.e.positions)
    @rule(pick=st.integers(0, 2**16),
          tp_bps=st.one_of(st.integers(1, 120), st.integers(1, 120), st.sampled_from([0, -10])),
          sl_permille=st.one_of(st.integers(700, 999), st.integers(1, 999), st.sampled_from([-1, 0])))
    def set_tp_sl(self, pick, tp_bps, sl_permille):
        """TP a little beyond entry (or on the wrong side); SL between the
        liquidation price and entry, mostly near entry (or beyond the
        liquidation price); 0 clears. Small price moves then cross them."""
        keys = self.open_positions()
        a, mid = keys[pick % len(keys)]
        pos = self.w.e.positions[(a, mid)]
        entry = pos.entry_price
        up = 1 if pos.size > 0 else -1
        tp = 0 if tp_bps == 0 else entry + up * entry * tp_bps // 10_000
        liq = margin.liquidation_price(pos.size, entry, pos.margin, self.at_next_block(P._mmf, mid), self.w.e.scale)
        if sl_permille < 0:
            sl = liq
        elif sl_permille == 0:
            sl = 0
        else:
            sl = liq + (entry - liq) * sl_permille // 1000
        self.act(a, "set_tp_sl", mid, max(tp, 0), max(sl, 0))
        self.touch(a, mid)

    @precondition(lambda self: self.w.e.positions)
    @rule(pick=st.integers(0, 2**16), prefer_triggered=st.sampled_from([True, True, True, False]))
    def execute_tp_sl(self, pick, prefer_triggered):
        keys = [k for k, p in self.w.e.positions.items() if p.take_profit or p.stop_loss] or self.open_positions()
        if prefer_triggered:
            price = lambda mid: self.price(mid) * 10**10  # noqa: E731
            hit = [k for k in keys if _triggered(self.w.e.positions[k], price(k[1]))]
            keys = hit or keys
        a, mid = keys[pick % len(keys)]
        self.act(self.r["keeper"], "execute_tp_sl", a, mid)
        self.touch(a, mid)
        self.touch(self.r["keeper"], mid)

    # ------------------------------------------------------------ liquidation and ADL
    def _liquidation_target(self, pick, prefer_liquidatable):
        keys = self.open_positions()
        if prefer_liquidatable:
            liq = [k for k in keys if self.at_next_block(perp_engine.is_liquidatable, *k)]
            keys = liq or keys
        return keys[pick % len(keys)]

    @precondition(lambda self: self.w.e.positions)
    @rule(pick=st.integers(0, 2**16), prefer_liquidatable=st.sampled_from([True, True, True, False]),
          by=st.sampled_from(["keeper", "keeper", "self", "other"]), adl_list=TARGET_LISTS)
    def liquidate(self, pick, prefer_liquidatable, by, adl_list):
        """Liquidate with the ADL list the keeper computes with model/, or
        with a list that breaks the ranking: that one must revert whenever
        ADL runs."""
        a, mid = self._liquidation_target(pick, prefer_liquidatable)
        caller = {"keeper": self.r["keeper"], "self": a, "other": self.traders[(pick + 1) % N_TRADERS]}[by]
        if adl_list == "ranked":
            self._liquidate(a, mid, caller)
            return
        size = self.w.e.positions[(a, mid)].size
        good = perp_engine.adl_ranking(self.w, a, mid)
        bad, must_revert = self._wrong_list(good, mid, size, adl_list, exclude=a)
        queued = bool(self.w.e.adl_jobs.get(mid))  # behind a pending job the list is not used
        reason = self.act(caller, "liquidate", a, mid, bad)
        if reason is None and queued:
            assert not any(n == "AutoDeleveraged" for n, _ in self.tw.call_events), "a queued job filled targets"
        elif reason is None and must_revert:
            assert not self._adl_ran(), f"a {adl_list} ADL list was accepted: {bad}"
        self.touch(caller, mid)
        self._touch_market(mid)

    def _liquidate(self, a, mid, caller):
        was_liquidatable = self.at_next_block(perp_engine.is_liquidatable, a, mid)
        targets = perp_engine.adl_ranking(self.w, a, mid)
        reason = self.act(caller, "liquidate", a, mid, targets)
        assert reason not in RANKING_REASONS, f"the model's ADL ranking was refused: {reason}"
        if reason is None:
            assert was_liquidatable, "a healthy position was liquidated"
        self.touch(caller, mid)
        self._touch_market(mid)

    @precondition(lambda self: any(q.remaining for q in self.w.e.adl_pending.values()))
    @rule(data=st.data(), adl_list=TARGET_LISTS)
    def deleverage(self, data, adl_list):
        """Continue a pending ADL with the model's next ranked targets (or a
        list that breaks the ranking, which must revert)."""
        mids = [m for m, q in self.w.e.adl_pending.items() if q.remaining]
        mid = data.draw(st.sampled_from(mids), label="market")
        job = self.w.e.adl_pending[mid]
        if adl_list != "ranked":
            good = self.ranking(mid)
            bad, must_revert = self._wrong_list(good, mid, job.bankrupt_size, adl_list, exclude=job.bankrupt)
            reason = self.act(self.r["keeper"], "deleverage", mid, bad)
            if reason is None and must_revert:
                assert not self._adl_ran(), f"a {adl_list} ADL list was accepted: {bad}"
            self._touch_market(mid)
            return
        self.deleverage_ranked(mid)

    @precondition(lambda self: any(q.remaining for q in self.w.e.adl_pending.values()))
    @rule(pick=st.integers(0, 2**16), what=st.sampled_from(["bankruptcy", "escape", "escape", "price moves"]),
          bps=st.integers(1, 800))
    def while_a_job_pends(self, pick, what, bps):
        """While a market's ADL job pends: a second position on the bankrupt
        side goes bankrupt (the fund drained) and is liquidated, its job
        queues; or a position the job would take (opposite, in profit at
        the job's price) closes, and pays its share first; or the oracle
        moves and the keeper deleverages at the job's price."""
        mids = sorted(m for m, q in self.w.e.adl_pending.items() if q.remaining)
        mid = mids[pick % len(mids)]
        job = self.w.e.adl_pending[mid]
        long_job = job.bankrupt_size > 0
        if what == "bankruptcy":
            same = sorted(k for k, p in self.w.e.positions.items() if k[1] == mid and (p.size > 0) == long_job)
            if not same:
                t = self.traders[pick % N_TRADERS]
                if t == job.bankrupt or (t, mid) in self.w.e.positions:
                    return
                self._open(t, mid, long_job, 50, (1_000 + bps) * USDC, pick)
                same = [(t, mid)] if (t, mid) in self.w.e.positions else []
            if same:
                a, _ = same[pick % len(same)]
                self._crash_through(a, mid, extra_bps=bps % 200, then_liquidate=True, fund_drained=True)
            return
        if what == "escape":
            scale = self.w.e.scale
            liable = sorted(k for k, p in self.w.e.positions.items() if k[1] == mid and (p.size > 0) != long_job
                            and margin.upnl(p.size, p.entry_price, job.price, scale) > 0)
            if not liable:
                return
            a, _ = liable[pick % len(liable)]
            size = self.w.e.positions[(a, mid)].size
            fee = self.w.e.params[mid].execution_fee
            if self.w.e.free.get(a, 0) < fee:
                self.act(a, "deposit", fee)
            part = size if pick % 3 else size // 2
            self._order(a, mid, -part, 0, 0 if size > 0 else ANY_PRICE, then="execute")
            self._touch_market(mid)
            return
        answer = self.price(mid)
        self._set_price(mid, answer * (10_000 + (bps if pick % 2 else -bps)) // 10_000)
        self.deleverage_ranked(mid)

    def deleverage_ranked(self, mid):
        """deleverage with the model's ranking at the job's price; the
        continuation covers exactly what was left."""
        job = self.w.e.adl_pending[mid]
        if P._price(self.w, mid, False) != job.price:
            self.step_labels.add("deleverage at the job's price, the oracle moved")
        before, n, queued = job.remaining, len(self.tw.events), len(self.w.e.adl_jobs[mid])
        reason = self.act(self.r["keeper"], "deleverage", mid, self.ranking(mid))
        assert reason not in RANKING_REASONS, f"the model's ADL ranking was refused: {reason}"
        if reason is None:
            ev = self.tw.events[n:]
            covered = sum(f["haircut"] for e, f in ev if e == "AutoDeleveraged") + sum(
                f["amount"] for e, f in ev if e == "BadDebtSocialized")
            # this job's remainder (0 once it has left the queue)
            left = self.w.e.adl_jobs[mid][0].remaining if len(self.w.e.adl_jobs.get(mid, [])) == queued else 0
            # the keeper's floor, when the vault advanced it, joins what is left (docs/liquidation.md)
            before += sum(f["from_vault"] for e, f in ev if e == "KeeperPaid")
            if any(e == "KeeperPaid" for e, _ in ev):
                self.step_labels.add("keeper floor paid")
            assert before == covered + left, f"deleverage: {before} != {covered} + {left} pending"
        self._touch_market(mid)

    def _wrong_list(self, good, mid, bankrupt_size, kind, exclude):
        """(list, must it revert when ADL runs)."""
        same = [k[0] for k, p in self.w.e.positions.items()
                if k[1] == mid and k[0] != exclude and (p.size > 0) == (bankrupt_size > 0)]
        opposite = [k[0] for k, p in self.w.e.positions.items()
                    if k[1] == mid and (p.size > 0) != (bankrupt_size > 0)]
        losing = [x for x in opposite if x not in good]
        nobody = [t for t in self.traders if (t, mid) not in self.w.e.positions and t != exclude]
        if kind == "unsorted" and len(good) >= 2:
            return [good[1], good[0], *good[2:]], True
        if kind == "skipped rank" and good:
            return good[1:], True
        if kind == "wrong side" and same:
            return [same[0], *good], True
        if kind == "losing" and losing:
            return [losing[0], *good], True
        if kind == "duplicate" and good:
            return [good[0], good[0], *good[1:]], False
        if nobody:
            return [nobody[0], *good], True  # "no position"
        return list(good), False

    def _adl_ran(self):
        return any(n in ("AutoDeleveraged", "BadDebtSocialized", "DeleveragePending") for n, _ in self.tw.events)

    def _touch_market(self, mid):
        """Price moves, liquidations and ADL change the views of a whole
        market. Anvil reads every view after every step anyway; in process,
        where each view call costs ~2 ms of py-evm, only the pairs the step
        named are read."""
        self.touch(self.r["keeper"], mid)

    # ------------------------------------------------------------ prices and time
    @rule(mid=st.integers(0, 1), bps=st.integers(-150, 150), jitter=st.integers(0, 999))
    def move_price(self, mid, bps, jitter):
        """Small moves: positions drift across their liquidation and TP/SL prices."""
        self._set_price(mid, self.price(mid) * (10_000 + bps) // 10_000 + jitter)

    @rule(mid=st.integers(0, 1), down=st.booleans(), bps=st.integers(500, 4_000))
    def crash(self, mid, down, bps):
        """A gap straight through bankruptcy prices: bad debt, fund draws, ADL."""
        self._set_price(mid, self.price(mid) * (10_000 - bps if down else 10_000 + bps) // 10_000)

    @precondition(lambda self: self.w.e.positions)
    @rule(pick=st.integers(0, 2**16), extra_bps=st.integers(1, 3_000),
          then_liquidate=st.sampled_from([True, True, False]), fund_drained=st.booleans())
    def crash_through_bankruptcy(self, pick, extra_bps, then_liquidate, fund_drained):
        """A gap to just beyond one position's bankruptcy price (the largest
        by notional two times in three), often with the insurance fund emptied
        first and the liquidation in the next block: bad debt, which the
        fund, then ADL, then the vault absorb."""
        keys = sorted(self.open_positions(), key=lambda k: -abs(self.w.e.positions[k].size) * self.price(k[1]))
        a, mid = keys[0] if pick % 3 else keys[pick % len(keys)]
        self._crash_through(a, mid, extra_bps, then_liquidate, fund_drained)

    def _crash_through(self, a, mid, extra_bps, then_liquidate, fund_drained):
        if fund_drained:
            self._drain_fund(10_000)
        size = self.w.e.positions[(a, mid)].size
        bankrupt = perp_engine.bankruptcy_price(self.w, a, mid)
        answer = bankrupt // 10**10
        answer = answer * (10_000 - extra_bps) // 10_000 if size > 0 else answer * (10_000 + extra_bps) // 10_000 + 1
        self._set_price(mid, answer)
        if then_liquidate:
            self._liquidate(a, mid, self.r["keeper"])

    @precondition(lambda self: any(p.take_profit or p.stop_loss for p in self.w.e.positions.values()))
    @rule(pick=st.integers(0, 2**16), take_profit=st.booleans(), beyond=st.integers(0, 3_000),
          then_execute=st.booleans())
    def price_crosses_trigger(self, pick, take_profit, beyond, then_execute):
        """The price moves to (or just past) a TP or SL, and often the keeper
        executes it in the next block."""
        keys = [k for k, p in self.w.e.positions.items() if p.take_profit or p.stop_loss]
        a, mid = keys[pick % len(keys)]
        p = self.w.e.positions[(a, mid)]
        trigger = p.take_profit if (take_profit and p.take_profit) or not p.stop_loss else p.stop_loss
        up = (trigger == p.take_profit) == (p.size > 0)
        unit = 10**10  # feed answers have 8 decimals, prices 18
        answer = -(-trigger // unit) + beyond if up else trigger // unit - beyond
        self._set_price(mid, answer)
        if then_execute:
            self.act(self.r["keeper"], "execute_tp_sl", a, mid)
            self.touch(a, mid)

    def _set_price(self, mid, answer):
        lo, hi = self.session.initial_answers[mid] // 4, self.session.initial_answers[mid] * 4
        answer = min(max(answer, lo), hi)
        self.act(self.r["owner"], f"feed{mid}.set_answer", answer)
        self._touch_market(mid)

    # ------------------------------------------------------------ oracle hygiene (docs/trust.md "Oracles")
    @precondition(lambda self: self.open_positions(0) and "fallback0" in self.b.addresses)
    @rule(pick=st.integers(0, 2**16), bps=st.integers(-300, 300))
    def primary_feed_broken(self, pick, bps):
        """BTC-PERP's primary feed reverts; its fallback, rounds later at a
        price up to 3% away (reached at most 4% a round), prices a liquidation attempt on both sides
        (liquidated or 'position healthy' alike). Then the primary is back,
        with a fresh round at its old answer (so it prices again)."""
        keys = self.open_positions(0)
        a, mid = keys[pick % len(keys)]
        answer = self.w.feeds[self.b.addresses["feed0"]].answer
        owner = self.r["owner"]
        assert self.act(owner, "feed0.set_reverts", True) is None
        fallback = self.w.feeds[self.b.addresses["fallback0"]]
        target = answer * (10_000 + bps) // 10_000
        while True:  # the fallback walks there at most 4% a round: its history bound is 5% (decision 80)
            step = min(max(target, fallback.answer * 24 // 25), fallback.answer * 26 // 25)
            assert self.act(owner, "fallback0.set_answer", step) is None
            if step == target:
                break
        price, updated, _ = P._oracle_round(self.w, 0)
        assert (price, updated) == (fallback.answer * 10**10, fallback.updated_at)
        self._liquidate(a, mid, self.r["keeper"])
        self.step_labels.add("oracle: fallback priced a liquidation")
        assert self.act(owner, "feed0.set_reverts", False) is None
        assert self.act(owner, "feed0.set_answer", answer) is None
        self._touch_market(0)

    @precondition(lambda self: self.open_positions() and "sequencer" in self.b.addresses)
    @rule(pick=st.integers(0, 2**16))
    def sequencer_outage(self, pick):
        """The L2 sequencer goes down: a liquidation attempt reverts
        'sequencer down' on both sides; back up, it reverts 'sequencer
        grace'. Then the mock is set up-since-long-ago again, so the rest
        of the example trades."""
        keys = self.open_positions()
        a, mid = keys[pick % len(keys)]
        owner = self.r["owner"]
        targets = perp_engine.adl_ranking(self.w, a, mid)
        assert self.act(owner, "sequencer.set_status", 1) is None
        self.tw.restamp_feeds(owner)
        assert self.act(self.r["keeper"], "liquidate", a, mid, targets) == "sequencer down"
        self.step_labels.add("oracle: sequencer down")
        assert self.act(owner, "sequencer.set_status", 0) is None
        assert self.act(self.r["keeper"], "liquidate", a, mid, targets) == "sequencer grace"
        self.step_labels.add("oracle: sequencer grace")
        assert self.act(owner, "sequencer.set_round_data", 0, 1) is None

    @rule(dt=st.sampled_from([1, 30, 600, 1_800, 3_599, 1, 30, 600, 1_800, 3_599, 3_601, 86_400]))
    def time_passes(self, dt):
        """Funding accrues; past max_price_age every fresh-price verb reverts
        "stale price" until the next price move."""
        self.tw.now += dt

    # ------------------------------------------------------------ edges, aimed at
    def _liquidatable_at(self, a, mid, answer):
        """The model's is_liquidatable of (a, mid) had the feed answered
        `answer` at the next call, evaluated at the call after (where the
        liquidation lands)."""
        w = self.w
        f = w.feeds[self.b.addresses[f"feed{mid}"]]
        saved = f.answer, f.updated_at, w.now
        f.answer, f.updated_at, w.now = answer, self.tw.now + 1, self.tw.now + 2
        try:
            return perp_engine.is_liquidatable(w, a, mid)
        finally:
            f.answer, f.updated_at, w.now = saved

    def _maintenance_boundary(self, a, mid):
        """The first feed answer (8 decimals) at which the model says (a, mid)
        is liquidatable, coming from the healthy side: margin.liquidation_price
        at the position's effective margin, then stepped to the exact unit
        where is_liquidatable flips. None when out of the machine's price range."""
        w = self.w
        pos = w.e.positions[(a, mid)]
        price = P._price(w, mid, False)
        eff = P._effective_margin(w, pos, mid, price)
        guess = margin.liquidation_price(pos.size, pos.entry_price, eff, self.at_next_block(P._mmf, mid), w.e.scale) // 10**10
        lo, hi = self.session.initial_answers[mid] // 4, self.session.initial_answers[mid] * 4
        if not lo < guess < hi:
            return None
        # One feed unit moves equity by |size| * 1e-8 of a price, often far
        # less than a token unit, so is_liquidatable flips a few hundred
        # units from the guess: bracket it by doubling steps, then bisect.
        healthy = 1 if pos.size > 0 else -1  # the direction of a healthier price
        due = lambda x: self._liquidatable_at(a, mid, x)  # noqa: E731
        step = 1
        if due(guess):
            inside = guess
            while due(outside := inside + healthy * step):
                inside, step = outside, step * 2
                if not lo < outside < hi:
                    return None
        else:
            outside = guess
            while not due(inside := outside - healthy * step):
                outside, step = inside, step * 2
                if not lo < inside < hi:
                    return None
        while abs(outside - inside) > 1:
            middle = (inside + outside) // 2
            if due(middle):
                inside = middle
            else:
                outside = middle
        return inside

    @precondition(lambda self: self.w.e.positions)
    @rule(pick=st.integers(0, 2**16), side=st.sampled_from(["boundary", "boundary", "healthy", "beyond"]))
    def price_at_maintenance_boundary(self, pick, side):
        """The price set to exactly a position's maintenance boundary (equity
        == mmf * notional, in feed units), or one unit to the healthy side,
        or one beyond; the keeper then liquidates: it goes through at the
        boundary and beyond, and reverts "position healthy" one unit inside,
        on chain as in the model."""
        keys = sorted(self.open_positions())
        for n in range(3):
            a, mid = keys[(pick + n) % len(keys)]
            boundary = self._maintenance_boundary(a, mid)
            if boundary is not None:
                break
        else:
            return
        healthy = 1 if self.w.e.positions[(a, mid)].size > 0 else -1
        answer = {"boundary": boundary, "healthy": boundary + healthy, "beyond": boundary - healthy}[side]
        assert self.act(self.r["owner"], f"feed{mid}.set_answer", answer) is None
        self._touch_market(mid)
        due = self.at_next_block(perp_engine.is_liquidatable, a, mid)
        assert due == (side != "healthy"), f"{a} market {mid} at {answer} ({side} of {boundary}): liquidatable {due}"
        reason = self.act(self.r["keeper"], "liquidate", a, mid, perp_engine.adl_ranking(self.w, a, mid))
        self.touch(a, mid)
        assert reason not in RANKING_REASONS, f"the model's ADL ranking was refused: {reason}"
        assert reason == (None if due else "position healthy"), (
            f"liquidation of {a} market {mid} at {answer} ({side} of the boundary {boundary}): {reason!r}")
        if side == "boundary":
            self.step_labels.add("edge: liquidated at the maintenance boundary")
        elif side == "healthy":
            self.step_labels.add("edge: healthy one unit from the boundary")

    @precondition(lambda self: self.w.e.positions)
    @rule(pick=st.integers(0, 2**16))
    def price_age_boundary(self, pick):
        """Time jumps to exactly max_price_age after the feed's last round: a
        fresh-price verb still works (a pending order of the market executes
        or is cancelled, else a liquidation passes the price check); one
        second later a liquidation reverts "stale price" on both."""
        w = self.w
        keys = sorted(self.open_positions())
        a, mid = keys[pick % len(keys)]
        feed = w.feeds[self.b.addresses[f"feed{mid}"]]
        age = w.e.params[mid].max_price_age
        if self.tw.now + 1 > feed.updated_at + age:
            self._later_round(mid)
        at = feed.updated_at + age  # the next call's timestamp
        self.tw.now = max(self.tw.now, at - 1)
        ready = [oid for oid, o in sorted(w.e.orders.items()) if o.market_id == mid and feed.updated_at > o.requested_at
                 and P._load_order(w, oid).expires_at >= at]
        if ready:
            status, reason = self._execute(ready[0])
            assert status != "reverted", f"execute_order({ready[0]}) at exactly max_price_age: {reason!r}"
        else:
            reason = self.act(self.r["keeper"], "liquidate", a, mid, perp_engine.adl_ranking(w, a, mid))
            assert reason not in RANKING_REASONS, f"the model's ADL ranking was refused: {reason}"
            # past the price check: liquidated, healthy, or bankrupt while an ADL is pending
            assert reason in (None, "position healthy", "adl: queue full"), (
                f"liquidation at exactly max_price_age: {reason!r}")
            self._touch_market(mid)
        self.step_labels.add("edge: fresh at exactly max_price_age")
        left = sorted(self.open_positions(mid))
        if left:
            b, _ = left[pick % len(left)]
            reason = self.act(self.r["keeper"], "liquidate", b, mid, perp_engine.adl_ranking(w, b, mid))
            assert reason not in RANKING_REASONS, f"the model's ADL ranking was refused: {reason}"
            assert reason == "stale price", f"liquidation at max_price_age + 1: {reason!r}"
            self.step_labels.add("edge: stale at max_price_age + 1")

    @rule(i=st.integers(0, N_TRADERS - 1), mid=st.integers(0, 1), long=st.booleans(),
          margin_=st.integers(100, 5_000).map(lambda x: x * USDC))
    def order_in_its_request_second(self, i, mid, long, margin_):
        """An open requested, a round stamped in the same second and an
        execution in that second too (two blocks with one timestamp): it
        reverts "order: no later price"; one second later, after a new
        round, it goes through (executed, or cancelled by its checks)."""
        t = self.traders[i]
        if P._pending_id(self.w, t, mid):
            return
        status, oid = self._open(t, mid, long, 2, margin_, 0, then="pending")
        if status != "pending":
            return
        self.tw.restamp(mid, self.r["owner"], same_second=True)
        assert self._execute(oid, same_second=True) == ("reverted", "order: no later price")
        self.step_labels.add("edge: refused in the request's second")
        self._later_round(mid)
        status, _ = self._execute(oid, same_second=True)
        assert status != "reverted", f"order {oid}, a second after its request and after a new round: {status}"
        if status == "executed":
            self.step_labels.add("edge: executed one second after the request")

    @rule(pair=st.integers(0, 2**16), mid=st.integers(0, 1), long=st.booleans(), lev=st.sampled_from([20, 50, 80]),
          margin_=st.integers(200, 3_000).map(lambda x: x * USDC), swapped=st.booleans(), extra_bps=st.integers(1, 2_000))
    def identical_positions(self, pair, mid, long, lev, margin_, swapped, extra_bps):
        """Two accounts open identical positions executed in the same second
        (same size, entry, margin and funding index: equal ADL scores); then
        an opposite position (a fresh one if none) gaps through bankruptcy
        with the fund empty, and ADL must take the lower address first: the
        model's list puts it first, a list with the two swapped is refused
        "adl: unsorted" whenever ADL reaches both."""
        w = self.w
        free = [t for t in self.traders if (t, mid) not in w.e.positions and not P._pending_id(w, t, mid)]
        if len(free) < 3:
            return
        a = free[pair % len(free)]
        b = free[(pair // len(free) + 1 + pair) % len(free)]
        if a == b:
            b = free[(free.index(a) + 1) % len(free)]
        args = self._open_args(mid, long, lev, margin_, 0, "loose")
        ids = []
        for t in (a, b):
            reason = self.act(t, "request_order", mid, *args)
            self.touch(t, mid)
            if reason is None:
                ids.append(w.e.order_count)
        self._later_round(mid)
        outs = [self._execute(oid, same_second=n > 0) for n, oid in enumerate(ids)]
        if len(ids) < 2 or any(o[0] != "executed" for o in outs):
            return
        pa, pb = w.e.positions[(a, mid)], w.e.positions[(b, mid)]
        assert _pos_tuple(pa) == _pos_tuple(pb), f"identical orders in one second: {_pos_tuple(pa)} != {_pos_tuple(pb)}"
        self.step_labels.add("edge: identical positions, equal ADL scores")
        low, high = sorted((a, b), key=str.lower)
        opposite = sorted(k for k, p in w.e.positions.items() if k[1] == mid and (p.size > 0) != long)
        if not opposite:
            c = next(t for t in free if t not in (a, b))  # an opposite position to go bankrupt
            if self._open(c, mid, not long, 10, 2 * margin_, 0)[0] != "executed":
                return
            opposite = [(c, mid)]
        bankrupt = max(opposite, key=lambda k: abs(w.e.positions[k].size))
        self._drain_fund(10_000)
        size = w.e.positions[bankrupt].size
        answer = perp_engine.bankruptcy_price(w, *bankrupt) // 10**10
        answer = answer * (10_000 - extra_bps) // 10_000 if size > 0 else answer * (10_000 + extra_bps) // 10_000 + 1
        self._set_price(mid, answer)
        if not self.at_next_block(perp_engine.is_liquidatable, *bankrupt):
            return
        ranking = perp_engine.adl_ranking(w, *bankrupt)
        if low not in ranking or high not in ranking:
            return
        sa, sb = (self.at_next_block(perp_engine.adl_score, t, mid) for t in (low, high))
        assert sa == sb > 0 and ranking.index(low) < ranking.index(high), (
            f"equal ADL scores {sa}, {sb}: the model ranks {high} before the lower {low}: {ranking}")
        if swapped:
            i, j = ranking.index(low), ranking.index(high)
            bad = list(ranking)
            bad[i], bad[j] = high, low
            reason = self.act(self.r["keeper"], "liquidate", *bankrupt, bad)
            self.touch(self.r["keeper"], mid)
            if reason == "adl: unsorted":
                self.step_labels.add("edge: equal ADL scores ranked by address")
            else:
                filled = {f["target"] for n, f in self.tw.call_events if n == "AutoDeleveraged"}
                assert reason is not None or not {low, high} <= filled, f"a list with {high} before {low} was accepted"
            if reason is None:
                return
        n = len(self.tw.events)
        self._liquidate(*bankrupt, self.r["keeper"])
        if {low, high} <= {f["target"] for e, f in self.tw.events[n:] if e == "AutoDeleveraged"}:
            self.step_labels.add("edge: equal ADL scores ranked by address")

    @precondition(lambda self: self.w.e.positions)
    @rule(pick=st.integers(0, 2**16), extra_bps=st.integers(1, 2_000), lev=st.sampled_from([2, 10, 50]),
          margin_=st.integers(100, 3_000).map(lambda x: x * USDC), listed=st.booleans())
    def zero_pnl_opposite(self, pick, extra_bps, lev, margin_, listed):
        """A position gaps through bankruptcy with the fund empty; before the
        liquidation, a fresh opposite position opens at exactly that price
        (entry = price: zero PnL). Decision 54: it is not in profit, so the
        ranking leaves it out, the completeness scan does not count it (the
        model's list, without it, goes through on both sides) and a list
        naming it is refused "adl: not in profit"."""
        w = self.w
        keys = sorted(self.open_positions())
        a, mid = keys[pick % len(keys)]
        free = [t for t in self.traders if (t, mid) not in w.e.positions and not P._pending_id(w, t, mid) and t != a]
        if not free or P._pending_id(w, a, mid):
            return
        self._drain_fund(10_000)
        long = w.e.positions[(a, mid)].size < 0  # the opposite side
        self._crash_through(a, mid, extra_bps, False, False)
        if not self.at_next_block(perp_engine.is_liquidatable, a, mid):
            return
        c = free[pick % len(free)]
        if self._open(c, mid, long, lev, margin_, 0)[0] != "executed":
            return
        pc = w.e.positions[(c, mid)]
        assert pc.entry_price == self.price(mid) * 10**10, f"{c} entered at {pc.entry_price}, not the price"
        assert self.at_next_block(perp_engine.adl_score, c, mid) == 0, f"a zero-PnL position of {c} has an ADL score"
        ranking = perp_engine.adl_ranking(w, a, mid)
        assert c not in ranking, f"the model ranks the zero-PnL position of {c}: {ranking}"
        if listed and P.MAX_ADL_TARGETS > len(ranking):
            n = len(self.tw.events)
            reason = self.act(self.r["keeper"], "liquidate", a, mid, [c, *ranking])
            self.touch(self.r["keeper"], mid)
            self._touch_market(mid)
            if reason is None:  # no ADL was needed: the list was not read
                assert not any(e == "AutoDeleveraged" for e, _ in self.tw.events[n:]), (
                    f"a list led by the zero-PnL position of {c} was accepted")
                return
            if reason == "adl: pending deleverage":  # an earlier job of the market comes first
                return
            assert reason == "adl: not in profit", f"a list led by the zero-PnL position of {c}: {reason!r}"
        n = len(self.tw.events)
        self._liquidate(a, mid, self.r["keeper"])
        assert c not in {f["target"] for e, f in self.tw.events[n:] if e == "AutoDeleveraged"}, (
            f"ADL took the zero-PnL position of {c}")
        if (a, mid) not in w.e.positions:
            self.step_labels.add("edge: zero-PnL opposite position not a target")

    @precondition(lambda self: self.w.e.positions)
    @rule(pick=st.integers(0, 2**16))
    def stop_at_liquidation_price(self, pick):
        """A stop-loss at exactly the liquidation price (the position's
        stored margin, as set_tp_sl computes it) is refused "tp_sl: stop
        beyond liquidation"; one unit inside is accepted."""
        w = self.w
        keys = sorted(self.open_positions())
        for n in range(len(keys)):
            a, mid = keys[(pick + n) % len(keys)]
            pos = w.e.positions[(a, mid)]
            liq = margin.liquidation_price(pos.size, pos.entry_price, pos.margin, self.at_next_block(P._mmf, mid), w.e.scale)
            inside = liq + 1 if pos.size > 0 else liq - 1
            feed = w.feeds[self.b.addresses[f"feed{mid}"]]
            crossed = (pos.take_profit or pos.stop_loss) and _triggered(pos, self.price(mid) * 10**10) and (
                feed.updated_at > w.e.tp_sl_at.get((a, mid), 0))
            if (liq > 0 and not P._pending_id(w, a, mid) and not crossed
                    and (inside < pos.entry_price if pos.size > 0 else inside > pos.entry_price)):
                break
        else:
            return
        assert self.act(a, "set_tp_sl", mid, 0, liq) == "tp_sl: stop beyond liquidation"
        self.step_labels.add("edge: stop at the liquidation price refused")
        if mid in w.e.mmf_ramp:  # a second later, a ramping mmf moved the liquidation price
            liq = margin.liquidation_price(pos.size, pos.entry_price, pos.margin, self.at_next_block(P._mmf, mid),
                                           w.e.scale)
            inside = liq + 1 if pos.size > 0 else liq - 1
        assert self.act(a, "set_tp_sl", mid, 0, inside) is None
        self.step_labels.add("edge: stop one unit inside accepted")
        self.touch(a, mid)

    # ------------------------------------------------------------ vault and fund
    @rule(lp=st.integers(0, 1), action=st.sampled_from(["request deposit", "request redeem", "claim", "claim",
                                                        "claim too much"]),
          amount=st.one_of(st.sampled_from([0, 1]), st.integers(1, 2_000_000).map(lambda x: x * USDC)),
          frac=st.one_of(st.integers(1, 10_000), st.just(10_000)), then_claim=st.booleans())
    def liquidity_provider(self, lp, action, amount, frac, then_claim):
        """An LP's side of the vault's epochs (ERC-7540, issue 12): a deposit
        or a redemption requested into the open epoch (a deposit often
        followed by a round on every feed, the settlement and its claim), or
        a claim of what settled epochs hold (part or all of it; one unit
        more is refused)."""
        self.valuation = True
        a, w = self.session.lps[lp], self.w
        if action == "request deposit":
            if self._lp_request(a, "vault.requestDeposit", amount, a, a) is None and then_claim:
                self.tw.restamp_feeds(self.r["owner"])
                if self._settle(self.r["keeper"]) is None and (n := liquidity_vault.max_deposit(w, a)):
                    assert self.act(a, "vault.deposit", n, a) is None
                    self.step_labels.add("lp: deposit claimed")
        elif action == "request redeem":
            self._lp_request(a, "vault.requestRedeem", w.v.balances.get(a, 0) * frac // 10_000, a, a)
        else:
            over = action == "claim too much"
            for verb, most in (("vault.deposit", liquidity_vault.claimable_deposit(w, a)),
                               ("vault.redeem", liquidity_vault.claimable_redeem(w, a))):
                n = most + 1 if over else most * frac // 10_000
                reason = self.act(a, verb, *((n, a) if verb == "vault.deposit" else (n, a, a)))
                if reason is None:
                    self.step_labels.add(f"lp: {verb[6:]} claimed")
                elif over:
                    assert reason == "vault: exceeds claimable", f"{verb} above claimable: {reason!r}"
                    self.step_labels.add("lp: claim above claimable refused")
            if not over and liquidity_vault.claimable_returned(w, a):
                assert self.act(a, "vault.claimCancelRedeemRequest", 0, a, a) is None
                self.step_labels.add("lp: unpaid shares claimed back")

    def _lp_request(self, a, verb, *args):
        """A request; on success the machine's own ledger keeps its time
        under the epoch it joined (the issue 12 invariant reads it). A
        request first prices a closed epoch whose rounds are in, and closes
        and prices the open one once its rounds are in (it then joins the
        next): the invariant is checked on those too."""
        reason = self.act(a, verb, *args)
        if reason is None:
            self.lp_requested[self.w.v.epoch] = self.tw.now
            self.step_labels.add("lp: deposit requested" if verb == "vault.requestDeposit" else "lp: redemption requested")
            if self._check_priced():
                self.step_labels.add("lp: epoch priced by a request")
        else:
            self.step_labels.add(f"lp: {verb[6:]} refused: {reason}")
        return reason

    @property
    def lp_requested(self):
        """epoch -> the time of its last request the machine made (per example)."""
        if "_lp_requested" not in self.__dict__:
            self._lp_requested = {}
        return self._lp_requested

    @rule(rounds=st.booleans(), who=st.sampled_from(["keeper", "keeper", "lp", "trader3"]))
    def lp_settle(self, rounds, who):
        """Anyone settles the vault's epochs: after a round on every feed, or
        before the epoch's rounds (the open epoch then only closes, and a
        closed one waits: "vault: no later round")."""
        self.valuation = True
        if rounds:
            self.tw.restamp_feeds(self.r["owner"])
        reason = self._settle(self.r[who])
        if not rounds and reason is None and self.w.v.closing:
            # the epoch just closed before its rounds: settling it again now is too early
            self._settle(self.r[who])

    def _settle(self, who):
        reason = self.act(who, "vault.settle")
        if reason is not None:
            self.step_labels.add(f"lp settle refused: {reason}")
            return reason
        w, A = self.w, self.b.addresses
        settled = [f for name, f in self.tw.call_events if name == "EpochSettled"]
        closed = [f["epoch"] for name, f in self.tw.call_events if name == "EpochClosed"]
        if any(e not in {f["epoch"] for f in settled} for e in closed):
            self.step_labels.add("lp: epoch closed before its rounds")
        self._check_priced()
        return None

    def _check_priced(self):
        """Issue 12's invariant on every epoch the last call priced: each
        market's price comes from the FIRST round of its feed later than
        every request in the epoch (the machine's own ledger of request
        times, and the vault's record of its last one), read from the
        feeds' histories here, whatever the round the feed is at now (the
        feed the market prices from: the primary, or its fallback; at most
        MAX_ROUND_WALK rounds back). Returns how many epochs it checked."""
        w, A = self.w, self.b.addresses
        settled = [f for name, f in self.tw.call_events if name == "EpochSettled"]
        for f in settled:
            e = f["epoch"]
            ep = liquidity_vault.get_epoch(w, e)
            last = max(self.lp_requested.get(e, 0), ep.last_request)
            assert self.lp_requested.get(e, 0) <= ep.last_request, f"epoch {e}"
            assert len(ep.priced_rounds) == w.e.market_count, f"epoch {e}: {ep.priced_rounds}"
            for mid, t in enumerate(ep.priced_rounds):
                assert t > last, f"issue 12: epoch {e} priced at {t} on market {mid}, not later than {last}"
                firsts = set()
                for role in (f"feed{mid}", f"fallback{mid}"):
                    if role in A:
                        feed = w.feeds[A[role]]
                        ids = [i for i in range(feed.round_id - perp_engine.MAX_ROUND_WALK, feed.round_id + 1)
                               if feed.history.get(i, (0, 0, 0, 0))[2] > last]
                        if ids:
                            firsts.add(feed.history[min(ids)][2])
                if t != P._oracle_round(w, mid)[1]:
                    self.step_labels.add("lp: priced at a round before the latest")
                assert t in firsts, (
                    f"issue 12: epoch {e} priced at {t} on market {mid}, not the first round after {last}: {firsts}")
            self.step_labels.add("lp: epoch priced at the first round after its requests")
            if f["redeem_filled"] < f["redeem_shares"]:
                self.step_labels.add("lp: redemptions paid up to free cash")
        return len(settled)

    def _claim_all(self, must):
        """Every LP claims all its settled deposits and redemptions."""
        w = self.w
        for a in self.session.lps:
            if n := liquidity_vault.max_deposit(w, a):
                must(a, "vault.deposit", n, a)
                self.step_labels.add("lp: deposit claimed")
            if n := liquidity_vault.max_redeem(w, a):
                must(a, "vault.redeem", n, a, a)
                self.step_labels.add("lp: redeem claimed")
            if liquidity_vault.claimable_returned(w, a):
                must(a, "vault.claimCancelRedeemRequest", 0, a, a)

    @rule()
    def vault_to_capacity(self):
        """Edge: both LPs ask for all their shares back in one epoch, which
        is settled before its rounds (it closes; settling again is refused),
        then after a round on every feed, paying redemptions up to free
        cash, so the vault's cash ends exactly at the reserve (when their
        shares are worth that much); the next open then finds no capacity.
        The LPs claim everything the epochs hold."""
        self.valuation = True
        w = self.w
        for a in self.session.lps:
            if shares := w.v.balances.get(a, 0):
                self._lp_request(a, "vault.requestRedeem", shares, a, a)
        # settled before the epoch's rounds: it closes, and settling it again is too early
        if self._settle(self.r["keeper"]) is None and w.v.closing:
            self._settle(self.r["keeper"])
        self.tw.restamp_feeds(self.r["owner"])
        if self._settle(self.r["keeper"]) is None:
            for a in self.session.lps:
                if n := liquidity_vault.max_deposit(w, a):
                    assert self.act(a, "vault.deposit", n, a) is None
                    self.step_labels.add("lp: deposit claimed")
                if n := liquidity_vault.max_redeem(w, a):
                    assert self.act(a, "vault.redeem", n, a, a) is None
                    self.step_labels.add("lp: redeem claimed")
                if liquidity_vault.claimable_returned(w, a):
                    assert self.act(a, "vault.claimCancelRedeemRequest", 0, a, a) is None
                    self.step_labels.add("lp: unpaid shares claimed back")
        if liquidity_vault.cash(w) == perp_engine.traders_reserve(w) > 0:
            self.step_labels.add("edge: vault cash exactly at the reserve")

    @rule(who=st.sampled_from(["owner", "owner", "owner", "keeper"]),
          floor=st.sampled_from([(0, 0), (1 * USDC, 2_000 * USDC), (1 * USDC, 2_000 * USDC), (5 * USDC, 10_000 * USDC),
                                 (5 * USDC, 2_000 * USDC), (100 * USDC + 1, 10**9 * USDC)]))
    def set_keeper_reward(self, who, floor):
        """The owner sets the keeper's floor and the minimum notional (docs/
        liquidation.md); refused past 100 tokens, or when a market's trading
        fee on the minimum notional would not pay the floor."""
        self.act(self.r[who], "set_keeper_reward", *floor)

    @rule(who=st.sampled_from(["owner", "owner", "owner", "keeper"]),
          max_profit=st.sampled_from([25 * 10**16 - 1, 25 * 10**16, 5 * 10**17, 5 * 10**17, 10**18, 3 * 10**18,
                                      10 * 10**18, 10 * 10**18 + 1]))
    def set_max_profit(self, who, max_profit):
        """The owner moves the payout cap within [25%, 1000%] of entry
        notional; raising it past what the vault's cash covers is refused."""
        self.valuation = True
        if self.act(self.r[who], "set_max_profit", max_profit) == "vault: capacity":
            self.step_labels.add("set_max_profit refused: vault: capacity")

    @rule(who=st.sampled_from(["owner", "owner", "owner", "keeper"]), mid=st.sampled_from([0, 1, 2]),
          rate=st.sampled_from([0, BORROW_10_PCT, BORROW_10_PCT, 10**10, MAX_BORROW_RATE, MAX_BORROW_RATE + 1]))
    def set_borrow_rate(self, who, mid, rate):
        """The owner sets a market's borrowing fee (decision 96): both sides
        pay it to the vault from then on, through their side's index; above
        MAX_BORROW_RATE it is refused."""
        self.valuation = True
        if self.act(self.r[who], "set_borrow_rate", mid, rate) is None and rate > 0:
            self.step_labels.add("borrowing fee set")

    @rule(top_up=st.booleans(), amount=st.sampled_from([1, 1_000 * USDC, 100_000 * USDC]),
          frac=st.sampled_from([1, 5_000, 10_000]))
    def insurance_fund_changes(self, top_up, amount, frac):
        """A donation tops the fund up, or the owner takes its surplus (the
        floor is 0) and it is empty again."""
        if top_up:
            self.act(self.r["owner"], "token.mint", self.b.addresses["fund"], amount)
        else:
            self._drain_fund(frac)

    def _drain_fund(self, frac):
        bal = self.w.token.balance_of(self.w.fund_address)
        self.act(self.r["owner"], "fund.withdraw_surplus", self.r["owner"], bal * frac // 10_000)

    # ------------------------------------------------------------ admin
    @rule(who=st.sampled_from(["pauser", "pauser", "owner", "keeper"]), pause=st.booleans())
    def pause_or_unpause(self, who, pause):
        """Paused, only new risk stops: closes, margin adds, withdrawals,
        liquidation, ADL and TP/SL go on."""
        self.act(self.r[who], "pause" if pause else "unpause")

    @rule(mid=st.sampled_from([0, 0, 1, 1, 2]),
          which=st.sampled_from(["fees", "margins", "funding", "age", "open interest", "min margin",
                                 "execution fee", "invalid", "not owner"]),
          v=st.integers(0, 2**16))
    def set_market_params(self, mid, which, v):
        """Parameters change within bounds (and out of them, which reverts)."""
        base = self.w.e.params.get(mid) or self.w.e.params[0]
        p = list(base.as_tuple())
        # feed imf mmf liq_fee keeper_share trading_fee insurance_share funding_k max_rate age max_oi min_margin exec_fee
        pick = lambda xs, k=0: xs[(v >> (4 * k)) % len(xs)]  # noqa: E731
        sender = self.r["owner"]
        if which == "fees":
            p[5] = pick([0, 1 * BPS, 5 * BPS, 10 * BPS])
            p[3] = pick([0, 50 * BPS, 500 * BPS], 1)
            p[4] = pick([0, 2_000 * BPS, 5_000 * BPS], 2)
            p[6] = pick([0, 3_000 * BPS, 10_000 * BPS], 3)
            p[5] = min(p[5], p[2] - 1)
        elif which == "margins":
            p[1], p[2] = pick([(100 * BPS, 50 * BPS), (200 * BPS, 100 * BPS), (500 * BPS, 250 * BPS),
                               (100 * BPS, 90 * BPS), (1_000 * BPS, 50 * BPS)])
            p[5] = min(p[5], p[2] - 1)
        elif which == "funding":
            p[7] = pick([0, 27_777_777_777, 10**12, 10**14])
            p[8] = pick([0, 27_777_777_777, 10**12, 10**14], 1)
        elif which == "age":
            p[9] = pick([60, 3_600, 86_400])
        elif which == "open interest":
            p[10] = pick([10 * WAD, 1_000 * WAD, 30_000 * WAD, 2**120])
        elif which == "min margin":
            p[11] = pick([1, 10 * USDC, 1_000 * USDC])
        elif which == "execution fee":
            p[12] = pick([0, USDC, 100 * USDC])
        elif which == "invalid":
            field, value = pick([(2, p[1]), (1, 10**16 - 1), (5, p[2]), (3, 5 * 10**16 + 1), (4, 5 * 10**17 + 1),
                                 (6, WAD + 1), (9, 0), (9, 86_401), (10, 0), (11, 0), (7, 10**14 + 1)])
            p[field] = value
        else:
            sender = self.r["keeper"]
        ramp_before = self.w.e.mmf_ramp.get(mid)
        if self.act(sender, "set_market_params", mid, tuple(p)) is None:
            ramp = self.w.e.mmf_ramp.get(mid)
            if ramp is not None and ramp != ramp_before:
                # a raised mmf ramps in (positions._ramp_mmf): the views of the
                # market's positions compare the interpolated mmf from here on
                self.step_labels.add("mmf raise ramping in")
        if mid < self.w.e.market_count:
            self._touch_market(mid)


def _triggered(pos, price):
    if pos.size > 0:
        return (pos.take_profit and price >= pos.take_profit) or (pos.stop_loss and price <= pos.stop_loss)
    return (pos.take_profit and price <= pos.take_profit) or (pos.stop_loss and price >= pos.stop_loss)


def machine_for(session, stats=None, base=BackstopMachine):
    """A machine class bound to `session`, counting into `stats`."""
    return type(f"{base.__name__}_{session.backend.name}", (base,),
                {"session": session, "stats": Counter() if stats is None else stats})


def run(session, settings, stats=None, base=BackstopMachine, seed=None):
    """Run the machine under `settings`; return its counters (steps, calls,
    examples, one per label, seconds). Pass `stats` to keep them when the
    machine fails; `seed` fixes hypothesis's random stream (the parallel deep
    run gives each worker its own; BACKSTOP_SEED replays one)."""
    from hypothesis import seed as hypothesis_seed
    from hypothesis.stateful import run_state_machine_as_test

    cls = machine_for(session, stats, base)
    if seed is None:
        seed = os.environ.get("BACKSTOP_SEED")
    if seed is not None:
        cls = hypothesis_seed(int(seed))(cls)
    replay = os.environ.get("BACKSTOP_REPRODUCE")
    if replay:
        # "VERSION BLOB", the two arguments of the @reproduce_failure line a failure printed
        version, blob = replay.split()
        cls = reproduce_failure(version, blob.removeprefix("b").strip("'\"").encode())(cls)
    # The machine allocates a model snapshot or two per call and hypothesis
    # keeps every example's choices: with the default thresholds the cyclic
    # collector re-walks that long-lived heap every few hundred allocations
    # and costs a third of the in-process run. Freeze what exists, collect
    # the young generation less often, put both back afterwards.
    gc.collect()
    gc.freeze()
    thresholds = gc.get_threshold()
    gc.set_threshold(100_000, 50, 100)
    t0 = time.perf_counter()
    try:
        run_state_machine_as_test(cls, settings=settings)
    finally:
        cls.stats["seconds"] += time.perf_counter() - t0
        gc.set_threshold(*thresholds)
        gc.unfreeze()
    return cls.stats
