"""Model and chain side by side.

`Twin` deploys nothing: it wraps a deployed `Protocol` and a model `World`
built to mirror it, runs every action on both at the same block timestamp,
and compares outcomes (same revert reason, or same success) and full state.
Tests, the state machine and the demo's replay check all use it.
"""

from ape import chain
from ape.exceptions import ContractLogicError
from hexbytes import HexBytes

from model import World
from model.fixed_point import Revert
from model.positions import MarketParams
from scripts import governance
from scripts.governance import OWNER_VERBS, is_proposer

MAX_UINT = 2**256 - 1
ORDER_VERBS = ("request_order", "execute_order", "cancel_order")


def _norm(events):
    """Events as comparable tuples: addresses by value, ints as ints."""
    out = []
    for name, fields in events:
        out.append((name, tuple(sorted(
            (k, v.lower() if isinstance(v, str) and v.startswith("0x") else (v if isinstance(v, str) else int(v)))
            for k, v in fields.items()))))
    return out


def _addr(x):
    return getattr(x, "address", x)


def revert_reason(exc):
    """The revert string of an ape exception (None when it had none)."""
    msg = getattr(exc, "revert_message", None)
    if msg in (None, "", "Transaction failed."):
        return None
    return msg


def mirror_world(protocol, owner):
    """A model World equal to the freshly deployed `protocol` (read from chain).

    The owners are read from the chain: on a deployment they are the
    timelock (`owner`, the deployer, only proposes through it)."""
    e = protocol.engine
    w = World(
        engine=e.address,
        vault=protocol.vault.address,
        fund=protocol.insurance_fund.address,
        owner=str(e.owner()),
        token_decimals=protocol.token.decimals(),
        now=chain.blocks.head.timestamp,
        token_address=protocol.token.address,
    )
    w.v.owner = str(protocol.vault.owner())
    w.fund_owner = str(protocol.insurance_fund.owner())
    w.e.vault = protocol.vault.address
    w.e.insurance_fund = protocol.insurance_fund.address
    w.e.pauser = e.pauser()
    w.e.paused = e.paused()
    for feed in protocol.feeds:
        rd = feed.latestRoundData()
        f = w.add_feed(feed.address, feed.decimals(), rd[1])
        f.round_id, f.answer, f.started_at, f.updated_at, f.answered_in_round = (int(v) for v in rd)
    from model.mocks import Feed
    from model.positions import MarketState, OracleParams
    extra = list(getattr(protocol, "fallback_feeds", {}).values())
    if getattr(protocol, "sequencer_feed", None) is not None:
        extra.append(protocol.sequencer_feed)
    for feed in extra:
        rd = feed.latestRoundData()
        f = w.feeds[feed.address] = Feed(int(feed.decimals()), *(int(v) for v in rd))
        f.history[f.round_id] = (f.answer, f.started_at, f.updated_at, f.answered_in_round)
        if f.round_id & (2**64 - 1) > 1 and feed is not getattr(protocol, "sequencer_feed", None):
            # a fallback prices within MAX_FEED_JUMP of its previous round (positions._feed_round)
            f.history[f.round_id - 1] = tuple(int(v) for v in feed.getRoundData(f.round_id - 1)[1:])
    if getattr(protocol, "sequencer_feed", None) is not None:
        w.e.sequencer_feed, w.e.sequencer_grace = protocol.sequencer_feed.address, int(e.sequencer_grace())
    for mid in range(e.market_count()):
        o = e.oracle_params(mid)
        fallback = str(o[3])
        scale = 10 ** (18 - w.feeds[fallback].decimals) if int(fallback, 16) else 0
        w.e.oracle[mid] = OracleParams(int(o[0]), int(o[1]), int(o[2]), fallback, int(o[4]), scale)
    for mid in range(e.market_count()):
        p = e.market_params(mid)
        w.e.params[mid] = MarketParams(*[str(v) if k == 0 else int(v) for k, v in enumerate(p)])
        w.e.feed_scale[mid] = 10 ** (18 - w.feeds[str(p[0])].decimals)
        st = e.market_state(mid)
        w.e.state[mid] = MarketState(*[int(v) for v in st])
    w.e.market_count = e.market_count()
    w.e.max_profit, w.e.total_cost = int(e.max_profit()), int(e.total_cost())
    w.e.min_keeper_reward, w.e.min_notional = int(e.min_keeper_reward()), int(e.min_notional())
    for holder in (protocol.vault.address, protocol.insurance_fund.address, e.address):
        bal = protocol.token.balanceOf(holder)
        if bal:
            w.token.balances[holder] = bal
    w.token.total_supply = protocol.token.totalSupply()
    w.v.total_supply = protocol.vault.totalSupply()
    return w


