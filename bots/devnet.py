"""Devnet tooling around the keeper, for its end-to-end tests, the demo and
the benchmark: run the keeper as a separate process, switch anvil between
automine and interval mining, open many positions fast (through orders:
every trader requests, one later price round, then each order is executed),
read back what the keeper did, and measure blocks-to-liquidation and
blocks-to-execution.

Setting many traders up goes through anvil's account impersonation
(`anvil_autoImpersonateAccount`): traders are plain addresses, their
transactions are sent unsigned in JSON-RPC batches. Devnet only.
"""

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from eth_abi import decode
from eth_utils import keccak, to_checksum_address

from bots import rpc as R

ROOT = Path(__file__).resolve().parent.parent
WAD = 10**18
USDC = 10**6
FEED_UNIT = 10**8
MAX_UINT = 2**256 - 1

LIQUIDATED = R.topic("PositionLiquidated(address,uint256,int256,uint256,uint256,uint256,uint256)")
TP_SL_EXECUTED = R.topic("TpSlExecuted(address,uint256,address,uint256,uint256)")
AUTO_DELEVERAGED = R.topic("AutoDeleveraged(address,address,uint256,int256,uint256,uint256)")
FUND_DRAWN = R.topic("InsuranceFundDrawn(uint256,uint256)")
DELEVERAGE_PENDING = R.topic("DeleveragePending(uint256,address,uint256)")
ACCEPTABLE_BPS = 100  # a helper's buy accepts up to 1% over the feed's answer at request


def trader_address(label):
    """A deterministic address for a devnet trader (no key: impersonated)."""
    return to_checksum_address(keccak(text=f"backstop-trader:{label}")[-20:])


# ---------------------------------------------------------------- the node

