"""Replay the chain on the model, block by block.

`Replayer` starts from a model `World` that mirrors the protocol at some
block (scripts/twin.mirror_world, read right after deployment) and re-runs
every later transaction sent to the protocol's contracts, as decoded from the
chain: the same verb and arguments, from the same sender, at the block's
timestamp, in block order. For each transaction it checks

  - the outcome: mined ok on chain <=> the model's verb did not revert;
  - the events: the engine's and the vault's decoded logs equal, one by one
    and field by field, the events the model logged for that verb;
  - for an order's execution (execute_order) or cancellation (cancel_order):
    the outcome, executed at a price or cancelled with a reason, read from
    the receipt's OrderExecuted / OrderCancelled, equals the model's
    (`order_outcomes` keeps the chain's, by order id). request_order's order
    id is in its OrderRequested event, compared with the rest.

At the end `compare_state` checks every stored value and view
(scripts/twin.read_state against twin.model_state). The demo uses the same
replayer live: its in-process fallback keeper reads the model world, and the
ADL table ranks each deleveraged position in the model's ranking taken just
before the transaction that hit it.
"""

from dataclasses import dataclass, field

from ape import networks
from eth_utils import to_checksum_address

from bots import rpc as BR
from model import adl
from model import positions as P
from model.fixed_point import Revert
from model.protocol import resolve_verb
from scripts.twin import model_state, read_state

# Events the model mirrors, by emitting contract.
ENGINE = "engine"
VAULT = "vault"
MODEL_VAULT_EVENTS = ("Deposit", "Withdraw")


@dataclass
class Mismatch:
    block: int
    tx: str
    what: str

    def __str__(self):
        return f"block {self.block} tx {self.tx[:12]}: {self.what}"


@dataclass
class AdlRanking:
    """The model's ranking of ADL candidates just before a transaction."""
    block: int
    tx: str
    market_id: int
    ranking: list  # accounts, best first (the whole ranking, no limit)


@dataclass
class ReplayStats:
    txs: int = 0
    reverted: int = 0
    by_verb: dict = field(default_factory=dict)


def _norm(v):
    """Event and argument values in one comparable form."""
    if isinstance(v, str) and v.startswith("0x") and len(v) == 42:
        return v.lower()
    if isinstance(v, bool):
        return v
    if isinstance(v, int):
        return int(v)
    if isinstance(v, (list, tuple)):
        return tuple(_norm(x) for x in v)
    return v


def _checksum_args(abi, args):
    """Addresses as checksummed strings, as the model keys its dicts."""
    out = []
    for inp, v in zip(abi.inputs, args):
        t = inp.canonical_type
        if t == "address":
            out.append(to_checksum_address(v))
        elif t == "address[]":
            out.append([to_checksum_address(x) for x in v])
        elif t.startswith("("):
            out.append(tuple(to_checksum_address(x) if isinstance(x, str) and x.startswith("0x") and len(x) == 42
                             else x for x in (v.values() if hasattr(v, "values") else v)))
        else:
            out.append(v)
    return out


def _call_committed(w, sender, verb, args, now):
    """model.protocol.World.call for a transaction the chain mined, without
    the undo snapshot (a deep copy of the world, which costs more than the
    verb at a few hundred accounts). Should the model revert anyway, the
    replay has failed already and stops (Replayer.broken)."""
    fn = resolve_verb(verb)
    w.now = now
    w.sender = w.caller = sender
    try:
        return fn(w, *args)
    except (ZeroDivisionError, ValueError, OverflowError) as exc:
        raise Revert(None) from exc


