"""The Backstop keeper: order executions, liquidations, ADL continuations,
TP/SL executions and LP epoch settlements.

    python -m bots.keeper --network ethereum:local:foundry --account TEST::3
        [--manifest deployments/local.json | --engine 0x...] [--metrics-port 9464] ...

The command line is bots/cli.py (every option, its environment variable and
the exit codes: docs/keeper.md). ape parses the network choice and resolves
the account; the keeper never starts a node, and everything per block goes
over batched JSON-RPC (bots/rpc.py), to a fallback endpoint when the primary
fails.

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
   cancelled (cancelling is the requester's). The vault's `settle()` once
   the epoch it would price (the closing one, else the open one with
   requests) has a fresh round later than its last request on every feed,
   run first in the model (`liquidity_vault.settle`) for the settler fee it
   earns; until then the epoch waits (a log line and a metric once per
   epoch and reason), and a close that prices nothing is not sent;
4. the batch runs in order on a copy of the World (so a liquidation that
   drains the fund gives the next one its ADL targets), order executions
   last (their outcome, executed or cancelled with a reason, needs no
   decision: the executor is paid either way), the LP settlement after
   them, then as one
   sequential `eth_simulateV1` on the node (`eth_call` per transaction where
   the node lacks it); reverts a race explains ("position: none", "position
   healthy", "not triggered", ...) are logged and dropped, and so are the
   vault's reasons to wait (SETTLE_WAITS);
5. what passed is signed with consecutive nonces and sent without waiting
   for receipts (a block-interval devnet mines them together), each one
   recorded in flight per (action, account, market) in the state file
   before it is sent, so no action is ever sent twice, even across a crash.

A circuit breaker stops the keeper (exit code 3) after `--breaker`
consecutive unexpected reverts or failed sends; RPC errors back off
exponentially. Before sending, actions that only earn (order executions,
TP/SL, liquidations with equity left, LP settlements) are held while the base fee is above
the gas-price cap or while their reward would not pay their gas; bankrupt
liquidations and ADL continuations are always sent (solvency needs them). A
transaction still pending `stuck_blocks` blocks after it was sent is sent
again with the same nonce and fees raised by `fee_bump_bps`. A chain that
went backwards or changed the block the keeper last processed (a reset or
reorganised devnet) is reloaded from scratch; while the engine has no code
the keeper waits and reports unhealthy.
"""

import copy
import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from eth_abi.exceptions import DecodingError

from bots import rpc as R
from bots.metrics import Health, Metrics
from bots.mirror import Mirror, NotAnEngine
from model import adl
from model import liquidity_vault as LV
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
    "adl: queue full",  # four jobs pending: the keeper deleverages first, then retries
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
# The vault's reasons to wait (LiquidityVault.settle): its epoch has no round
# later than its last request yet, a feed is stale or broken, a market side's
# gain is past its side's reserve (decision 94: it waits until a winner past
# its cap closes or the price moves back), or someone else settled first. Expected, whenever they come: logged and counted
# (actions_total{kind="settle", outcome="wait"}), never toward the breaker.
SETTLE_WAITS = frozenset({
    "vault: no later round",
    "vault: stale price",
    "vault: bad price",
    "vault: past cap",
    "vault: nothing to settle",
})
# liquidity_vault.rounds_after's answers as the reasons settle() reverts with
WAIT_REASONS = {LV.BAD_PRICE: "vault: bad price", LV.STALE_PRICE: "vault: stale price",
                LV.NO_LATER_ROUND: "vault: no later round"}
EXIT_OK = 0
EXIT_ERROR = 1  # an unexpected exception: a bug (its traceback is logged)
EXIT_CONFIG = 2  # a bad input or a failed start-up check: one line, nothing sent
EXIT_BREAKER = 3
MAX_BATCH = 400  # actions planned per block
RACE_STREAK = 3  # blocks in a row one action may race before it counts as unexpected
SEND_CHUNK = 10  # signed transactions per eth_sendRawTransaction batch


class CircuitBreaker(Exception):
    """Something is off: stop rather than keep sending."""


class ChainChanged(Exception):
    """The chain went backwards, or the last processed block changed."""