class Node:
    """The test's handle on the devnet node (the same one ape is connected to)."""

    def __init__(self, uri):
        self.rpc = R.Rpc(uri, timeout=60)
        self.uri = uri

    def head(self):
        return int(self.rpc.request("eth_blockNumber", []), 16)

    def automine(self):
        self.rpc.request("evm_setAutomine", [True])

    def interval(self, seconds):
        self.rpc.request("evm_setIntervalMining", [seconds])

    @contextmanager
    def interval_mining(self, seconds=1):
        """Blocks every `seconds` (as `anvil --block-time`), automine after."""
        self.interval(seconds)
        try:
            yield self
        finally:
            self.automine()

    def wait_for_block(self, number, timeout=30.0):
        end = time.time() + timeout
        while self.head() < number:
            if time.time() > end:
                raise TimeoutError(f"block {number} not mined within {timeout}s")
            time.sleep(0.05)

    def send_as(self, txs, timeout=60.0, gas=2_000_000):
        """Send [(from, to, data)] unsigned (impersonated), each sender's in
        order; wait for every receipt and assert success. Returns the
        receipts, in the order given.

        A JSON-RPC batch is not handled in order, so a batch holds at most one
        transaction per sender ("rounds"), mined before the next round."""
        queues = {}
        for i, (f, t, d) in enumerate(txs):
            queues.setdefault(f, []).append((i, t, d))
        hashes = [None] * len(txs)
        self.rpc.request("anvil_autoImpersonateAccount", [True])
        try:
            for r in range(max((len(q) for q in queues.values()), default=0)):
                round_ = [(f, q[r]) for f, q in queues.items() if r < len(q)]
                for j in range(0, len(round_), 250):
                    part = round_[j:j + 250]
                    res = self.rpc.batch([("eth_sendTransaction", [{"from": f, "to": t, "data": d, "gas": hex(gas)}])
                                          for f, (_, t, d) in part])
                    for (f, (i, t, _)), h in zip(part, res):
                        if isinstance(h, Exception):
                            raise AssertionError(f"setup tx from {f} to {t} failed: {h}")
                        hashes[i] = h
                    for h, rc in zip([hashes[i] for _, (i, _, _) in part], self.receipts([hashes[i] for _, (i, _, _) in part], timeout)):
                        assert int(rc["status"], 16) == 1, f"setup tx {h} reverted"
        finally:
            self.rpc.request("anvil_autoImpersonateAccount", [False])
        return self.receipts(hashes, timeout)

    def receipts(self, hashes, timeout=60.0):
        """Wait for every receipt. In automine mode anvil mines a block per
        arriving transaction, and a block holds only what its gas limit
        allows: transactions that arrive together can be left in the pool
        with nothing more arriving to mine them (seen once in CI, under
        load). So when receipts stop coming for a second while automine is
        on and the pool is not empty, mine a block."""
        end = time.time() + timeout
        out = {}
        last_progress = time.time()
        while len(out) < len(hashes):
            todo = [h for h in hashes if h not in out]
            before = len(out)
            for i in range(0, len(todo), 500):
                part = todo[i:i + 500]
                for h, rc in zip(part, self.rpc.batch([("eth_getTransactionReceipt", [h]) for h in part])):
                    if isinstance(rc, dict):
                        out[h] = rc
            if len(out) > before:
                last_progress = time.time()
            if len(out) < len(hashes):
                if time.time() > end:
                    raise TimeoutError(f"{len(hashes) - len(out)} transactions not mined: {self._pool_diagnosis(todo)}")
                if time.time() - last_progress > 1.0 and self._stuck_in_automine():
                    self.rpc.request("evm_mine", [])
                    last_progress = time.time()
                time.sleep(0.1)
        return [out[h] for h in hashes]

    def _stuck_in_automine(self):
        pool = self.rpc.request("txpool_status", [])
        return self.rpc.request("anvil_getAutomine", []) and int(pool["pending"], 16) > 0

    def _pool_diagnosis(self, hashes):
        known = sum(1 for tx in self.rpc.batch([("eth_getTransactionByHash", [h]) for h in hashes[:50]])
                    if isinstance(tx, dict))
        block = self.rpc.request("eth_getBlockByNumber", ["latest", False])
        return (f"automine={self.rpc.request('anvil_getAutomine', [])} pool={self.rpc.request('txpool_status', [])} "
                f"known to the node={known}/{min(len(hashes), 50)} head={int(block['number'], 16)} "
                f"gas limit={int(block['gasLimit'], 16)}")

    def block_timestamp(self, number):
        return int(self.rpc.request("eth_getBlockByNumber", [hex(number), False])["timestamp"], 16)

    def set_balances(self, addresses, wei=10 * WAD):
        self.rpc.batch([("anvil_setBalance", [a, hex(wei)]) for a in addresses])

    def logs(self, address, topic0, from_block, to_block="latest"):
        to = to_block if isinstance(to_block, str) else hex(to_block)
        return self.rpc.request("eth_getLogs", [{"address": address, "topics": [topic0], "fromBlock": hex(from_block), "toBlock": to}])


# ---------------------------------------------------------------- positions

@dataclass
class Spec:
    """One trader's position: `size` in 1e18 asset units (signed), `margin`
    in token units, optional TP/SL prices in 1e18."""
    trader: str
    market_id: int
    size: int
    margin: int
    take_profit: int = 0
    stop_loss: int = 0


def feed_answer(node, protocol, market_id):
    """The market's feed answer now (feed decimals)."""
    (res,) = node.rpc.calls([(protocol.feeds[market_id].address, R.calldata("latestRoundData()", [], []))])
    if isinstance(res, Exception):
        raise res
    return decode(R.ROUND, bytes.fromhex(res[2:]))[1]


