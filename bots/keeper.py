"""The Backstop keeper: order executions, liquidations, ADL continuations and
TP/SL executions.

    python -m bots.keeper --network ethereum:local:foundry --engine 0x... \\
        --account TEST:3 [--state-file keeper-state.json] [--dry-run] \\
        [--max-blocks N] [--poll 0.2]

An ape script loop (see docs in README, "Running the keeper"). ape connects
to the network (on ethereum:local:foundry, to the anvil already listening on
the configured host: the keeper never starts a node) and resolves the
account; the per-block work goes over batched JSON-RPC.

Each new block:
1. the engine's events since the last processed block name the (account,
   market) pairs that changed; those positions are re-read, and the
   per-market state (oracle answer, funding aggregates, pending ADL job) and
   the balances the exit paths move are re-read (bots/mirror.py), so the
   model World equals the chain at that block;
2. in-flight transactions are settled from their receipts;
3. with model/ (the contracts' integers): a pending ADL job is due a
   `deleverage` with the next 20 ranked targets; a liquidatable position a
   `liquidate` (with the model's ADL ranking when its bad debt exceeds the
   insurance fund); a crossed take-profit or stop-loss an `execute_tp_sl`
   once its feed has a round later than the block the triggers were set in;
   a pending order an `execute_order` as soon as its market's feed has a
   fresh round with updatedAt later than the request (never before: that
   reverts "order: no later price"). Expired orders are logged, never
   cancelled (cancelling is the requester's);
4. the batch runs in order on a copy of the World (so a liquidation that
   drains the fund gives the next one its ADL targets), order executions
   last (their outcome, executed or cancelled with a reason, needs no
   decision: the executor is paid either way), then as one
   sequential `eth_simulateV1` on the node (`eth_call` per transaction where
   the node lacks it); reverts a race explains ("position: none", "position
   healthy", "not triggered", ...) are logged and dropped;
5. what passed is signed with consecutive nonces and sent without waiting
   for receipts (a block-interval devnet mines them together), each one
   recorded in flight per (action, account, market) in the state file
   before it is sent, so no action is ever sent twice, even across a crash.

A circuit breaker stops the keeper (exit code 3) after `--breaker`
consecutive unexpected reverts; RPC errors back off exponentially.
"""

import argparse
import copy
import json
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from eth_utils import keccak

from bots import rpc as R
from bots.mirror import Mirror, NotAnEngine
from model import adl
from model import perp_engine as PE
from model import perp_exits as PX
from model import positions as P
from model.fixed_point import Revert

log = logging.getLogger("keeper")

# Reverts that mean someone (or an earlier block) got there first.
RACES = frozenset({
    "position: none",
    "position healthy",
    "not triggered",
    "adl: nothing pending",
    "adl: pending deleverage",
    # An ADL list goes stale when a trade or another liquidation mined between
    # planning and inclusion changes the ranking (every tx in its own block
    # under automine makes that common). The position is re-planned from fresh
    # state next block; a list that keeps failing in simulation block after
    # block (RACE_STREAK) still counts as unexpected, so a keeper ranking bug
    # cannot hide here.
    "adl: unsorted",
    "adl: not ranked",
    "adl: more targets needed",
    "adl: not in profit",
    "adl: no position",
    # Orders: executed by someone else first, or past expiry on the boundary.
    "order: unknown",
    "order: expired",
    # A trader re-set the TP/SL between planning and inclusion.
    "tp_sl: no later price",
    # Not here, on purpose: "order: pending" and "tp_sl: triggered" revert
    # only a trader's own request_order / add_margin / set_tp_sl (they check
    # msg.sender's pending order and triggers), verbs the keeper never sends.
    # A pending order does not block liquidate, deleverage or execute_tp_sl,
    # and a crossed trigger is exactly what execute_tp_sl executes. Seeing
    # either reason on a keeper transaction would mean the keeper sent the
    # wrong call: an unexpected revert (circuit breaker), not a race.
})
EXIT_BREAKER = 3
MAX_BATCH = 400  # actions planned per block
RACE_STREAK = 3  # blocks in a row one action may race before it counts as unexpected
SEND_CHUNK = 10  # signed transactions per eth_sendRawTransaction batch