class Twin:
    """Run each action on chain and on the model at the same timestamp."""

    def __init__(self, protocol, world, accounts):
        self.p = protocol
        self.w = world
        self.accounts = list(accounts)
        self.now = max(world.now, chain.blocks.head.timestamp)

    # ------------------------------------------------------------ time and price
    def advance(self, seconds):
        self.now += seconds

    def _next_time(self):
        self.now = max(self.now, chain.blocks.head.timestamp) + 1
        chain.pending_timestamp = self.now
        return self.now

    def set_price(self, market_id, answer, deployer):
        """Move a mock feed (answer in the feed's decimals): a new round,
        stamped with the next block's time."""
        t = self._next_time()
        feed = self.p.feeds[market_id]
        feed.set_answer(answer, sender=deployer)
        self.w.set_answer(feed.address, answer, now=t)

    def restamp(self, market_id, sender):
        """A new round at the feed's current answer: the 'later price' an
        order or a TP/SL trigger waits for, without moving the price."""
        feed = self.p.feeds[market_id]
        self.set_price(market_id, self.w.feeds[feed.address].answer, sender)

    # ------------------------------------------------------------ orders
    def request(self, sender, market_id, size_delta, margin_delta, acceptable_price):
        """request_order on both; returns (ok, reason, order_id)."""
        ok, reason = self.act(sender, "request_order", market_id, size_delta, margin_delta, acceptable_price)
        oid = self.w.e.order_count if ok else None
        if ok:
            assert self.p.engine.order_count() == oid
        return ok, reason, oid

    def execute(self, executor, order_id):
        """execute_order on both; returns (status, reason): ("executed",
        None), ("cancelled", reason) from OrderCancelled, or ("reverted",
        reason) when the execution itself reverted (the order stays)."""
        n = len(self.w.events)
        ok, reason = self.act(executor, "execute_order", order_id)
        if not ok:
            return "reverted", reason
        for name, fields in self.w.events[n:]:
            if name == "OrderCancelled":
                return "cancelled", fields["reason"]
        return "executed", None

    def order(self, sender, market_id, size_delta, margin_delta, acceptable_price, executor):
        """A whole order: request, a later round at the same price, execution
        by `executor`. Returns (ok, reason): (True, None) when it executed,
        (False, reason) when the request reverted or the execution cancelled
        it (the reason the failed check gives)."""
        ok, reason, oid = self.request(sender, market_id, size_delta, margin_delta, acceptable_price)
        if not ok:
            return False, reason
        self.restamp(market_id, executor)
        status, reason = self.execute(executor, oid)
        assert status != "reverted", f"order {oid} did not execute after a later round: {reason!r}"
        return status == "executed", reason

    # ------------------------------------------------------------ actions
    def fund(self, account, amount, spenders=None):
        """Mint tokens to `account` and approve engine and vault, on both."""
        self._next_time()
        self.p.token.mint(account, amount, sender=account)
        self.w.mint(_addr(account), amount)
        for spender in spenders or (self.p.engine, self.p.vault):
            self._next_time()
            self.p.token.approve(spender, MAX_UINT, sender=account)
            self.w.approve(_addr(account), _addr(spender), MAX_UINT)

    def governs(self, sender, verb):
        """Whether `verb` from `sender` goes through the timelock: an owner
        verb (scripts/governance.OWNER_VERBS) from one of its proposers."""
        tl = getattr(self.p, "timelock", None)
        return tl is not None and verb in OWNER_VERBS and is_proposer(tl, sender)

    def act(self, sender, verb, *args):
        """Run `verb` on both; return (ok, reason). Raises AssertionError on
        any disagreement (one reverts and not the other, or other reasons).

        An owner verb from a proposer of the protocol's timelock is scheduled
        (one block) and executed (the next) through it (scripts/governance);
        the model runs it at the execution's time, from the timelock."""
        target, name = self._target(verb)
        plain = [_addr(a) if hasattr(a, "address") else a for a in args]
        op, model_sender = None, _addr(sender)
        t = self._next_time()
        if self.governs(sender, verb):
            # scheduled, then executed once ready: in the same second with
            # delay 0 (the devnet), `delay` seconds later otherwise (the
            # twin's clock, and the model's, jump there)
            op = governance.schedule(self.p.timelock, target, getattr(target, name).encode_input(*plain), sender)
            t = self.now = max(t, op.ready_at)
            chain.pending_timestamp = t
            model_sender = _addr(self.p.timelock)
        chain_reason, ok_chain, receipt = None, True, None
        try:
            if op is not None:
                receipt = governance.execute(self.p.timelock, op, sender)
            else:
                receipt = getattr(target, name)(*plain, sender=sender)
        except ContractLogicError as exc:
            ok_chain, chain_reason = False, revert_reason(exc)
        model_reason, ok_model = None, True
        n_events = len(self.w.events)
        try:
            self.w.call(model_sender, verb, *plain, now=t)
        except Revert as exc:
            ok_model, model_reason = False, exc.reason
        assert ok_chain == ok_model, f"{verb}{args}: chain {'ok' if ok_chain else 'reverted ' + repr(chain_reason)}, model {'ok' if ok_model else 'reverted ' + repr(model_reason)}"
        if not ok_chain:
            assert chain_reason == model_reason, f"{verb}{args}: chain reverted {chain_reason!r}, model {model_reason!r}"
        else:
            assert receipt.timestamp == t, "the chain mined at another time than the model ran"
            if verb in ORDER_VERBS:
                chain_events = [(log.event_name, dict(log.event_arguments)) for log in receipt.events
                                if log.event_name.startswith("Order")]
                model_events = [(n, f) for n, f in self.w.events[n_events:] if n.startswith("Order")]
                assert _norm(chain_events) == _norm(model_events), (
                    f"{verb}{args}: chain logged {chain_events}, model {model_events}")
        return ok_chain, chain_reason

    def _target(self, verb):
        if verb.startswith("vault."):
            return self.p.vault, verb[6:]
        if verb.startswith("fund."):
            return self.p.insurance_fund, verb[5:]
        return self.p.engine, verb

    # ------------------------------------------------------------ state
    def chain_state(self):
        return read_state(self.p, [_addr(a) for a in self.accounts])

    def model_state(self):
        return model_state(self.w, [_addr(a) for a in self.accounts])

    def assert_same(self):
        self.w.now = chain.blocks.head.timestamp
        c, m = self.chain_state(), self.model_state()
        diffs = [k for k in sorted(set(c) | set(m), key=str) if c.get(k) != m.get(k)]
        assert not diffs, "model and chain differ:\n" + "\n".join(
            f"  {k}: chain={c.get(k)!r} model={m.get(k)!r}" for k in diffs[:20])