def acceptable_price(node, protocol, market_id, size, price_bound=None):
    """A helper order's acceptable price: `price_bound` if given, else 1%
    worse than the feed's answer now for a buy, 0 (any price) for a sell."""
    if size < 0:
        return 0
    if price_bound is not None:
        return price_bound
    answer = feed_answer(node, protocol, market_id)
    return answer * (WAD // FEED_UNIT) * (10_000 + ACCEPTABLE_BPS) // 10_000


def order_ids(receipts):
    """The order id of each request_order receipt (its OrderRequested log)."""
    out = []
    for rc in receipts:
        ids = [int(lg["topics"][1], 16) for lg in rc["logs"] if lg["topics"] and lg["topics"][0] == R.ORDER_REQUESTED]
        assert len(ids) == 1, f"{rc['transactionHash']}: {len(ids)} OrderRequested logs"
        out.append(ids[0])
    return out


def order_outcomes(receipts):
    """{order id: ("executed", price) | ("cancelled", reason)} from receipts."""
    out = {}
    for rc in receipts:
        for lg in rc["logs"]:
            got = R.order_outcome(lg)
            if got:
                out[got[0]] = got[1:]
    return out


def later_round(node, protocol, market_ids, sender, after_timestamp):
    """A new round at the current answer on each market's feed, in a block
    whose timestamp (the round's updatedAt) is later than `after_timestamp`:
    the later price the requests made until then wait for. Returns the
    block of the last round."""
    node.set_balances([sender])
    block = None
    for mid in sorted(set(market_ids)):
        while True:
            (rc,) = node.send_as([(sender, protocol.feeds[mid].address,
                                   R.calldata("set_answer(int256)", ["int256"], [feed_answer(node, protocol, mid)]))],
                                 gas=200_000)
            block = int(rc["blockNumber"], 16)
            if node.block_timestamp(block) > after_timestamp:
                break
            time.sleep(0.2)  # the node stamped it in the same second: one more
    return block


def funding_txs(protocol, s):
    """Mint, approve and deposit what a spec's order needs (twice its margin
    and 1,000 for the fees)."""
    engine, token = protocol.engine.address, protocol.token.address
    funds = s.margin * 2 + 1_000 * USDC
    return [
        (s.trader, token, R.calldata("mint(address,uint256)", ["address", "uint256"], [s.trader, funds])),
        (s.trader, token, R.calldata("approve(address,uint256)", ["address", "uint256"], [engine, MAX_UINT])),
        (s.trader, engine, R.calldata("deposit(uint256)", ["uint256"], [funds])),
    ]


def pending_orders(node, protocol, pairs):
    """{(account, market_id): the account's pending order id there, 0 if none}."""
    engine = protocol.engine.address
    res = node.rpc.calls([(engine, R.calldata("pending_order(address,uint256)", ["address", "uint256"], [a, mid]))
                          for a, mid in pairs])
    out = {}
    for pair, r in zip(pairs, res):
        if isinstance(r, Exception):
            raise r
        out[pair] = decode(["uint256"], bytes.fromhex(r[2:]))[0]
    return out


def request_orders(node, protocol, specs, price_bound=None, fund=True):
    """Mint, approve, deposit (with `fund`) and request every spec's opening
    order, as impersonated batches. Returns (order ids in spec order, the
    latest request block's timestamp, the sorted request blocks).

    One pending order per (account, market): a second request there reverts
    "order: pending" until the first is executed or cancelled, so the specs
    must name each (trader, market) once, none with an order still pending."""
    engine = protocol.engine.address
    pairs = [(s.trader, s.market_id) for s in specs]
    twice = sorted({p for p in pairs if pairs.count(p) > 1})
    assert not twice, f"one pending order per account and market: {twice} requested twice"
    waiting = {p: oid for p, oid in pending_orders(node, protocol, pairs).items() if oid}
    assert not waiting, f"one pending order per account and market: already pending {waiting}"
    node.set_balances(sorted({s.trader for s in specs}))
    txs, requests = [], []
    for s in specs:
        if fund:
            txs += funding_txs(protocol, s)
        requests.append(len(txs))
        txs.append((s.trader, engine, R.encode_request_order(
            s.market_id, s.size, s.margin, acceptable_price(node, protocol, s.market_id, s.size, price_bound))))
    receipts = node.send_as(txs)
    mined = [receipts[i] for i in requests]
    blocks = sorted({int(rc["blockNumber"], 16) for rc in mined})
    return order_ids(mined), node.block_timestamp(blocks[-1]), blocks


def executor_address(trader):
    """The helper's executor for a trader's order: one per trader, so the
    executions go out as one batch (send_as takes one transaction per sender
    per round). It earns the execution fee."""
    return trader_address(f"executor:{trader}")


def execute_orders(node, protocol, ids, executors):
    """Execute order `ids[i]` from `executors[i]`; assert every one executed
    (a cancellation raises with its reason). Returns {order id: block}."""
    engine = protocol.engine.address
    node.set_balances(sorted(set(executors)))
    receipts = node.send_as([(x, engine, R.encode_execute_order(i)) for i, x in zip(ids, executors)])
    outcomes = order_outcomes(receipts)
    bad = {i: outcomes.get(i) for i in ids if outcomes.get(i, ("?",))[0] != "executed"}
    assert not bad, f"orders not executed: {bad}"
    return {i: int(rc["blockNumber"], 16) for i, rc in zip(ids, receipts)}


def open_positions(node, protocol, specs, price_bound=None):
    """Open every spec's position through an order, and set its TP/SL: mint,
    approve, deposit and request_order from each trader (impersonated
    batches), one later round on each market's feed at the same answer, then
    execute_order by the helper (one executor address per trader, paid the
    execution fee), then set_tp_sl. Buys accept up to `price_bound` (default:
    1% over the answer at request). Returns {(trader, market_id): block
    number its order was executed in}."""
    ids, requested_at, _ = request_orders(node, protocol, specs, price_bound)
    later_round(node, protocol, [s.market_id for s in specs], trader_address("devnet-oracle"), requested_at)
    blocks = execute_orders(node, protocol, ids, [executor_address(s.trader) for s in specs])
    engine = protocol.engine.address
    tp_sl = [(s.trader, engine, R.calldata("set_tp_sl(uint256,uint256,uint256)", ["uint256", "uint256", "uint256"],
                                           [s.market_id, s.take_profit, s.stop_loss]))
             for s in specs if s.take_profit or s.stop_loss]
    if tp_sl:
        node.send_as(tp_sl)
    return {(s.trader, s.market_id): blocks[i] for s, i in zip(specs, ids)}


def request_deposit(node, protocol, lp, amount):
    """An LP mints `amount`, approves the vault and requests a deposit of it
    into the open epoch; returns the request's block timestamp."""
    vault, token = protocol.vault.address, protocol.token.address
    node.set_balances([lp])
    receipts = node.send_as([
        (lp, token, R.calldata("mint(address,uint256)", ["address", "uint256"], [lp, amount])),
        (lp, token, R.calldata("approve(address,uint256)", ["address", "uint256"], [vault, MAX_UINT])),
        (lp, vault, R.calldata("requestDeposit(uint256,address,address)", ["uint256", "address", "address"],
                               [amount, lp, lp])),
    ])
    return node.block_timestamp(int(receipts[-1]["blockNumber"], 16))


def provide_liquidity(node, protocol, lp, amount):
    """An LP deposits `amount` into the vault (the counterparty of every
    trade) through an epoch (ERC-7540, docs/lp-epochs.md): requestDeposit,
    a later round on every feed, settle, and the claim."""
    vault = protocol.vault.address
    requested_at = request_deposit(node, protocol, lp, amount)
    later_round(node, protocol, range(len(protocol.feeds)), lp, requested_at)
    node.send_as([(lp, vault, R.calldata("settle()", [], []))])
    node.send_as([(lp, vault, R.calldata("deposit(uint256,address,address)", ["uint256", "address", "address"],
                                         [amount, lp, lp]))])


def set_price(node, protocol, market_id, price_usd, sender):
    """Move a mock feed; returns the block the update was mined in."""
    feed = protocol.feeds[market_id].address
    node.set_balances([sender])
    (rc,) = node.send_as([(sender, feed, R.calldata("set_answer(int256)", ["int256"], [int(price_usd * FEED_UNIT)]))],
                         gas=200_000)
    return int(rc["blockNumber"], 16)


# ---------------------------------------------------------------- the keeper process

class KeeperProcess:
    """`python -m bots.keeper ...` as a child process, output to a log file."""

    def __init__(self, engine, *, account="TEST::3", state_file, log_file, network="ethereum:local:foundry",
                 poll=0.1, extra=()):
        self.log_file = Path(log_file)
        self.cmd = [sys.executable, "-m", "bots.keeper", "--network", network, "--engine", engine, "--account", account,
                    "--state-file", str(state_file), "--poll", str(poll), *extra]
        self.proc = None

    def start(self, timeout=60.0):
        env = dict(os.environ)
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        env["PYTHONUNBUFFERED"] = "1"
        starts = self.text().count("keeper start:")
        out = open(self.log_file, "a")
        out.write(f"---- {' '.join(self.cmd)}\n")
        out.flush()
        self.proc = subprocess.Popen(self.cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        out.close()
        self.wait_for("keeper start:", timeout, count=starts + 1)
        return self

    def text(self):
        return self.log_file.read_text() if self.log_file.exists() else ""

    def wait_for(self, needle, timeout=30.0, count=1):
        end = time.time() + timeout
        while self.text().count(needle) < count:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"keeper exited ({self.proc.returncode}):\n{self.text()[-3000:]}")
            if time.time() > end:
                raise TimeoutError(f"keeper did not log {needle!r} within {timeout}s:\n{self.text()[-3000:]}")
            time.sleep(0.05)

    def kill(self):
        """SIGKILL: no clean-up runs, as in a crash."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode if self.proc else None


# ---------------------------------------------------------------- measurements

def liquidation_blocks(node, engine, from_block, to_block="latest"):
    """{(account, market_id): block} of every PositionLiquidated in the range
    (a list of blocks when a position was liquidated more than once)."""
    out = {}
    for log in node.logs(engine, LIQUIDATED, from_block, to_block):
        key = (to_checksum_address("0x" + log["topics"][1][-40:]), int(log["topics"][2], 16))
        out.setdefault(key, []).append(int(log["blockNumber"], 16))
    return out


def blocks_to_liquidation(protocol, n=200, *, node_uri, keeper_account="TEST::3", keeper=None, work_dir=".",
                          price_from=80_000, price_to=78_500, size=WAD // 10, margin=160 * USDC, block_time=1,
                          timeout_blocks=15):
    """Open `n` 50x longs on market 0 at `price_from`, start a keeper (unless
    one is given), switch the node to interval mining, move the price to
    `price_to` (every position liquidatable, none bankrupt with the
    defaults), and measure, per position, how many blocks after the price
    update its liquidation was mined.

    Returns {"n", "price_block", "blocks": {position: delta}, "histogram":
    {delta: count}, "max": worst delta (None if one was missed), "missed"}.
    The keeper's nonce-ordered batch is mined as the node's block gas limit
    allows; `max` is the deadline figure (<= 2 is the target)."""
    node = Node(node_uri)
    engine = protocol.engine.address
    deployer = trader_address("bench-deployer")
    node.automine()
    set_price(node, protocol, 0, price_from, deployer)
    provide_liquidity(node, protocol, trader_address("bench-lp"), 50_000_000 * USDC)
    specs = [Spec(trader_address(f"bench-{i}"), 0, size, margin) for i in range(n)]
    open_positions(node, protocol, specs)
    own = keeper is None
    if own:
        keeper = KeeperProcess(engine, account=keeper_account, state_file=Path(work_dir) / "bench-keeper-state.json",
                               log_file=Path(work_dir) / "bench-keeper.log").start()
    try:
        with node.interval_mining(block_time):
            node.wait_for_block(node.head() + 1)
            price_block = set_price(node, protocol, 0, price_to, deployer)
            end = price_block + timeout_blocks
            while True:
                got = liquidation_blocks(node, engine, price_block)
                if all((s.trader, 0) in got for s in specs) or node.head() >= end:
                    break
                time.sleep(0.2)
    finally:
        if own:
            keeper.stop()
    blocks = {s.trader: (got[(s.trader, 0)][0] - price_block if (s.trader, 0) in got else None) for s in specs}
    return {"n": n, "price_block": price_block, **_delays(blocks)}


def _delays(blocks):
    """{"blocks", "histogram" {delay: count}, "max" (None when any is
    missing), "missed"} of {key: delay in blocks, or None when it never
    happened}."""
    done = [d for d in blocks.values() if d is not None]
    hist = {}
    for d in done:
        hist[d] = hist.get(d, 0) + 1
    missed = sum(1 for d in blocks.values() if d is None)
    return {"blocks": blocks, "histogram": dict(sorted(hist.items())),
            "max": max(done) if done and not missed else None, "missed": missed}


def order_blocks(node, engine, from_block, to_block="latest"):
    """{order id: (block, "executed" | "cancelled", price | reason)} of every
    OrderExecuted / OrderCancelled in the range."""
    out = {}
    for topic0 in (R.ORDER_EXECUTED, R.ORDER_CANCELLED):
        for lg in node.logs(engine, topic0, from_block, to_block):
            oid, status, what = R.order_outcome(lg)
            out[oid] = (int(lg["blockNumber"], 16), status, what)
    return out


def blocks_to_execution(protocol, n=200, *, node_uri, keeper_account="TEST::3", keeper=None, work_dir=".",
                        price=80_000, size=WAD // 10, margin=400 * USDC, block_time=1, timeout_blocks=15):
    """`n` traders (funded first) request a 20x long on market 0 each while
    a keeper (started here unless one is given) runs and the node mines a
    block every `block_time` s; then one price round at the same answer,
    the first with updatedAt later than every request. Measures, per order,
    how many blocks after that round's block its execution was mined (the
    goal: 1, the first block after the round).

    Returns {"n", "request_blocks", "round_block", "before_round" (orders
    executed before the round: must be 0), "blocks": {order id: delta},
    "histogram": {delta: count}, "max", "missed", "cancelled"}."""
    node = Node(node_uri)
    engine = protocol.engine.address
    oracle = trader_address("bench-oracle")
    node.automine()
    set_price(node, protocol, 0, price, oracle)
    provide_liquidity(node, protocol, trader_address("bench-lp"), 50_000_000 * USDC)
    specs = [Spec(trader_address(f"bench-order-{i}"), 0, size, margin) for i in range(n)]
    node.set_balances([s.trader for s in specs])
    node.send_as([tx for s in specs for tx in funding_txs(protocol, s)])
    own = keeper is None
    if own:
        keeper = KeeperProcess(engine, account=keeper_account, state_file=Path(work_dir) / "bench-order-keeper-state.json",
                               log_file=Path(work_dir) / "bench-order-keeper.log").start()
    first = node.head() + 1
    try:
        with node.interval_mining(block_time):
            ids, requested_at, request_blocks = request_orders(node, protocol, specs, fund=False)
            node.wait_for_block(node.head() + 1)
            before = order_blocks(node, engine, first)
            round_block = later_round(node, protocol, [0], oracle, requested_at)
            end = round_block + timeout_blocks
            while True:
                got = order_blocks(node, engine, first)
                if all(i in got for i in ids) or node.head() >= end:
                    break
                time.sleep(0.2)
    finally:
        if own:
            keeper.stop()
    blocks = {i: (got[i][0] - round_block if i in got else None) for i in ids}
    return {
        "n": n,
        "request_blocks": request_blocks,
        "round_block": round_block,
        "before_round": len(before),
        **_delays(blocks),
        "cancelled": {i: got[i][2] for i in ids if i in got and got[i][1] == "cancelled"},
    }