class CircuitBreaker(Exception):
    """Something is off: stop rather than keep sending."""


@dataclass
class Action:
    kind: str  # "liquidate" | "deleverage" | "tp_sl" | "order"
    account: str | None
    market_id: int
    targets: list = field(default_factory=list)
    gas: int = 0
    tag: str = ""  # tells apart the deleverage steps of one batch
    order_id: int = 0

    @property
    def key(self):
        if self.kind == "order":
            return f"order:{self.order_id}"
        key = f"{self.kind}:{self.account or '-'}:{self.market_id}"
        return f"{key}:{self.tag}" if self.tag else key

    def calldata(self):
        if self.kind == "liquidate":
            return R.encode_liquidate(self.account, self.market_id, self.targets)
        if self.kind == "deleverage":
            return R.encode_deleverage(self.market_id, self.targets)
        if self.kind == "order":
            return R.encode_execute_order(self.order_id)
        return R.encode_execute_tp_sl(self.account, self.market_id)

    def describe(self):
        if self.kind == "order":
            return f"execute_order {self.order_id} ({self.account} market={self.market_id})"
        who = f" {self.account}" if self.account else ""
        extra = f" targets={len(self.targets)}" if self.kind != "tp_sl" and self.targets else ""
        return f"{self.kind}{who} market={self.market_id}{extra}"


# ---------------------------------------------------------------- signing

class Signer:
    """Signs type-2 transactions: with the key directly when the account
    exposes one (ape test accounts), else through ape's account (keyfile
    accounts, which need autosign or a passphrase)."""

    def __init__(self, account, chain_id):
        self.account = account
        self.address = R.addr(account.address)
        self.chain_id = chain_id
        key = getattr(account, "private_key", None)
        self._key = None
        if isinstance(key, (str, bytes)):
            from eth_keys import keys
            from eth_utils import to_bytes
            # Parsed once: deriving the public key costs as much as a signature.
            self._key = keys.PrivateKey(to_bytes(hexstr=key) if isinstance(key, str) else key)

    def sign(self, tx):
        tx = dict(tx, chainId=self.chain_id, type=2, value=0)
        if self._key is not None:
            from eth_account._utils.signing import sign_transaction_dict
            *_, raw = sign_transaction_dict(self._key, tx)
            raw = bytes(raw)
        else:  # pragma: no cover - needs a keyfile account
            from ape import networks
            txn = networks.provider.network.ecosystem.create_transaction(
                chain_id=tx["chainId"], nonce=tx["nonce"], receiver=tx["to"], data=tx["data"], gas_limit=tx["gas"],
                max_fee=tx["maxFeePerGas"], max_priority_fee=tx["maxPriorityFeePerGas"], type=2, value=0)
            raw = bytes(self.account.sign_transaction(txn).serialize_transaction())
        return "0x" + raw.hex(), "0x" + keccak(raw).hex()


# ---------------------------------------------------------------- the keeper