class Reads:
    """View calls sent to the node as one JSON-RPC batch and decoded as ape
    decodes them (same types: checksummed addresses, structs), all at the
    same block. `add` queues a call and returns a handle; `run` sends the
    queue and returns each call's value by handle. One ape view call costs
    about 15 ms of Python and HTTP; a full state read is a few hundred of
    them, after every step of every twin test."""

    def __init__(self, block="latest"):
        self.block = block
        self.queue = []

    def add(self, contract, method, *args):
        from ape.contracts.base import ContractCall
        handler = getattr(contract, method)
        # a function with a default argument has one ABI per arity
        # (adl_pending(market_id) and adl_pending(market_id, index))
        abi = next(a for a in handler.abis if len(a.inputs) == len(args))
        data = handler.encode_input(*args)
        self.queue.append((ContractCall(abi=abi, address=contract.address), data))
        return len(self.queue) - 1

    def run(self):
        import requests
        if not self.queue:
            return []
        uri = chain.provider.web3.provider.endpoint_uri
        batch = [{"jsonrpc": "2.0", "id": i, "method": "eth_call",
                  "params": [{"to": call.address, "data": data.hex() if data.hex().startswith("0x")
                              else "0x" + data.hex()}, self.block]}
                 for i, (call, data) in enumerate(self.queue)]
        answers = {r["id"]: r for r in requests.post(uri, json=batch, timeout=60).json()}
        out = []
        for i, (call, _) in enumerate(self.queue):
            r = answers[i]
            if "error" in r:
                raise RuntimeError(f"{call!r} at {call.address}: {r['error']}")
            out.append(call._decode_returndata(HexBytes(r["result"])))
        self.queue = []
        return out


