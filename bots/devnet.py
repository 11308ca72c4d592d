"""Devnet tooling around the keeper, for its end-to-end tests, the demo and
the benchmark: run the keeper as a separate process, switch anvil between
automine and interval mining, open many positions fast, read back what the
keeper did, and measure blocks-to-liquidation.

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


def open_positions(node, protocol, specs, price_bound=None):
    """Mint, approve, deposit and open every spec's position (and set its
    TP/SL), as impersonated batches. `protocol` is scripts.deploy.Protocol.
    Returns {(trader, market_id): block number its open_position was mined in}."""
    engine, token = protocol.engine.address, protocol.token.address
    node.set_balances(sorted({s.trader for s in specs}))
    txs, opens = [], []
    for s in specs:
        funds = s.margin * 2 + 1_000 * USDC
        acceptable = (price_bound or (MAX_UINT >> 1)) if s.size > 0 else 0
        opens.append((s, len(txs) + 3))  # the open_position below
        txs += [
            (s.trader, token, R.calldata("mint(address,uint256)", ["address", "uint256"], [s.trader, funds])),
            (s.trader, token, R.calldata("approve(address,uint256)", ["address", "uint256"], [engine, MAX_UINT])),
            (s.trader, engine, R.calldata("deposit(uint256)", ["uint256"], [funds])),
            (s.trader, engine, R.calldata("open_position(uint256,int256,uint256,uint256)", ["uint256", "int256", "uint256", "uint256"],
                                          [s.market_id, s.size, s.margin, acceptable])),
        ]
        if s.take_profit or s.stop_loss:
            txs.append((s.trader, engine, R.calldata("set_tp_sl(uint256,uint256,uint256)", ["uint256", "uint256", "uint256"],
                                                     [s.market_id, s.take_profit, s.stop_loss])))
    receipts = node.send_as(txs)
    return {(s.trader, s.market_id): int(receipts[i]["blockNumber"], 16) for s, i in opens}


def provide_liquidity(node, protocol, lp, amount):
    """An LP deposits `amount` into the vault (the counterparty of every trade)."""
    vault, token = protocol.vault.address, protocol.token.address
    node.set_balances([lp])
    node.send_as([
        (lp, token, R.calldata("mint(address,uint256)", ["address", "uint256"], [lp, amount])),
        (lp, token, R.calldata("approve(address,uint256)", ["address", "uint256"], [vault, MAX_UINT])),
        (lp, vault, R.calldata("deposit(uint256,address)", ["uint256", "address"], [amount, lp])),
    ])


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

    def __init__(self, engine, *, account="TEST:3", state_file, log_file, network="ethereum:local:foundry",
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


def blocks_to_liquidation(protocol, n=200, *, node_uri, keeper_account="TEST:3", keeper=None, work_dir=".",
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
    done = [d for d in blocks.values() if d is not None]
    hist = {}
    for d in done:
        hist[d] = hist.get(d, 0) + 1
    missed = sum(1 for d in blocks.values() if d is None)
    return {
        "n": n,
        "price_block": price_block,
        "blocks": blocks,
        "histogram": dict(sorted(hist.items())),
        "max": max(done) if done and not missed else None,
        "missed": missed,
    }