class Keeper:
    def __init__(self, client, engine, signer, *, state_file=None, dry_run=False, poll=0.2, max_blocks=None,
                 breaker=5, inflight_timeout_blocks=12, block_time=1):
        self.rpc = client
        self.engine = R.addr(engine)
        self.signer = signer
        self.me = signer.address
        self.state_file = Path(state_file) if state_file else None
        self.dry_run = dry_run
        self.poll = poll
        self.max_blocks = max_blocks
        self.breaker_limit = breaker
        self.timeout_blocks = inflight_timeout_blocks
        self.block_time = block_time
        self.mirror = Mirror(client, engine)
        self.last_block = None
        self.in_flight = {}  # key -> {"hash", "nonce", "block", "kind", ...}
        self.nonce = None
        self.unexpected = 0  # consecutive unexpected reverts
        self.stats = {"sent": 0, "mined": 0, "failed": 0, "races": 0, "unexpected": 0, "orders_executed": 0,
                      "orders_cancelled": 0}
        self._simulate_v1 = True
        self.race_streak = {}
        self.last_sim_ms = 0.0
        self.exec_time = 0
        self._stale_logged = set()
        self._expired_logged = set()

    # ------------------------------------------------------------ state file
    def _load_state(self):
        if not self.state_file or not self.state_file.exists():
            return None
        try:
            state = json.loads(self.state_file.read_text())
        except (OSError, ValueError) as exc:
            log.warning("state file %s unreadable (%s): starting fresh", self.state_file, exc)
            return None
        if state.get("engine") != self.engine or state.get("keeper") != self.me or state.get("chain_id") != self.signer.chain_id:
            log.warning("state file %s is for another engine, keeper or chain: starting fresh", self.state_file)
            return None
        return state

    def _save_state(self):
        if not self.state_file:
            return
        state = {
            "engine": self.engine,
            "keeper": self.me,
            "chain_id": self.signer.chain_id,
            "last_block": self.last_block,
            "in_flight": self.in_flight,
        }
        tmp = self.state_file.with_suffix(self.state_file.suffix + ".tmp")
        tmp.write_text(json.dumps(state, indent=1, sort_keys=True))
        os.replace(tmp, self.state_file)

    # ------------------------------------------------------------ start-up
    def start(self):
        """Load the state file, re-scan every open position, settle what was
        in flight before a restart."""
        head = self.mirror.head()
        state = self._load_state()
        if state:
            if state.get("last_block") is not None and state["last_block"] > head:
                log.warning("state file is ahead of the chain (block %s > %s): chain reset, starting fresh", state["last_block"], head)
            else:
                self.in_flight = state.get("in_flight", {})
                log.info("restart: last processed block %s, %d in flight", state.get("last_block"), len(self.in_flight))
        self.mirror.load(head)
        self.last_block = head
        self._sync_nonce()
        self._settle(head)
        w = self.mirror.w
        from eth_keys.backends import get_backend
        if type(get_backend()).__name__ == "NativeECCBackend":
            log.warning("signing with eth-keys' pure-Python backend (~5 ms a transaction): install coincurve for large batches")
        log.info("start: block %d, %d markets, %d open positions, %d pending orders, keeper %s%s", head,
                 w.e.market_count, len(w.e.positions), len(w.e.orders), self.me, " (dry run)" if self.dry_run else "")
        self._save_state()
        self.step(head, fresh=True)

    def _sync_nonce(self):
        self.nonce = int(self.rpc.request("eth_getTransactionCount", [self.me, "pending"]), 16)

    # ------------------------------------------------------------ loop
    def run(self):
        """Start (load, re-scan, settle), then process every new head until
        `max_blocks` new blocks have been processed. RPC errors back off
        exponentially (poll * 2**n, at most 30 s) and retry."""
        failures = 0
        first = None
        while True:
            try:
                if first is None:
                    self.start()
                    first = self.last_block
                head = self.mirror.head()
                if head > self.last_block:
                    self.step(head)
                failures = 0
                if self.max_blocks is not None and self.last_block - first >= self.max_blocks:
                    log.info("stop: %d blocks processed", self.last_block - first)
                    return
            except R.RpcError as exc:
                failures += 1
                delay = min(self.poll * 2 ** failures, 30.0)
                log.warning("rpc error (%s): retrying in %.1fs", exc, delay)
                time.sleep(delay)
                continue
            time.sleep(self.poll)

    def step(self, head, fresh=False):
        """Process the chain up to `head`."""
        if not fresh:
            changes = self.mirror.changes(self.last_block + 1, head)
            self.mirror.apply(changes, head)
        self._settle(head)
        t0 = time.time()
        actions = self.plan()
        if actions:
            t1 = time.time()
            self.execute(actions, head)
            log.info("block %d: %d due, plan %.0f ms, simulate %.0f ms, sign+send %.0f ms", head, len(actions),
                     (t1 - t0) * 1000, self.last_sim_ms, (time.time() - t1) * 1000 - self.last_sim_ms)
        self.last_block = head
        self._save_state()

    # ------------------------------------------------------------ in flight
    def _settle(self, head):
        if not self.in_flight:
            return
        keys = list(self.in_flight)
        answers = self.rpc.batch([("eth_getTransactionReceipt", [self.in_flight[k]["hash"]]) for k in keys]
                                 + [("eth_getTransactionByHash", [self.in_flight[k]["hash"]]) for k in keys])
        receipts, known = answers[:len(keys)], answers[len(keys):]
        resync = False
        for k, rc, tx in zip(keys, receipts, known):
            if isinstance(rc, Exception) or isinstance(tx, Exception):
                raise R.RpcError(f"receipt: {rc if isinstance(rc, Exception) else tx}")
            entry = self.in_flight[k]
            if rc is None:
                # Unknown to the node it was sent to: never sent (a crash
                # between recording and sending) or dropped. Known: wait.
                if tx is not None:
                    if head - entry["block"] < self.timeout_blocks:
                        continue
                    if not entry.get("late"):
                        log.warning("%s still pending after %d blocks (%s)", k, head - entry["block"], entry["hash"])
                        entry["late"] = True
                    continue
                log.warning("%s dropped: %s unknown to the node, will retry", k, entry["hash"])
                del self.in_flight[k]
                resync = True
                continue
            del self.in_flight[k]
            blk = int(rc["blockNumber"], 16)
            if int(rc["status"], 16) == 1:
                self.stats["mined"] += 1
                self.unexpected = 0
                outcome = ""
                for lg in rc.get("logs") or []:
                    got = R.order_outcome(lg) if lg.get("address", "").lower() == self.engine.lower() else None
                    if got:
                        self.stats["orders_" + got[1]] += 1
                        outcome = f": executed at {got[2]}" if got[1] == "executed" else f": cancelled ({got[2]})"
                log.info("mined %s in block %d (sent at %d)%s %s", entry["desc"], blk, entry["block"], outcome,
                         entry["hash"])
            else:
                self.stats["failed"] += 1
                self._on_failed(k, entry, blk)
        if resync:
            self._sync_nonce()

    def _on_failed(self, key, entry, blk):
        """A mined transaction reverted: explain it by re-simulating now."""
        result = self.rpc.batch([("eth_call", [{"from": self.me, "to": self.engine, "data": entry["data"]}, "latest"])])[0]
        reason = result.reason if isinstance(result, R.Reverted) else None
        if reason in RACES:
            self.stats["races"] += 1
            log.info("race: %s reverted in block %d (%s) %s", entry["desc"], blk, reason, entry["hash"])
            return
        self._unexpected(f"{entry['desc']} reverted in block {blk} ({reason or 'no reason; now ' + ('ok' if not isinstance(result, Exception) else 'reverts')}) {entry['hash']}")

    def _unexpected(self, what):
        self.stats["unexpected"] += 1
        self.unexpected += 1
        log.error("unexpected revert %d/%d: %s", self.unexpected, self.breaker_limit, what)
        if self.unexpected >= self.breaker_limit:
            raise CircuitBreaker(f"{self.unexpected} consecutive unexpected reverts; last: {what}")

    # ------------------------------------------------------------ decide
    def _exec_time(self):
        """The expected timestamp of the next block (the simulation's too)."""
        return max(self.mirror.w.now + self.block_time, int(time.time()))

    def plan(self):
        """The due actions, in sending order, each run on a copy of the World
        (at the next block's expected time) after the ones before it."""
        base = self.mirror.w
        now = self.exec_time = self._exec_time()
        saved_now = base.now
        base.now = now
        try:
            due = self._due(base)
        finally:
            base.now = saved_now
        if not due:
            return []

        def fresh_copy():
            c = copy.deepcopy(base)
            c.now = now
            c.sender = c.caller = self.me
            return c

        orders = [a for a in due if a.kind == "order"]
        due = [a for a in due if a.kind != "order"]
        w = fresh_copy() if due else None
        planned = []
        # An unmined transaction of ours may move the fund or the ADL job of
        # its market: plan nothing that depends on them there until it lands.
        busy = {e.get("market_id") for e in self.in_flight.values()}
        for a in due:
            if len(planned) >= MAX_BATCH:
                break
            if a.market_id in busy and (a.kind == "deleverage" or self._liquidation_targets(w, a.account, a.market_id)):
                continue
            try:
                self._run_in_model(w, a)
            except Revert as exc:
                if exc.reason not in RACES:
                    log.warning("model: %s reverts (%s): skipped this block", a.describe(), exc.reason)
                # The failed verb may have half-run: rebuild the copy.
                w = fresh_copy()
                for b in planned:
                    self._run_in_model(w, b)
                continue
            planned.append(a)
            # A liquidation that left an ADL job: continue it in the same
            # batch (the node simulates the batch in order), so the market's
            # next bankrupt liquidation is not blocked for a block.
            steps = 0
            while self._simulate_v1 and a.kind != "tp_sl" and w.e.adl_pending[a.market_id].remaining > 0 and steps < 50:
                steps += 1
                d = Action("deleverage", None, a.market_id, tag=str(w.e.adl_pending[a.market_id].remaining))
                try:
                    self._run_in_model(w, d)
                except Revert:
                    w = fresh_copy()
                    for b in planned:
                        self._run_in_model(w, b)
                    break
                planned.append(d)
                a = d
        # Order executions last, not run in the model: whatever the outcome
        # (executed, or cancelled with the failed check's reason) the call
        # succeeds, and the node's simulation of the batch checks it does.
        return planned + orders[:max(0, MAX_BATCH - len(planned))]

    def _due(self, w):
        due_adl, due_liq, due_tp, due_orders = [], [], [], []
        stale = set()
        for mid in range(w.e.market_count):
            try:
                P._price(w, mid, True)
                self._stale_logged.discard(mid)
            except Revert as exc:
                stale.add(mid)
                if mid not in self._stale_logged:
                    log.warning("market %d: %s, nothing can be executed", mid, exc.reason)
                    self._stale_logged.add(mid)
                continue
            job = w.e.adl_pending.get(mid)
            if job is not None and job.remaining > 0:
                due_adl.append(Action("deleverage", None, mid, tag=str(job.remaining)))
        for (account, mid), pos in sorted(w.e.positions.items(), key=lambda kv: (kv[0][1], P.addr_int(kv[0][0]))):
            if mid in stale or pos.size == 0:
                continue
            if PE.is_liquidatable(w, account, mid):
                a = Action("liquidate", account, mid)
                if a.key not in self.in_flight:
                    due_liq.append(a)
                continue
            if pos.take_profit or pos.stop_loss:
                price, updated = P._round(w, mid, False)
                if updated <= w.e.tp_sl_at.get((account, mid), 0):
                    continue  # "tp_sl: no later price": wait for the next round
                if pos.size > 0:
                    hit = (pos.take_profit != 0 and price >= pos.take_profit) or (pos.stop_loss != 0 and price <= pos.stop_loss)
                else:
                    hit = (pos.take_profit != 0 and price <= pos.take_profit) or (pos.stop_loss != 0 and price >= pos.stop_loss)
                a = Action("tp_sl", account, mid)
                if hit and a.key not in self.in_flight:
                    due_tp.append(a)
        for oid, o in sorted(w.e.orders.items()):
            if o.market_id in stale:
                continue
            # Each order's own deadline (requested_at + the expiry at its
            # request): set_order_expiry does not move a pending order's.
            expires_at = P._load_order(w, oid).expires_at
            if w.now > expires_at:
                if oid not in self._expired_logged:
                    self._expired_logged.add(oid)
                    log.warning("order %d (%s market=%d) expired unexecuted at %d: only its requester can cancel it",
                                oid, o.account, o.market_id, expires_at)
                continue
            _, updated = P._round(w, o.market_id, True)
            if updated <= o.requested_at:
                continue  # "order: no later price": the next round executes it
            a = Action("order", o.account, o.market_id, order_id=oid)
            if a.key not in self.in_flight:
                due_orders.append(a)
        # Liquidations first: they have the deadline, and a TP/SL cannot run
        # on a liquidatable position anyway. A pending ADL job blocks the
        # market's next bankrupt liquidation, so it goes before them.
        return due_adl + due_liq + due_tp + due_orders

    def _run_in_model(self, w, a):
        """Run `a` on the model World `w`, choosing its ADL targets there."""
        mid = a.market_id
        if a.kind == "deleverage":
            job = w.e.adl_pending[mid]
            a.targets = adl._ranking(w, mid, job.bankrupt_size, P._price(w, mid, False))
            PX.deleverage(w, mid, a.targets)
        elif a.kind == "liquidate":
            a.targets = self._liquidation_targets(w, a.account, mid)
            PX.liquidate(w, a.account, mid, a.targets)
        else:
            PX.execute_tp_sl(w, a.account, mid)

    @staticmethod
    def _liquidation_targets(w, account, mid):
        """The model's ADL ranking when the position's bad debt will exceed
        the insurance fund, else none (targets cost calldata)."""
        pos = P._load(w, account, mid)
        if pos.size == 0:
            return []
        price = P._price(w, mid, False)
        equity = P._equity(w, pos, mid, price)
        if equity >= 0 or -equity <= w.token.balance_of(w.fund_address):
            return []
        return PE.adl_ranking(w, account, mid)

    # ------------------------------------------------------------ act
    def simulate(self, actions, head):
        """[(action, None | Reverted)] from one sequential simulation of the
        whole batch at the next block's expected time; sets each gas limit."""
        if self._simulate_v1:
            calls = [{"from": self.me, "to": self.engine, "data": a.calldata()} for a in actions]
            params = [{"blockStateCalls": [{"blockOverrides": {"time": hex(self.exec_time)}, "calls": calls}]}, hex(head)]
            try:
                res = self.rpc.request("eth_simulateV1", params)
                out = []
                for a, c in zip(actions, res[0]["calls"]):
                    used = int(c["gasUsed"], 16)
                    a.gas = used * 135 // 100 + 30_000
                    if int(c["status"], 16) == 1:
                        out.append((a, None))
                    else:
                        data = c.get("returnData")
                        err = {"data": data} if data and data != "0x" else (c.get("error") or {})
                        out.append((a, R.Reverted(R.revert_reason(err))))
                return out
            except (R.RpcError, R.Reverted, KeyError, TypeError, IndexError) as exc:
                log.warning("eth_simulateV1 unavailable (%s): simulating with eth_call, one transaction at a time", exc)
                self._simulate_v1 = False
        reqs = []
        for a in actions:
            reqs.append(("eth_estimateGas", [{"from": self.me, "to": self.engine, "data": a.calldata()}, hex(head)]))
        out = []
        for a, r in zip(actions, self.rpc.batch(reqs)):
            if isinstance(r, R.RpcError):
                raise r
            if isinstance(r, R.Reverted):
                out.append((a, r))
            else:
                a.gas = int(r, 16) * 135 // 100 + 30_000 + 40_000 * len(a.targets)
                out.append((a, None))
        return out

    def execute(self, actions, head):
        t0 = time.time()
        results = self.simulate(actions, head)
        self.last_sim_ms = (time.time() - t0) * 1000
        ok = []
        raced = set()
        for a, err in results:
            if err is None:
                ok.append(a)
            elif err.reason in RACES:
                # Someone got there first, or the mirror is behind: re-read
                # the position next block. The same race block after block
                # means the model and the chain disagree.
                self.stats["races"] += 1
                raced.add(a.key)
                streak = self.race_streak[a.key] = self.race_streak.get(a.key, 0) + 1
                if a.account:
                    self.mirror.dirty.add((a.account, a.market_id))
                if streak >= RACE_STREAK:
                    self._unexpected(f"model and chain disagree: simulated {a.describe()} reverts ({err.reason}) {streak} blocks in a row")
                else:
                    log.info("race: simulated %s reverts (%s): not sent", a.describe(), err.reason)
            else:
                self._unexpected(f"simulated {a.describe()} reverts ({err.reason})")
        self.race_streak = {k: v for k, v in self.race_streak.items() if k in raced}
        if not ok:
            return
        if self.dry_run:
            for a in ok:
                log.info("dry run: would send %s (gas %d) at block %d", a.describe(), a.gas, head)
            return
        self.send(ok, head)

    def _fees(self, head):
        blk, tip = self.rpc.batch([("eth_getBlockByNumber", [hex(head), False]), ("eth_maxPriorityFeePerGas", [])])
        if isinstance(blk, Exception):
            raise R.RpcError(f"block: {blk}")
        base = int(blk.get("baseFeePerGas") or "0x0", 16)
        tip = int(tip, 16) if isinstance(tip, str) else 10**9
        return 2 * base + tip, tip

    def send(self, actions, head):
        max_fee, tip = self._fees(head)
        for i in range(0, len(actions), SEND_CHUNK):
            chunk = actions[i:i + SEND_CHUNK]
            signed = []
            for a in chunk:
                data = a.calldata()
                raw, txhash = self.signer.sign({"nonce": self.nonce, "to": self.engine, "data": data, "gas": a.gas,
                                                "maxFeePerGas": max_fee, "maxPriorityFeePerGas": tip})
                self.in_flight[a.key] = {"hash": txhash, "nonce": self.nonce, "block": head, "time": time.time(),
                                         "desc": a.describe(), "data": data, "market_id": a.market_id, "kind": a.kind}
                signed.append((a, raw, txhash))
                self.nonce += 1
            # Recorded before sent: a crash between the two loses nothing.
            self._save_state()
            answers = self.rpc.batch([("eth_sendRawTransaction", [raw]) for _, raw, _ in signed])
            bad = False
            for (a, _, txhash), ans in zip(signed, answers):
                if isinstance(ans, Exception):
                    bad = True
                    log.warning("send %s failed (%s)", a.describe(), ans)
                    del self.in_flight[a.key]
                    continue
                self.stats["sent"] += 1
                log.info("sent %s nonce=%d gas=%d block=%d %s", a.describe(), self.in_flight[a.key]["nonce"], a.gas, head, txhash)
            if bad:
                self._sync_nonce()
                self._save_state()
                return