def read_state(p, accounts):
    """Every stored value and view the model mirrors, read from chain in
    three batches (counts; everything they size; what depends on values)."""
    from ape import chain as _chain
    e, v, tok = p.engine, p.vault, p.token
    block = hex(_chain.blocks.head.number)
    r = Reads(block)
    r.add(e, "market_count"), r.add(e, "order_count")
    n, order_count = r.run()
    s = {}
    q = {}
    for holder in [*accounts, e.address, v.address, p.insurance_fund.address]:
        q[("token", holder)] = r.add(tok, "balanceOf", holder)
    for key, (c, m) in {"vault.totalSupply": (v, "totalSupply"), "vault.totalAssets": (v, "totalAssets"),
                        "vault.free_cash": (v, "free_cash"), "traders_claim": (e, "traders_claim"),
                        "traders_reserve": (e, "traders_reserve"), "traders_gain": (e, "traders_gain"),
                        "vault.entry_assets": (v, "entry_assets"), "paused": (e, "paused")}.items():
        q[key] = r.add(c, m)
    q["solvency"] = [r.add(e, m) for m in ("max_profit", "total_cost", "min_keeper_reward", "min_notional")]
    q["order_expiry"] = r.add(e, "order_expiry")
    q["orders"] = {oid: r.add(e, "get_order", oid) for oid in range(1, order_count + 1)}
    for a in accounts:
        q[("free", a)] = r.add(e, "free_collateral", a)
        q[("shares", a)] = r.add(v, "balanceOf", a)
    for mid in range(n):
        q[("state", mid)] = r.add(e, "market_state", mid)
        q[("pending", mid)] = [r.add(e, "adl_pending", mid, i) for i in range(4)]
        for is_long in (True, False):
            q[("count", mid, is_long)] = r.add(e, "position_count", mid, is_long)
        for a in accounts:
            q[("pos", a, mid)] = r.add(e, "get_position", a, mid)
    got = r.run()
    for key in ("vault.totalSupply", "vault.totalAssets", "vault.free_cash", "traders_claim", "traders_reserve",
                "traders_gain", "vault.entry_assets", "paused"):
        s[key] = got[q[key]]
    for holder in [*accounts, e.address, v.address, p.insurance_fund.address]:
        s[("token", holder)] = got[q[("token", holder)]]
    s["solvency"] = tuple(got[i] for i in q["solvency"])
    s["orders"] = (order_count, got[q["order_expiry"]])
    for oid, i in q["orders"].items():
        o = got[i]
        if int(o[0], 16):
            s[("order", oid)] = tuple(str(x) if isinstance(x, str) else int(x) for x in o)
    late = {}
    for a in accounts:
        s[("free", a)] = got[q[("free", a)]]
        s[("shares", a)] = got[q[("shares", a)]]
        if s[("shares", a)]:
            late[("vault.max", a)] = [r.add(v, "maxWithdraw", a), r.add(v, "maxRedeem", a)]
    for mid in range(n):
        s[("state", mid)] = tuple(int(x) for x in got[q[("state", mid)]])
        s[("pending", mid)] = tuple(tuple(str(x) if isinstance(x, str) else int(x) for x in got[i])
                                    for i in q[("pending", mid)])
        for is_long in (True, False):
            late[("members", mid, is_long)] = [r.add(e, "position_at", mid, is_long, i)
                                               for i in range(got[q[("count", mid, is_long)]])]
        for a in accounts:
            pos = tuple(int(x) for x in got[q[("pos", a, mid)]])
            s[("pos", a, mid)] = pos
            if pos[0] != 0:
                late[("views", a, mid)] = [r.add(e, m, a, mid) for m in (
                    "equity", "is_liquidatable", "liquidation_price", "bankruptcy_price", "adl_score", "funding_owed")]
    got = r.run()
    for key, handles in late.items():
        s[key] = tuple(got[i] for i in handles)
    return s