@dataclass
class Action:
    kind: str  # "liquidate" | "deleverage" | "tp_sl" | "order" | "settle"
    account: str | None
    market_id: int
    targets: list = field(default_factory=list)
    gas: int = 0
    tag: str = ""  # tells apart the deleverage steps of one batch
    order_id: int = 0
    reward: int = 0  # what the keeper is credited, token units (the model's estimate)
    gas_used: int = 0  # simulated
    always: bool = False  # bankrupt liquidation or ADL: sent whatever the gas price
    to: str | None = None  # the contract called: the engine unless set (settle: the vault)

    @property
    def key(self):
        if self.kind == "order":
            return f"order:{self.order_id}"
        if self.kind == "settle":
            return "settle"  # one at a time: a second would revert "vault: nothing to settle"
        key = f"{self.kind}:{self.account or '-'}:{self.market_id}"
        return f"{key}:{self.tag}" if self.tag else key

    def calldata(self):
        if self.kind == "liquidate":
            return R.encode_liquidate(self.account, self.market_id, self.targets)
        if self.kind == "deleverage":
            return R.encode_deleverage(self.market_id, self.targets)
        if self.kind == "order":
            return R.encode_execute_order(self.order_id)
        if self.kind == "settle":
            return R.encode_settle()
        return R.encode_execute_tp_sl(self.account, self.market_id)

    def describe(self):
        if self.kind == "order":
            return f"execute_order {self.order_id} ({self.account} market={self.market_id})"
        if self.kind == "settle":
            return f"settle LP {self.tag}"
        who = f" {self.account}" if self.account else ""
        extra = f" targets={len(self.targets)}" if self.kind != "tp_sl" and self.targets else ""
        return f"{self.kind}{who} market={self.market_id}{extra}"


# ---------------------------------------------------------------- signing

class Signer:
    """Signs type-2 transactions with eth-account's public API
    (`Account.from_key(...).sign_transaction`), the key parsed once.

    `account`: anything with the key as `private_key` (ape's test accounts)
    or `key` (an eth-account LocalAccount, e.g. a keyfile account decrypted
    with KEEPER_PASSPHRASE by bots/cli.py)."""

    def __init__(self, account, chain_id):
        from eth_account import Account

        key = getattr(account, "private_key", None)
        if key is None:
            key = getattr(account, "key", None)
        if key is None:
            raise ValueError(f"account {account.address} exposes no key to sign with")
        self._local = Account.from_key(key)
        self.address = R.addr(self._local.address)
        if self.address != R.addr(account.address):
            raise ValueError(f"the key of {account.address} signs as {self.address}")
        self.chain_id = chain_id

    def sign(self, tx):
        signed = self._local.sign_transaction(dict(tx, chainId=self.chain_id, type=2, value=0))
        return "0x" + bytes(signed.raw_transaction).hex(), "0x" + bytes(signed.hash).hex()


# ---------------------------------------------------------------- the keeper