# ---------------------------------------------------------------- command line

def _resolve_account(spec):
    from ape import accounts
    if spec.upper().startswith("TEST:"):
        return accounts.test_accounts[int(spec.split(":")[-1])]
    acct = accounts.load(spec)
    if hasattr(acct, "set_autosign"):  # pragma: no cover - keyfile accounts
        acct.set_autosign(True, passphrase=os.environ.get("KEEPER_PASSPHRASE"))
    return acct


def _check_node(choice):
    """On a local network, refuse to start a node: the keeper joins one."""
    from ape import networks
    provider = networks.get_provider_from_choice(network_choice=choice)
    if ":local:" not in f":{choice}:" and not choice.endswith(":local"):
        return
    uri = getattr(provider, "uri", None)
    if not uri or not uri.startswith("http"):
        return
    try:
        R.Rpc(uri, timeout=3).request("eth_chainId", [])
    except R.RpcError as exc:
        raise SystemExit(f"keeper: no node answers at {uri} ({exc}); start the devnet first") from exc


def parse_args(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bots.keeper",
                                 description="Backstop keeper: execute orders, liquidate, deleverage, execute TP/SL.")
    ap.add_argument("--network", default="ethereum:local:foundry", help="ape network choice")
    ap.add_argument("--engine", required=True, help="PerpEngine address")
    ap.add_argument("--account", required=True, help="ape account alias, or TEST:<index> for a test account")
    ap.add_argument("--state-file", default="keeper-state.json", help="in-flight transactions and last block (JSON)")
    ap.add_argument("--dry-run", action="store_true", help="simulate and log, send nothing")
    ap.add_argument("--max-blocks", type=int, default=None, help="stop after this many new blocks")
    ap.add_argument("--poll", type=float, default=0.2, help="seconds between head polls")
    ap.add_argument("--breaker", type=int, default=5, help="stop after this many consecutive unexpected reverts")
    ap.add_argument("--block-time", type=int, default=1, help="expected seconds between blocks (simulation timestamp)")
    return ap.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(asctime)s keeper %(message)s")
    logging.getLogger("ape").setLevel(logging.WARNING)
    from ape import networks
    _check_node(args.network)
    with networks.parse_network_choice(args.network) as provider:
        account = _resolve_account(args.account)
        client = R.Rpc(provider.uri)
        signer = Signer(account, provider.chain_id)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        keeper = Keeper(client, args.engine, signer, state_file=args.state_file, dry_run=args.dry_run, poll=args.poll,
                        max_blocks=args.max_blocks, breaker=args.breaker, block_time=args.block_time)
        try:
            keeper.run()
        except CircuitBreaker as exc:
            log.error("circuit breaker: %s; stopping", exc)
            return EXIT_BREAKER
        except NotAnEngine as exc:
            log.error("%s", exc)
            return 2
        except KeyboardInterrupt:
            log.info("interrupted")
        finally:
            log.info("stats %s", json.dumps(keeper.stats, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