def model_state(w, accounts):
    """The same keys as `read_state`, from the model."""
    from dataclasses import astuple
    s = {}
    for holder in [*accounts, w.engine_address, w.vault_address, w.fund_address]:
        s[("token", holder)] = w.token.balance_of(holder)
    s["vault.totalSupply"] = w.v.total_supply
    s["vault.totalAssets"] = w.view("vault.total_assets")
    s["vault.free_cash"] = w.view("vault.free_cash")
    s["traders_claim"] = w.view("traders_claim")
    s["traders_reserve"] = w.view("traders_reserve")
    s["traders_gain"] = w.view("traders_gain")
    s["vault.entry_assets"] = w.view("vault.entry_assets")[1]
    s["solvency"] = (w.e.max_profit, w.e.total_cost, w.e.min_keeper_reward, w.e.min_notional)
    s["paused"] = w.e.paused
    s["orders"] = (w.e.order_count, w.e.order_expiry)
    for oid in sorted(w.e.orders):
        o = w.view("get_order", oid)
        s[("order", oid)] = tuple(int(x) if isinstance(x, bool) else x for x in astuple(o))
    for a in accounts:
        s[("free", a)] = w.e.free.get(a, 0)
        s[("shares", a)] = w.v.balances.get(a, 0)
        if s[("shares", a)]:
            s[("vault.max", a)] = (w.view("vault.max_withdraw", a), w.view("vault.max_redeem", a))
    from model.positions import AdlPending
    for mid in range(w.e.market_count):
        s[("state", mid)] = astuple(w.e.state[mid])
        jobs = w.e.adl_jobs.get(mid, [])
        s[("pending", mid)] = tuple(astuple(j) for j in jobs + [AdlPending()] * (4 - len(jobs)))
        for is_long, side in ((True, 0), (False, 1)):
            s[("members", mid, is_long)] = tuple(w.e.members.get(mid * 2 + side, []))
        for a in accounts:
            pos = astuple(w.view("get_position", a, mid))
            s[("pos", a, mid)] = pos
            if pos[0] != 0:
                s[("views", a, mid)] = (
                    w.view("equity", a, mid), w.view("is_liquidatable", a, mid), w.view("liquidation_price", a, mid),
                    w.view("bankruptcy_price", a, mid), w.view("adl_score", a, mid), w.view("funding_owed", a, mid))
    return s