class Replayer:
    """Re-run chain transactions on a model World (see module docstring)."""

    def __init__(self, protocol, world, start_block):
        self.p = protocol
        self.w = world
        self.next_block = start_block + 1
        self.mismatches = []
        self.broken = False  # the model reverted a mined transaction: its world is no longer the chain's
        self.rankings = []  # AdlRanking, one per liquidate/deleverage that hit ADL candidates
        self.stats = ReplayStats()
        self.block_times = {}  # block number -> timestamp, for every block replayed
        self.answers = []  # (block, timestamp, feed address, answer) of every mined set_answer
        self.senders = {}  # tx hash -> (sender, "kind.verb"), for every mined call
        self.order_outcomes = {}  # order id -> ("executed", price) | ("cancelled", reason), from the chain
        self.web3 = networks.provider.web3
        self.ecosystem = networks.provider.network.ecosystem
        e = protocol.engine
        self.kinds = {e.address.lower(): ENGINE, protocol.vault.address.lower(): VAULT,
                      protocol.insurance_fund.address.lower(): "fund", protocol.token.address.lower(): "token"}
        for f in protocol.feeds:
            self.kinds[f.address.lower()] = "feed"
        self.methods = {}  # (kind, selector bytes) -> MethodABI
        self.events = {}  # kind -> [EventABI]
        for kind, ct in ((ENGINE, e.contract_type), (VAULT, protocol.vault.contract_type),
                         ("fund", protocol.insurance_fund.contract_type), ("token", protocol.token.contract_type),
                         ("feed", protocol.feeds[0].contract_type)):
            for abi in ct.abi:
                if abi.type == "function":
                    self.methods[(kind, bytes(self.ecosystem.get_method_selector(abi)))] = abi
            self.events[kind] = [abi for abi in ct.abi if abi.type == "event"]
        self.engine_event_names = {abi.name for abi in self.events[ENGINE]}

    # ------------------------------------------------------------ driving
    def catch_up(self, to_block=None):
        """Replay every block up to `to_block` (default: the chain head)."""
        head = self.web3.eth.block_number if to_block is None else to_block
        while self.next_block <= head:
            self.apply_block(self.next_block)
            self.next_block += 1
        return head

    def apply_block(self, number):
        block = self.web3.eth.get_block(number, full_transactions=True)
        self.block_times[number] = block["timestamp"]
        receipts = None
        for tx in block["transactions"]:
            to = tx.get("to")
            if to is None or to.lower() not in self.kinds:
                continue
            if receipts is None:
                receipts = {r["transactionHash"]: r for r in self.web3.eth.get_block_receipts(number)}
            self.apply_tx(number, block["timestamp"], tx, receipts[tx["hash"]])

    def apply_tx(self, number, timestamp, tx, receipt):
        if self.broken:
            return
        kind = self.kinds[tx["to"].lower()]
        data = bytes(tx["input"])
        txh = "0x" + bytes(tx["hash"]).hex()
        abi = self.methods.get((kind, data[:4]))
        if abi is None:
            self.mismatches.append(Mismatch(number, txh, f"unknown call to the {kind}: {data[:4].hex()}"))
            return
        args = _checksum_args(abi, self.ecosystem.decode_calldata(abi, data[4:]).values())
        sender = to_checksum_address(tx["from"])
        ok_chain = receipt["status"] == 1
        self.stats.txs += 1
        self.stats.reverted += 0 if ok_chain else 1
        label = f"{kind}.{abi.name}"
        self.stats.by_verb[label] = self.stats.by_verb.get(label, 0) + 1
        if kind == ENGINE and abi.name in ("liquidate", "deleverage"):
            self._record_ranking(number, txh, abi.name, args, timestamp)
        n_events = len(self.w.events)
        ok_model, reason = self._run(kind, tx["to"], abi.name, sender, args, timestamp, ok_chain)
        if ok_chain != ok_model:
            self.mismatches.append(Mismatch(number, txh, f"{label}{tuple(args)} from {sender}: chain "
                                            f"{'ok' if ok_chain else 'reverted'}, model "
                                            f"{'ok' if ok_model else f'reverted {reason!r}'}"))
            return
        if ok_chain:
            self.senders[txh] = (sender, label)
            if label == "feed.set_answer":
                self.answers.append((number, timestamp, to_checksum_address(tx["to"]), args[0]))
        if ok_chain and kind == ENGINE and abi.name in ("execute_order", "cancel_order"):
            self._compare_outcome(number, txh, label, args, receipt, self.w.events[n_events:])
        if ok_chain and kind in (ENGINE, VAULT):
            self._compare_events(number, txh, label, receipt, self.w.events[n_events:])

    def _run(self, kind, address, name, sender, args, timestamp, mined_ok):
        """Apply one decoded call to the model; (ok, revert reason)."""
        w = self.w
        w.now = timestamp
        try:
            if kind == "token":
                if name == "mint":
                    w.mint(*args)
                elif name == "approve":
                    w.approve(sender, *args)
                elif name == "transfer":
                    w.token.transfer(sender, *args)
                elif name == "transferFrom":
                    w.token.transfer_from(sender, *args)
                else:
                    return False, f"token.{name} is not mirrored"
            elif kind == "feed":
                feed = w.feeds[to_checksum_address(address)]
                if name == "set_answer":
                    w.set_answer(to_checksum_address(address), args[0], now=timestamp)
                elif name == "set_round_data":
                    feed.round_id, feed.answer, feed.started_at, feed.updated_at, feed.answered_in_round = args
                else:
                    return False, f"feed.{name} is not mirrored"
            else:
                verb = name if kind == ENGINE else f"{kind}.{name}"
                if mined_ok:
                    _call_committed(w, sender, verb, args, timestamp)
                else:
                    w.call(sender, verb, *args, now=timestamp)
        except Revert as exc:
            if mined_ok:
                self.broken = True
            return False, exc.reason
        except KeyError as exc:
            self.broken = self.broken or mined_ok
            return False, f"not mirrored: {exc}"
        return True, None

    def _record_ranking(self, number, txh, name, args, timestamp):
        """The model's ADL ranking just before a liquidate/deleverage tx."""
        w = self.w
        w.now = timestamp
        try:
            if name == "liquidate":
                account, mid = args[0], args[1]
                size = P._load(w, account, mid).size
                price = P._price(w, mid, False)
            else:
                mid = args[0]
                job = w.e.adl_pending.get(mid, P.AdlPending())
                size, price = job.bankrupt_size, job.price  # a pending job ranks at its own price
            if size == 0:
                return
            ranking = adl._ranking(w, mid, size, price, None)
        except (Revert, KeyError):
            return
        self.rankings.append(AdlRanking(number, txh, mid, ranking))

    def _compare_outcome(self, number, txh, label, args, receipt, model_events):
        """An order's outcome on chain (its receipt) against the model's."""
        engine = self.p.engine.address.lower()
        chain = None
        for lg in receipt["logs"]:
            if lg["address"].lower() != engine:
                continue
            got = BR.order_outcome({"topics": ["0x" + bytes(t).hex() for t in lg["topics"]],
                                    "data": "0x" + bytes(lg["data"]).hex()})
            if got:
                chain = got[1:]
                self.order_outcomes[got[0]] = chain
        model = None
        for name, fields in model_events:
            if name == "OrderExecuted":
                model = ("executed", fields["price"])
            elif name == "OrderCancelled":
                model = ("cancelled", fields["reason"])
        if chain != model:
            self.mismatches.append(Mismatch(number, txh, f"{label}{tuple(args)}: outcome differs: chain "
                                            f"{_outcome(chain)}, model {_outcome(model)}"))

    def _compare_events(self, number, txh, label, receipt, model_events):
        addresses = {self.p.engine.address.lower(): ENGINE, self.p.vault.address.lower(): VAULT}
        raw = [lg for lg in receipt["logs"] if lg["address"].lower() in addresses]
        chain = []
        for lg in raw:
            kind = addresses[lg["address"].lower()]
            for decoded in self.ecosystem.decode_logs([lg], *self.events[kind]):
                if kind == ENGINE or decoded.event_name in MODEL_VAULT_EVENTS:
                    chain.append((decoded.event_name, {k: _norm(v) for k, v in decoded.event_arguments.items()}))
        model = [(name, {k: _norm(v) for k, v in fields.items()}) for name, fields in model_events
                 if name in self.engine_event_names or name in MODEL_VAULT_EVENTS]
        if chain != model:
            self.mismatches.append(Mismatch(number, txh, f"{label}: events differ\n    chain {chain}\n    model {model}"))

    # ------------------------------------------------------------ final check
    def compare_state(self, accounts):
        """Every stored value and view, chain against model; list of diffs.
        twin.read_state does the reading, in batches of raw eth_calls."""
        head = self.web3.eth.get_block("latest")
        self.w.now = head["timestamp"]
        c = read_state(self.p, list(accounts))
        m = model_state(self.w, list(accounts))
        return [f"{k}: chain={c.get(k)!r} model={m.get(k)!r}"
                for k in sorted(set(c) | set(m), key=str) if c.get(k) != m.get(k)]


def _outcome(o):
    if o is None:
        return "no outcome"
    return f"executed at {o[1]}" if o[0] == "executed" else f"cancelled ({o[1]!r})"