class Keeper:
    def __init__(self, client, engine, signer, *, state_file=None, dry_run=False, poll=0.2, max_blocks=None,
                 breaker=5, inflight_timeout_blocks=12, block_time=1, metrics=None, health=None, max_fee=None,
                 native_price=None, native_market=None, min_profit_bps=10_000, stuck_blocks=3, fee_bump_bps=1_250,
                 min_balance=0, heartbeat=60.0):
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
                      "orders_cancelled": 0, "replaced": 0, "held": 0, "rewards_units": 0, "gas_used": 0,
                      "gas_spent_wei": 0, "resets": 0, "settle_waits": 0}
        self.metrics = metrics or Metrics()
        self.health = health or Health()
        self.max_fee = max_fee  # wei per gas; None: no cap
        self.native_price = native_price  # token units per native coin; None: from native_market's feed
        self.native_market = native_market  # market id whose feed prices the native coin, or None
        self.min_profit_bps = min_profit_bps
        self.stuck_blocks = stuck_blocks
        self.fee_bump_bps = fee_bump_bps
        self.min_balance = min_balance
        self.heartbeat = heartbeat
        self.balance = None
        self.head_seen = None
        self._last_beat = time.time()
        self._held_logged = set()
        self._low_balance = False
        self._waiting_for_engine = False
        self.base_fee, self.tip = 0, 10**9
        self._simulate_v1 = True
        self.race_streak = {}
        self.last_sim_ms = 0.0
        self.exec_time = 0
        self._stale_logged = set()
        self._expired_logged = set()
        self._lp_waiting = None  # (epoch, reason) last logged as waiting

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
            if state.get("last_block") is None:
                pass
            elif state["last_block"] > head:
                log.warning("state file is ahead of the chain (block %s > %s): chain reset, starting fresh", state["last_block"], head)
            else:
                self.in_flight = state.get("in_flight", {})
                log.info("restart: last processed block %s, %d in flight", state.get("last_block"), len(self.in_flight))
        self.mirror.load(head)
        self.last_block = head
        self._sync_nonce()
        self._observe(head)
        self._settle(head)
        w = self.mirror.w
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
        exponentially (poll * 2**n, at most 30 s) and retry; a reset or
        reorganised chain is reloaded (after waiting for the engine's code
        to be back, when it is gone)."""
        failures = 0
        first = None
        loaded = False
        while True:
            try:
                if not loaded:
                    if not self._engine_present():
                        time.sleep(max(self.poll, 0.5))
                        self._beat()
                        continue
                    self.start()
                    loaded = True
                    if first is None:
                        first = self.last_block
                head = self.mirror.head()
                self.head_seen = head
                self.metrics.head.set(head)
                self.metrics.lag.set(max(0, head - self.last_block))
                if head < self.last_block:
                    raise ChainChanged(f"the head {head} is behind the last processed block {self.last_block}")
                if head > self.last_block:
                    self.step(head)
                failures = 0
                self.metrics.last_loop.set(time.time())
                self.health.ok(head=head, processed=self.last_block, in_flight=len(self.in_flight))
                self._beat()
                if self.max_blocks is not None and self.last_block - first >= self.max_blocks:
                    log.info("stop: %d blocks processed", self.last_block - first)
                    return
            except R.RpcError as exc:
                failures += 1
                self.metrics.rpc_errors.inc()
                delay = min(self.poll * 2 ** failures, 30.0)
                log.warning("rpc error (%s): retrying in %.1fs", exc, delay)
                time.sleep(delay)
                continue
            except (ChainChanged, NotAnEngine, DecodingError) as exc:
                # DecodingError: a view answered nothing (the engine has no
                # code any more): the chain changed under the keeper.
                self._recover(exc)
                loaded = False
                continue
            time.sleep(self.poll)

    def _engine_present(self):
        """True when the engine has code at the head; else waits (unhealthy)."""
        code = self.rpc.request("eth_getCode", [self.engine, "latest"])
        if code and code not in ("0x", "0x0"):
            if self._waiting_for_engine:
                log.info("engine %s has code again: reloading", self.engine)
                self._waiting_for_engine = False
                self.health.set_problem(None)
            return True
        if not self._waiting_for_engine:
            log.warning("engine %s has no code at the head (a reset devnet?): waiting for it to be deployed again "
                        "at that address, or restart the keeper with the new manifest", self.engine)
            self._waiting_for_engine = True
            self.health.set_problem(f"engine {self.engine} has no code")
        self.health.ok()  # the node answers; the problem above keeps /health at 503
        return False

    def _recover(self, why):
        """The chain changed under the keeper: drop what was in flight (its
        transactions belong to blocks that are gone), reload from the head."""
        self.stats["resets"] += 1
        self.metrics.resets.inc()
        log.warning("chain changed (%s: %s): dropping %d in flight, reloading from the head", type(why).__name__,
                    why, len(self.in_flight))
        self.in_flight = {}
        self.race_streak = {}
        self.last_block = None
        self.mirror.block_hash = None
        self.metrics.in_flight.set(0)
        self._save_state()

    def _beat(self):
        """A heartbeat line every `heartbeat` seconds, busy or idle."""
        if self.heartbeat and time.time() - self._last_beat >= self.heartbeat:
            self._last_beat = time.time()
            w = self.mirror.w
            log.info("heartbeat: head %s, processed %s, in flight %d, balance %s ETH, %d positions, %d pending orders,"
                     " sent %d, mined %d, rewards %d units, gas spent %d wei", self.head_seen, self.last_block,
                     len(self.in_flight), "?" if self.balance is None else f"{self.balance / 1e18:.6g}",
                     len(w.e.positions) if w else 0, len(w.e.orders) if w else 0, self.stats["sent"],
                     self.stats["mined"], self.stats["rewards_units"], self.stats["gas_spent_wei"])

    def step(self, head, fresh=False):
        """Process the chain up to `head`."""
        if not fresh:
            if self.mirror.block_hash is not None:
                blk = self.rpc.request("eth_getBlockByNumber", [hex(self.last_block), False])
                if blk is None or blk.get("hash") != self.mirror.block_hash:
                    raise ChainChanged(f"block {self.last_block} is {'gone' if blk is None else 'not the one processed'}")
            changes = self.mirror.changes(self.last_block + 1, head)
            self.mirror.apply(changes, head)
        self._observe(head)
        self._settle(head)
        t0 = time.time()
        actions = self.plan()
        if actions:
            t1 = time.time()
            self.execute(actions, head)
            log.info("block %d: %d due, plan %.0f ms, simulate %.0f ms, sign+send %.0f ms", head, len(actions),
                     (t1 - t0) * 1000, self.last_sim_ms, (time.time() - t1) * 1000 - self.last_sim_ms)
        self.last_block = head
        w = self.mirror.w
        self.metrics.processed.set(head)
        self.metrics.in_flight.set(len(self.in_flight))
        self.metrics.positions.set(len(w.e.positions))
        self.metrics.orders.set(len(w.e.orders))
        self._save_state()

    def _observe(self, head):
        """The fees the next block asks (the pending block's base fee: what
        the node checks a new transaction against; `head`'s where the node
        has no pending block) and the keeper's balance, in one batch."""
        pending, blk, tip, bal = self.rpc.batch([
            ("eth_getBlockByNumber", ["pending", False]), ("eth_getBlockByNumber", [hex(head), False]),
            ("eth_maxPriorityFeePerGas", []), ("eth_getBalance", [self.me, hex(head)])])
        if isinstance(blk, Exception) or blk is None or isinstance(bal, Exception):
            raise R.RpcError(f"block {head}: {blk if isinstance(blk, Exception) or blk is None else bal}")
        if isinstance(pending, dict) and pending.get("baseFeePerGas"):
            blk = pending
        self.base_fee = int(blk.get("baseFeePerGas") or "0x0", 16)
        self.tip = int(tip, 16) if isinstance(tip, str) else 10**9
        self.balance = int(bal, 16)
        self.metrics.base_fee.set(self.base_fee)
        self.metrics.balance.set(self.balance)
        low = self.balance < self.min_balance
        if low and not self._low_balance:
            log.warning("balance %.6g ETH is below --min-balance %.6g ETH: fund the keeper account", self.balance / 1e18,
                        self.min_balance / 1e18)
            self.health.set_problem(f"balance {self.balance} wei below {self.min_balance}")
        elif not low and self._low_balance:
            log.info("balance %.6g ETH is back above --min-balance", self.balance / 1e18)
            self.health.set_problem(None)
        self._low_balance = low

    # ------------------------------------------------------------ in flight
    def _settle(self, head):
        """Settle what is in flight from receipts: mined (counted, rewards and
        gas accounted), reverted (explained), dropped (forgotten, the nonce
        re-read), or still pending (sent again with higher fees once stuck
        for `stuck_blocks` blocks)."""
        if not self.in_flight:
            return
        keys = list(self.in_flight)
        hashes = [(k, h) for k in keys for h in (self.in_flight[k].get("hashes") or [self.in_flight[k]["hash"]])]
        answers = self.rpc.batch([("eth_getTransactionReceipt", [h]) for _, h in hashes]
                                 + [("eth_getTransactionByHash", [h]) for _, h in hashes])
        n = len(hashes)
        receipts, known = {}, set()
        for (k, _), rc, tx in zip(hashes, answers[:n], answers[n:]):
            if isinstance(rc, Exception) or isinstance(tx, Exception):
                raise R.RpcError(f"receipt: {rc if isinstance(rc, Exception) else tx}")
            if rc is not None:
                receipts[k] = rc
            if tx is not None:
                known.add(k)
        resync = False
        stuck = []
        for k in keys:
            entry = self.in_flight[k]
            rc = receipts.get(k)
            if rc is None:
                # Unknown to the node it was sent to: never sent (a crash
                # between recording and sending) or dropped. Known: wait,
                # and replace it once stuck.
                if k in known:
                    if head - entry["block"] >= self.stuck_blocks and "max_fee" in entry and not self.dry_run:
                        stuck.append(k)
                    elif head - entry.get("first_block", entry["block"]) >= self.timeout_blocks and not entry.get("late"):
                        log.warning("%s still pending after %d blocks (%s)", k, head - entry["block"], entry["hash"])
                        entry["late"] = True
                    continue
                log.warning("%s dropped: %s unknown to the node, will retry", k, entry["hash"])
                self.metrics.actions.labels(entry.get("kind", "?"), "dropped").inc()
                del self.in_flight[k]
                resync = True
                continue
            del self.in_flight[k]
            blk = int(rc["blockNumber"], 16)
            kind = entry.get("kind", "?")
            gas = int(rc.get("gasUsed") or "0x0", 16)
            spent = gas * int(rc.get("effectiveGasPrice") or "0x0", 16)
            self.stats["gas_used"] += gas
            self.stats["gas_spent_wei"] += spent
            self.metrics.gas_used.inc(gas)
            self.metrics.gas_spent.inc(spent)
            if int(rc["status"], 16) == 1:
                self.stats["mined"] += 1
                self.metrics.actions.labels(kind, "mined").inc()
                self.unexpected = 0
                outcome = ""
                reward = 0
                for lg in rc.get("logs") or []:
                    if R.addr(lg.get("address") or "0x" + "00" * 20) not in (self.engine, self.mirror.w.vault_address):
                        continue
                    reward += self._reward_in(lg, entry)
                    got = R.order_outcome(lg)
                    if got:
                        self.stats["orders_" + got[1]] += 1
                        outcome = f": executed at {got[2]}" if got[1] == "executed" else f": cancelled ({got[2]})"
                self.stats["rewards_units"] += reward
                if reward:
                    self.metrics.rewards.labels(kind).inc(reward / 10 ** self.mirror.w.token.decimals)
                n_sent = len(entry.get("hashes") or [])
                replaced = f" after {n_sent - 1} replacement(s)" if n_sent > 1 else ""
                log.info("mined %s in block %d (sent at %d)%s%s %s", entry["desc"], blk, entry["block"], outcome,
                         replaced, rc.get("transactionHash", entry["hash"]))
            else:
                self.stats["failed"] += 1
                self.metrics.actions.labels(kind, "failed").inc()
                self._on_failed(k, entry, blk)
        if stuck:
            self._replace(stuck, head)
        if resync:
            self._sync_nonce()
        self.metrics.in_flight.set(len(self.in_flight))

    def _reward_in(self, lg, entry):
        """What an engine log of our transaction credited us, token units."""
        topics = lg.get("topics") or []
        if not topics:
            return 0
        data = lg.get("data") or "0x"
        words = [int(data[2 + 64 * i: 2 + 64 * (i + 1)], 16) for i in range((len(data) - 2) // 64)]
        if topics[0] == R.LIQUIDATED and len(words) >= 4:
            return words[3]  # keeper_reward
        if topics[0] == R.TP_SL_EXECUTED and len(topics) > 3 and R.addr("0x" + topics[3][-40:]) == self.me:
            return words[1] if len(words) > 1 else 0  # execution_fee
        if topics[0] == R.KEEPER_PAID and len(topics) > 1 and R.addr("0x" + topics[1][-40:]) == self.me:
            return sum(words[:2])  # from_fund + from_vault: the floor's top-up
        if topics[0] == R.EPOCH_SETTLED and len(topics) > 2 and R.addr("0x" + topics[2][-40:]) == self.me:
            return words[R.EPOCH_SETTLED_FEE_WORD] if len(words) > R.EPOCH_SETTLED_FEE_WORD else 0  # the settler fee, paid to the keeper's wallet
        if topics[0] in (R.ORDER_EXECUTED, R.ORDER_CANCELLED) and entry.get("kind") == "order":
            return int(entry.get("reward", 0))  # the order's execution fee, paid for either outcome
        return 0

    def _replace(self, keys, head):
        """Send each stuck transaction again with the same nonce and data,
        fees raised by `fee_bump_bps` (at least what this block asks): the
        node keeps one of the two; _settle watches every hash."""
        signed = []
        for k in keys:
            e = self.in_flight[k]
            bump = 10_000 + self.fee_bump_bps
            tip = max(e["tip"] * bump // 10_000 + 1, self.tip)
            max_fee = max(e["max_fee"] * bump // 10_000 + 1, 2 * self.base_fee + tip)
            if self.max_fee is not None and not e.get("always") and max_fee > self.max_fee:
                if not e.get("capped"):
                    log.warning("%s pending %d blocks: a replacement would pay %d wei/gas, above the cap %d: left "
                                "pending", e["desc"], head - e["block"], max_fee, self.max_fee)
                    e["capped"] = True
                continue
            old = e["hash"]
            e.setdefault("hashes", [old])
            e.update(max_fee=max_fee, tip=min(tip, max_fee), block=head)
            signed.append((k, self._sign(e), old))
        if not signed:
            return
        answers = self._push([raw for _, raw, _ in signed])
        for (k, _, old), ans in zip(signed, answers):
            e = self.in_flight[k]
            txhash = e["hash"]
            if isinstance(ans, Exception):
                # "nonce too low": the first one was mined meanwhile (the next
                # settle finds it); "underpriced": the node wants more.
                log.info("replacement of %s not accepted (%s): watching %s", e["desc"], ans, old)
                e["hashes"].remove(txhash)
                e["hash"] = old
                continue
            self.stats["replaced"] += 1
            self.metrics.actions.labels(e.get("kind", "?"), "replaced").inc()
            log.info("replaced %s nonce=%d (pending since block %d): max fee %d wei/gas, tip %d; %s -> %s", e["desc"],
                     e["nonce"], e.get("first_block", head), e["max_fee"], e["tip"], old, txhash)
        self._save_state()

    def _on_failed(self, key, entry, blk):
        """A mined transaction reverted: explain it by re-simulating now."""
        result = self.rpc.batch([("eth_call", [{"from": self.me, "to": entry.get("to") or self.engine,
                                                 "data": entry["data"]}, "latest"])])[0]
        reason = result.reason if isinstance(result, R.Reverted) else None
        if entry.get("kind") == "settle" and reason in SETTLE_WAITS:
            log.info("settle reverted in block %d (%s): the LP epoch waits %s", blk, reason, entry["hash"])
            self._lp_wait(self.mirror.w.v.closing or self.mirror.w.v.epoch, reason)
            return
        if reason in RACES:
            self.stats["races"] += 1
            self.metrics.actions.labels(entry.get("kind", "?"), "race").inc()
            log.info("race: %s reverted in block %d (%s) %s", entry["desc"], blk, reason, entry["hash"])
            return
        self._unexpected(f"{entry['desc']} reverted in block {blk} ({reason or 'no reason; now ' + ('ok' if not isinstance(result, Exception) else 'reverts')}) {entry['hash']}")

    def _unexpected(self, what):
        self.stats["unexpected"] += 1
        self.metrics.unexpected.inc()
        self.unexpected += 1
        log.error("unexpected revert %d/%d: %s", self.unexpected, self.breaker_limit, what)
        if self.unexpected >= self.breaker_limit:
            self.health.set_problem("circuit breaker tripped")
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
            settle = self._settle_due(base)
        finally:
            base.now = saved_now
        # The LP settlement goes last: it changes nothing the others read.
        tail = [settle] if settle else []
        if not due:
            return tail

        def replayed():
            """A fresh copy with the actions planned so far run on it: a verb
            that failed in the model may have half-run on the old one."""
            c = self._copy_at(base, now)
            for b in planned:
                self._run_in_model(c, b)
            return c

        orders = [a for a in due if a.kind == "order"]
        due = [a for a in due if a.kind != "order"]
        planned = []
        w = replayed() if due else None
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
                w = replayed()
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
                    w = replayed()
                    break
                planned.append(d)
                a = d
        # Order executions last, not run in the model: whatever the outcome
        # (executed, or cancelled with the failed check's reason) the call
        # succeeds, and the node's simulation of the batch checks it does.
        return planned + orders[:max(0, MAX_BATCH - len(planned))] + tail

    def _copy_at(self, base, now):
        """A copy of the World at the next block's time, the keeper calling."""
        c = copy.deepcopy(base)
        c.now = now
        c.sender = c.caller = self.me
        return c

    def _settle_due(self, w):
        """The vault's settle() as an Action when it would price an LP epoch
        at the next block's time (`w.now`), else None. The epoch it would
        price is the closing one, else the open one if it has requests; it
        waits until every market's feed has a fresh round later than its
        last request (liquidity_vault.rounds_after, the contract's rule). A
        settle that would only close the open epoch earns nothing and is not
        sent (the settle that prices it closes it too). The reward is the
        settler fee the model's settle pays the keeper."""
        v = w.v
        target = v.closing or v.epoch
        ep = LV.get_epoch(w, target)
        if not v.closing and ep.deposit_assets == 0 and ep.redeem_shares == 0:
            self.metrics.lp_wait.set(0)
            return None
        self.metrics.lp_wait.set(max(0, w.now - ep.last_request))
        status = LV.rounds_after(w, ep.last_request)
        if status != LV.ROUNDS_IN:
            self._lp_wait(target, WAIT_REASONS[status])
            return None
        # settle writes only the vault's state, token balances and the log:
        # copy those (the engine's positions, read for the valuation, are
        # shared, not deep-copied every block an epoch is due).
        c = copy.copy(w)
        c.v, c.token, c.events = copy.deepcopy(w.v), copy.deepcopy(w.token), []
        c.sender = c.caller = self.me
        before = c.token.balance_of(self.me)
        try:
            LV.settle(c)
        except Revert as exc:
            if exc.reason in SETTLE_WAITS:
                self._lp_wait(target, exc.reason)
            else:
                log.warning("model: settle of LP epoch %d reverts (%s): skipped this block", target, exc.reason)
            return None
        self._lp_waiting = None
        a = Action("settle", None, -1, to=w.vault_address, tag=f"epoch {target}",
                   reward=c.token.balance_of(self.me) - before)
        return None if a.key in self.in_flight else a

    def _lp_wait(self, epoch, reason):
        """An LP epoch settle() cannot price yet: a log line and a metric
        once per epoch and reason, never toward the breaker."""
        if self._lp_waiting == (epoch, reason):
            return
        self._lp_waiting = (epoch, reason)
        self.stats["settle_waits"] += 1
        self.metrics.actions.labels("settle", "wait").inc()
        log.info("LP epoch %d waits (%s): not settled", epoch, reason)

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
            price, updated = P._round(w, mid, False)
            if P._past_cap(w, pos, price, P._pending_index(w, mid, price, pos.size)):
                a = Action("tp_sl", account, mid)  # at its payout cap (decision 95): closable at any round
                if a.key not in self.in_flight:
                    due_tp.append(a)
                continue
            if pos.take_profit or pos.stop_loss:
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
            a = Action("order", o.account, o.market_id, order_id=oid, reward=o.execution_fee)
            if a.key not in self.in_flight:
                due_orders.append(a)
        # Liquidations first: they have the deadline, and a TP/SL cannot run
        # on a liquidatable position anyway. A pending ADL job blocks the
        # market's next bankrupt liquidation, so it goes before them.
        return due_adl + due_liq + due_tp + due_orders

    def _run_in_model(self, w, a):
        """Run `a` on the model World `w`, choosing its ADL targets there."""
        mid = a.market_id
        before = w.e.free.get(self.me, 0)
        if a.kind == "deleverage":
            a.always = True  # solvency: a full ADL queue blocks the market's next bankrupt liquidation
            a.targets = adl.job_ranking(w, mid)  # at the job's price
            PX.deleverage(w, mid, a.targets)
        elif a.kind == "liquidate":
            pos = P._load(w, a.account, mid)
            if pos.size != 0:
                # bankrupt (no reward, bad debt to cover): sent whatever it costs
                a.always = P._equity(w, pos, mid, P._price(w, mid, False)) <= 0
            a.targets = self._liquidation_targets(w, a.account, mid)
            PX.liquidate(w, a.account, mid, a.targets)
        else:
            PX.execute_tp_sl(w, a.account, mid)
        a.reward = w.e.free.get(self.me, 0) - before

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
            calls = [{"from": self.me, "to": a.to or self.engine, "data": a.calldata()} for a in actions]
            params = [{"blockStateCalls": [{"blockOverrides": {"time": hex(self.exec_time)}, "calls": calls}]}, hex(head)]
            try:
                res = self.rpc.request("eth_simulateV1", params)
                out = []
                for a, c in zip(actions, res[0]["calls"]):
                    used = int(c["gasUsed"], 16)
                    a.gas_used = used
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
            reqs.append(("eth_estimateGas", [{"from": self.me, "to": a.to or self.engine, "data": a.calldata()},
                                             hex(head)]))
        out = []
        for a, r in zip(actions, self.rpc.batch(reqs)):
            if isinstance(r, R.RpcError):
                raise r
            if isinstance(r, R.Reverted):
                out.append((a, r))
            else:
                a.gas_used = int(r, 16)
                a.gas = a.gas_used * 135 // 100 + 30_000 + 40_000 * len(a.targets)
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
            elif a.kind == "settle" and err.reason in SETTLE_WAITS:
                # The chain disagrees with the mirror's rounds for a block, or
                # someone settled first: the epoch waits, re-planned next block.
                self._lp_wait(self.mirror.w.v.closing or self.mirror.w.v.epoch, err.reason)
            elif err.reason in RACES:
                # Someone got there first, or the mirror is behind: re-read
                # the position next block. The same race block after block
                # means the model and the chain disagree.
                self.stats["races"] += 1
                self.metrics.actions.labels(a.kind, "race").inc()
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
        ok = self._worth_sending(ok)
        if not ok:
            return
        if self.dry_run:
            for a in ok:
                log.info("dry run: would send %s (gas %d) at block %d", a.describe(), a.gas, head)
            return
        self.send(ok, head)

    def native_units(self):
        """Token units one native coin (1e18 wei) is worth: --native-price,
        else the answer of the feed of `native_market` (ETH-PERP's), else
        None (the profitability check is off)."""
        if self.native_price is not None:
            return self.native_price
        w = self.mirror.w
        if self.native_market is None or w is None or self.native_market not in w.e.params:
            return None
        f = w.feeds[w.e.params[self.native_market].feed]
        if f.answer <= 0:
            return None
        return f.answer * 10 ** w.token.decimals // 10 ** f.decimals

    def _worth_sending(self, actions):
        """Hold what only earns while the base fee is at the cap, or while
        its reward (token units) would not pay its gas x min_profit_bps;
        bankrupt liquidations and ADL continuations always go."""
        price = self.base_fee + self.tip
        if self.max_fee is not None:
            price = min(price, self.max_fee)
        native = self.native_units()
        out = []
        for a in actions:
            why = None
            if not a.always:
                if self.max_fee is not None and self.base_fee >= self.max_fee:
                    why = ("held_gas_cap", f"base fee {self.base_fee} wei/gas at or above the cap {self.max_fee}")
                elif native is not None:
                    cost = a.gas_used * price * native // 10**18
                    if a.reward * 10_000 < cost * self.min_profit_bps:
                        why = ("held_unprofitable", f"reward {a.reward} < gas {a.gas_used} x {price} wei = {cost} "
                                                    f"token units (x {self.min_profit_bps / 10_000:g})")
            if why is None:
                self._held_logged.discard(a.key)
                out.append(a)
                continue
            self.stats["held"] += 1
            if a.key not in self._held_logged:
                self._held_logged.add(a.key)
                self.metrics.actions.labels(a.kind, why[0]).inc()
                log.info("held %s: %s", a.describe(), why[1])
        return out

    def _sign(self, e):
        """Sign the transaction an in-flight entry describes (its nonce, to,
        data, gas and fees); records its hash in the entry, returns the raw
        transaction. The one place the keeper signs: first sends and
        replacements alike."""
        raw, txhash = self.signer.sign({"nonce": e["nonce"], "to": e.get("to") or self.engine, "data": e["data"],
                                        "gas": e["gas"], "maxFeePerGas": e["max_fee"],
                                        "maxPriorityFeePerGas": e["tip"]})
        e["hash"] = txhash
        e.setdefault("hashes", []).append(txhash)
        return raw

    def _push(self, raws):
        """Send signed transactions in one batch, their entries recorded in
        the state file first: a crash between the two loses nothing (the
        restart finds them by hash, or re-plans what the node never got).
        Returns the node's answer for each."""
        self._save_state()
        return self.rpc.batch([("eth_sendRawTransaction", [raw]) for raw in raws])

    def send(self, actions, head):
        failed = []
        for i in range(0, len(actions), SEND_CHUNK):
            chunk = actions[i:i + SEND_CHUNK]
            raws = []
            for a in chunk:
                max_fee = 2 * self.base_fee + self.tip
                if self.max_fee is not None and not a.always:
                    max_fee = min(max_fee, self.max_fee)
                e = self.in_flight[a.key] = {
                    "nonce": self.nonce, "to": a.to or self.engine, "data": a.calldata(), "gas": a.gas,
                    "max_fee": max_fee, "tip": min(self.tip, max_fee), "block": head, "first_block": head,
                    "time": time.time(), "desc": a.describe(), "market_id": a.market_id, "kind": a.kind,
                    "always": a.always, "reward": a.reward}
                raws.append(self._sign(e))
                self.nonce += 1
            answers = self._push(raws)
            for a, ans in zip(chunk, answers):
                txhash = self.in_flight[a.key]["hash"]
                if isinstance(ans, Exception):
                    del self.in_flight[a.key]
                    if _fee_too_low(ans):
                        # The base fee moved between reading it and sending:
                        # not a fault; the next block re-plans at its fee.
                        log.warning("send %s refused at this fee (%s): next block", a.describe(), ans)
                        failed.append(None)
                        continue
                    failed.append(f"send {a.describe()} failed ({ans})")
                    log.warning("send %s failed (%s)", a.describe(), ans)
                    continue
                self.stats["sent"] += 1
                self.metrics.actions.labels(a.kind, "sent").inc()
                log.info("sent %s nonce=%d gas=%d block=%d %s", a.describe(), self.in_flight[a.key]["nonce"], a.gas, head, txhash)
            if failed:
                break
        self.metrics.in_flight.set(len(self.in_flight))
        if failed:
            # A failed send (insufficient funds, a nonce gap, a node refusing
            # it) counts toward the circuit breaker like an unexpected revert.
            self._sync_nonce()
            self._save_state()
            for what in failed:
                if what is not None:
                    self._unexpected(what)


def _fee_too_low(error):
    """A node refusing a transaction for its fee (geth, anvil, erigon words)."""
    text = str(error).lower()
    return any(w in text for w in ("less than block base fee", "underpriced", "fee cap less than", "fee too low",
                                   "max fee per gas less than"))


# ---------------------------------------------------------------- command line

def main(argv=None):
    """`python -m bots.keeper ...`: the command line is bots/cli.py."""
    from bots.cli import main as cli_main
    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
