"""Benchmark: gas per operation against its target, where the gas goes,
and speed (model simulation, differential harness, keeper).

    ape run bench --network ethereum:local:foundry          # make bench
    ape run bench --network ethereum:local:foundry --update-snapshot

Gas comes from transaction receipts on anvil. Every scenario starts from the
same deployed protocol with open interest on both sides of BTC-PERP and a
moving funding index (evm_snapshot / evm_revert between scenarios). While
the gas scenarios run, mining is manual and every block is one second after
the previous one, so timestamps, funding, rounding branches and therefore
gas are the same on every machine and every run. Crowds of traders (ADL
targets, the positions the ADL completeness scan walks) are impersonated
addresses driven through raw `eth_sendTransaction`.

Each measured transaction is also traced (debug_traceTransaction) and its
gas split into buckets that sum to gasUsed: intrinsic, engine storage reads
and writes by variable, calls by callee, events, compute, refund
(`explain_tx`); a per-unit figure (gas per ADL target, per scanned position)
is split the same way from the difference of two runs.

The full run prints the tables and writes bench/results.json. `--quick`
measures the subset tests/bench/test_gas_snapshot.py compares with
bench/gas-snapshot.json (the same transactions on the same state, hence the
same numbers); `--update-snapshot` rewrites that file.
"""

import json
import os
import platform
import subprocess
import time
from pathlib import Path

import click
from ape import accounts, chain, networks
from ape.cli import ConnectedProviderCommand
from eth_utils import keccak, to_checksum_address

from scripts.deploy import deploy_protocol

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results.json"
SNAPSHOT = ROOT / "bench" / "gas-snapshot.json"

USDC = 10**6
WAD = 10**18
MAX_UINT = 2**256 - 1
TX_GAS = 12_000_000  # per-transaction gas limit for raw sends (block limit is 30M)
BTC, ETH = 0, 1
SNAPSHOT_TOLERANCE_BPS = 500  # the snapshot test fails above +5%

# Targets (gas). Rows without a target are reported only.
REQUEST_TARGET = 100_000
TARGETS = {
    "request order (open)": REQUEST_TARGET,
    "request order (increase)": REQUEST_TARGET,
    "request order (close, partial)": REQUEST_TARGET,
    "request order (close, full)": REQUEST_TARGET,
    "request order (remove margin)": REQUEST_TARGET,
    "execute order (open, new)": 170_000,
    "execute order (close, partial)": 140_000,
    "execute order (close, full)": 140_000,
    "execute TP/SL": 140_000,
    "liquidate (positive equity)": 180_000,
    "liquidate (bad debt, fund pays)": 180_000,
    "ADL: gas per target": 70_000,
    "ADL scan: gas per position (profitable, lower ranked)": 7_000,
    "ADL scan: gas per position (unprofitable)": 7_000,
}

ADL_TARGET_COUNTS = (1, 5, 20)
SCAN_SIZES = (10, 100, 1000)  # open positions on the opposite side (the target included)
SCAN_SIZES_QUICK = (10, 100)


# ---------------------------------------------------------------- chain plumbing


def crowd_address(tag, i):
    """A deterministic, random-looking address for the i-th crowd trader."""
    return to_checksum_address(keccak(f"backstop-bench:{tag}:{i}".encode())[12:])


class Rpc:
    """Raw JSON-RPC transactions from impersonated accounts (anvil).

    Mining is manual while a Rpc is open: `send` queues, `flush` mines
    blocks until the queue is empty and checks every receipt, `tx` mines one
    transaction alone. With every block one second after the previous,
    timestamps (hence funding, hence rounding branches, hence gas) do not
    depend on how fast this machine is."""

    BULK_GAS = 1_000_000  # declared gas of queued setup transactions (30 to a block)

    def __init__(self):
        self.req = networks.provider.make_request
        self.req("anvil_autoImpersonateAccount", [True])
        self.req("evm_setAutomine", [False])
        self.req("anvil_setBlockTimestampInterval", [1])
        self.pending = []
        self.funded = set()

    def close(self):
        try:
            self.flush()
        finally:
            self.req("anvil_removeBlockTimestampInterval", [])
            self.req("evm_setAutomine", [True])
            self.req("anvil_autoImpersonateAccount", [False])

    def send(self, sender, contract, method, *args, gas=BULK_GAS):
        """Queue a transaction; `flush` mines it and checks it succeeded."""
        address = str(getattr(sender, "address", sender))
        if address not in self.funded:
            self.req("anvil_setBalance", [address, hex(10**21)])
            self.funded.add(address)
        data = getattr(contract, method).encode_input(*args)
        tx = {"from": address, "to": contract.address, "data": "0x" + bytes(data).hex(), "gas": hex(gas)}
        h = self.req("eth_sendTransaction", [tx])
        self.pending.append((h, address, contract, method, args))
        return h

    def _receipt(self, h):
        return self.req("eth_getTransactionReceipt", [h])

    def flush(self):
        """Mine until every queued transaction is in a block; raise on any failure."""
        pending, self.pending = self.pending, []
        if not pending:
            return
        for _ in range(len(pending) + 1):
            if self._receipt(pending[-1][0]):
                break
            self.req("evm_mine", [])
        for h, address, contract, method, args in pending:
            r = self._receipt(h)
            if r is None:
                raise RuntimeError(f"{method}{args} from {address} was not mined")
            if int(r["status"], 16) != 1:
                raise RuntimeError(f"{method}{args} from {address} failed: {self._reason(address, contract, method, args)}")

    def _reason(self, address, contract, method, args):
        try:
            getattr(contract, method).call(*args, sender=address)
        except Exception as exc:  # noqa: BLE001 - the message is the point
            return getattr(exc, "revert_message", None) or str(exc)
        return "reverted (no longer reproducible)"

    def tx(self, sender, contract, method, *args):
        """Mine one transaction alone in the next block; return its receipt (dict)."""
        self.flush()
        h = self.send(sender, contract, method, *args, gas=TX_GAS)
        self.pending.pop()
        self.req("evm_mine", [])
        r = self._receipt(h)
        if r is None:
            raise RuntimeError(f"{method}{args} was not mined")
        if int(r["status"], 16) != 1:
            address = str(getattr(sender, "address", sender))
            raise RuntimeError(f"{method}{args} failed: {self._reason(address, contract, method, args)}")
        return r

    def snapshot(self):
        self.flush()
        return self.req("evm_snapshot", [])

    def restore(self, snap):
        self.flush()
        assert self.req("evm_revert", [snap]) is True, "evm_revert failed"


def event_count(receipt, contract, name):
    """How many `name` events the receipt holds (by topic 0)."""
    topic = "0x" + keccak(text=getattr(contract, name).abi.selector).hex()
    return sum(1 for log in receipt["logs"] if log["topics"] and log["topics"][0].lower() == topic)


# ---------------------------------------------------------------- where the gas goes

def engine_slots():
    """PerpEngine's storage slots by variable name, from the compiler's
    layout (modules flattened: positions._free -> "_free")."""
    import sys

    vyper = Path(sys.executable).parent / "vyper"
    out = subprocess.run([str(vyper), "--evm-version", "prague", "-f", "layout", "PerpEngine.vy"], cwd=ROOT / "contracts",
                         capture_output=True, text=True, check=True).stdout
    slots = {}
    for name, entry in json.loads(out)["storage_layout"].items():
        for var, info in (entry.items() if "slot" not in entry else [(name, entry)]):
            slots[var] = info["slot"]
    return slots


BUCKETS = {
    "_params": "market params (_params; _packed, 5 slots)",
    "_packed": "market params (_params; _packed, 5 slots)",
    "_state": "market state (_state: OI, costs, funding)",
    "_pos_a": "position (_pos_a/b/c)", "_pos_b": "position (_pos_a/b/c)", "_pos_c": "position (_pos_a/b/c)",
    "_members": "side set (_members, _member_index, _member_count)",
    "_member_count": "side set (_members, _member_index, _member_count)",
    "_member_index": "side set (_members, _member_index, _member_count)",
    "_free": "free collateral (_free)",
    "_adl_pending": "ADL pending job",
    "_orders": "order (_orders, 3 slots)",
    "_order_count": "order count (_order_count)",
    "_tp_sl_at": "TP/SL set time (_tp_sl_at)",
    "_pending": "pending-order word (_pending: last order id, deadline)",
}
SCALARS = "engine scalars (paused, market_count, vault, fund, feed scale, order expiry)"
FACETS = {"exits": "PerpExits", "orders": "PerpOrders", "admin": "PerpAdmin"}
MAX_LABELLED_ORDERS = 3_000  # order ids whose slots the breakdown names
CALLEES = {
    "token": "call token (transfer, balanceOf)",
    "feed": "call feed (latestRoundData)",
    "vault": "call vault (pay)",
    "insurance fund": "call insurance fund (cover)",
}


def _slot(base, *keys):
    for k in keys:
        base = int.from_bytes(keccak(base.to_bytes(32, "big") + k.to_bytes(32, "big")), "big")
    return base


def storage_labels(market_count, accounts_):
    """Engine storage slot (int) -> variable name, for the given accounts."""
    S = engine_slots()
    labels = {v: k for k, v in S.items()}
    for mid in range(market_count):
        labels.update({_slot(S["_params"], mid) + i: "_params" for i in range(13)})
        if "_packed" in S:
            labels.update({_slot(S["_packed"], mid) + i: "_packed" for i in range(5)})
        labels.update({_slot(S["_state"], mid) + i: "_state" for i in range(7)})
        labels.update({_slot(S["_adl_pending"], mid) + i: "_adl_pending" for i in range(6)})
        for side in (0, 1):
            key = mid * 2 + side
            labels[_slot(S["_member_count"], key)] = "_member_count"
            labels.update({_slot(S["_members"], key, i): "_members" for i in range(1000)})
    if "_orders" in S:
        for oid in range(1, MAX_LABELLED_ORDERS + 1):
            labels.update({_slot(S["_orders"], oid) + i: "_orders" for i in range(3)})
    for a in accounts_:
        a = int(str(a), 16)
        labels[_slot(S["_free"], a)] = "_free"
        for mid in range(market_count):
            for var in ("_pos_a", "_pos_b", "_pos_c", "_member_index", "_tp_sl_at", "_pending"):
                if var in S:
                    labels[_slot(S[var], a, mid)] = var
    return labels


def _step_costs(steps):
    """Gas of each step; a call's cost is everything up to its return."""
    n = len(steps)
    cost = [0] * n
    open_calls = []
    for k in range(n):
        d = steps[k]["depth"]
        while open_calls and steps[open_calls[-1]]["depth"] >= d:
            i = open_calls.pop()
            cost[i] = steps[i]["gas"] - steps[k]["gas"]
        if steps[k]["op"] in ("CALL", "STATICCALL", "DELEGATECALL", "CALLCODE", "CREATE", "CREATE2"):
            open_calls.append(k)
            continue
        if k + 1 < n and steps[k + 1]["depth"] == d:
            cost[k] = steps[k]["gas"] - steps[k + 1]["gas"]
        else:
            cost[k] = steps[k]["gasCost"]
    for i in open_calls:
        cost[i] = steps[i]["gasCost"]
    return cost


def explain_tx(receipt, labels, names):
    """Split a transaction's gas into buckets that sum to gasUsed:
    intrinsic, engine storage reads and writes by variable, external calls
    by callee, the delegatecalls into the facets (PerpExits, PerpOrders) and
    execute_order's call to the engine itself (execute_order_inner): the
    overhead of each such call is its own bucket, what runs inside it is
    split like the rest; events, transient storage, compute, and the refund
    for cleared slots."""
    req = networks.provider.make_request
    h = receipt["transactionHash"]
    trace = req("debug_traceTransaction", [h, {"enableMemory": False, "disableStorage": True}])
    steps = trace["structLogs"]
    data = bytes.fromhex(req("eth_getTransactionByHash", [h])["input"][2:])
    out = {}

    def add(key, gas):
        out[key] = out.get(key, 0) + gas

    add("intrinsic (21,000 + calldata)", 21_000 + sum(4 if x == 0 else 16 for x in data))
    cost = _step_costs(steps)
    # frames: depth -> (code role, runs on engine storage)
    frames = {1: ("engine", True)}
    inner = {}  # delegatecall / self-call step index -> gas spent inside
    bucket_of = {}  # that step index -> its overhead bucket
    stack_of_delegates = []
    for k, st in enumerate(steps):
        d, op = st["depth"], st["op"]
        while stack_of_delegates and steps[stack_of_delegates[-1]]["depth"] >= d:
            stack_of_delegates.pop()
        role, on_engine = frames.get(d, ("?", False))
        if not on_engine:
            continue
        if d > 1 and stack_of_delegates:
            inner[stack_of_delegates[-1]] = inner.get(stack_of_delegates[-1], 0) + cost[k]
        if op in ("CALL", "STATICCALL", "DELEGATECALL"):
            target = names.get("0x" + st["stack"][-2][2:].rjust(40, "0")[-40:].lower(), "other")
            if op == "DELEGATECALL" or (op == "CALL" and target == "engine"):
                # a facet's code on the engine's storage, or the engine calling itself
                frames[d + 1] = (target, True)
                stack_of_delegates.append(k)
                bucket_of[k] = (f"delegatecall to {FACETS.get(target, target)} (overhead)" if op == "DELEGATECALL"
                                else "call engine.execute_order_inner (overhead)")
                add(bucket_of[k], cost[k])
            else:
                frames[d + 1] = (target, False)
                add(CALLEES.get(target, f"call {target}"), cost[k])
        elif op == "SLOAD":
            var = labels.get(int(st["stack"][-1], 16), "?")
            add("read " + BUCKETS.get(var, SCALARS), cost[k])
        elif op == "SSTORE":
            var = labels.get(int(st["stack"][-1], 16), "?")
            kind = " (new slots)" if st["gasCost"] >= 20_000 else ""
            add("write " + BUCKETS.get(var, SCALARS) + kind, cost[k])
        elif op.startswith("LOG"):
            add("events", cost[k])
        elif op in ("TLOAD", "TSTORE"):
            add("transient storage (lock, ADL marks)", cost[k])
        else:
            add("compute (arithmetic, memory, ABI, jumps)", cost[k])
    # the delegatecall's cost includes what ran inside it, counted above
    for i, g in inner.items():
        add(bucket_of[i], -g)
    gas_used = int(receipt["gasUsed"], 16)
    add("refund (cleared slots)", gas_used - sum(out.values()))
    return out


# ---------------------------------------------------------------- scenarios


class Bench:
    """One deployed protocol plus the actors every scenario uses."""

    def __init__(self, progress=None, explain=False):
        self.explain = explain
        self.breakdowns = {}
        self.progress = progress
        tests = accounts.test_accounts
        self.owner, self.trader, self.other_trader, self.keeper, self.lp = (tests[i] for i in range(5))
        self.p = deploy_protocol(self.owner)
        self.e = self.p.engine
        self.feed_unit = 10 ** self.p.feeds[0].decimals()
        self.gas = {}
        self.fits = {}
        self.rpc = Rpc()
        try:
            self._setup()
            self.base = self.rpc.snapshot()
        except BaseException:
            self.rpc.close()
            raise

    # ------------------------------------------------------------ helpers
    def fund(self, who, amount):
        """Mint `amount` to `who` and approve the engine (no deposit)."""
        self.rpc.send(who, self.p.token, "mint", who, amount)
        self.rpc.send(who, self.p.token, "approve", self.e.address, MAX_UINT)

    def trader_with(self, who, deposit):
        self.fund(who, deposit)
        self.rpc.send(who, self.e, "deposit", deposit)

    def acceptable(self, mid, size):
        """A bound 10% worse than the feed's answer for a buy; 0 for a sell."""
        if size < 0:
            return 0
        return self.p.feeds[mid].latestRoundData()[1] * (WAD // self.feed_unit) * 11 // 10

    def open(self, who, mid, size, margin):
        """Queue an opening (or increasing) order at the current price, 10%
        slippage bound; `execute_orders` executes every queued order."""
        self.rpc.send(who, self.e, "request_order", mid, size, margin, self.acceptable(mid, size))

    def execute_orders(self):
        """Mine what is queued, publish a later round on every feed, then
        execute every pending order from the keeper; assert each executed."""
        self.rpc.flush()
        pending = []  # every earlier order was executed: the pending ones are the last ids
        oid = self.e.order_count()
        while oid >= 1 and int(self.e.get_order(oid).account, 16) != 0:
            pending.append(oid)
            oid -= 1
        if not pending:
            return
        self.refresh_prices()
        hashes = [self.rpc.send(self.keeper, self.e, "execute_order", oid) for oid in sorted(pending)]
        self.rpc.flush()
        for h in hashes:
            rc = self.rpc._receipt(h)
            assert event_count(rc, self.e, "OrderExecuted") == 1, f"order not executed: {h}"

    def restamp(self, mid):
        """A new round at the same answer: the later price an order waits for."""
        self.rpc.tx(self.owner, self.p.feeds[mid], "set_answer", self.p.feeds[mid].latestRoundData()[1])

    def order(self, who, mid, size, margin, acceptable, names=(None, None)):
        """Request, one later round, execution by the keeper (each mined
        alone); `names` = (request row, execution row) to measure, or None.
        Asserts the order executed. Returns the execution receipt."""
        request, execution = names
        if request:
            self.measure(request, who, self.e, "request_order", mid, size, margin, acceptable)
        else:
            self.rpc.tx(who, self.e, "request_order", mid, size, margin, acceptable)
        oid = self.e.order_count()
        self.restamp(mid)
        if execution:
            rc = self.measure(execution, self.keeper, self.e, "execute_order", oid)
        else:
            rc = self.rpc.tx(self.keeper, self.e, "execute_order", oid)
        assert event_count(rc, self.e, "OrderExecuted") == 1, f"order {oid} was not executed"
        return rc

    def set_price(self, mid, usd):
        self.rpc.tx(self.owner, self.p.feeds[mid], "set_answer", usd * self.feed_unit)

    def refresh_prices(self):
        """A new round at the same answers (long setups outlive max_price_age)."""
        self.rpc.flush()
        for feed in self.p.feeds:
            self.rpc.tx(self.owner, feed, "set_answer", feed.latestRoundData()[1])

    def fund_balance(self):
        return self.p.token.balanceOf(self.p.insurance_fund)

    def top_up_fund(self, target):
        """Mint into the insurance fund until it holds `target`."""
        have = self.fund_balance()
        assert have <= target, f"insurance fund already holds {have} > {target}: the scenario cannot be built"
        if target > have:
            self.rpc.tx(self.owner, self.p.token, "mint", self.p.insurance_fund.address, target - have)

    def record(self, name, gas):
        self.gas[name] = gas

    def measure(self, name, sender, contract, method, *args, explain=True):
        """Mine one transaction, record its gas under `name`; with `explain`,
        trace it and record where the gas goes."""
        rc = self.rpc.tx(sender, contract, method, *args)
        self.record(name, int(rc["gasUsed"], 16))
        if self.explain and explain:
            self.breakdowns[name] = explain_tx(rc, self.labels(), self.names())
        return rc

    def explain_slope(self, name, lo, hi, steps):
        """Where one more unit costs: (breakdown(hi) - breakdown(lo)) / steps."""
        if lo in self.breakdowns and hi in self.breakdowns:
            a, b = self.breakdowns[lo], self.breakdowns[hi]
            self.breakdowns[name] = {k: round((b.get(k, 0) - a.get(k, 0)) / steps) for k in {**a, **b}}

    def names(self):
        """Contract addresses by role, for labelling external calls."""
        p = self.p
        return {
            p.token.address.lower(): "token",
            p.vault.address.lower(): "vault",
            p.insurance_fund.address.lower(): "insurance fund",
            p.exits.address.lower(): "exits",
            p.orders.address.lower(): "orders",
            p.admin.address.lower(): "admin",
            p.engine.address.lower(): "engine",
            **{f.address.lower(): "feed" for f in p.feeds},
        }

    def labels(self):
        """Engine storage slot -> variable name, for the accounts in play."""
        if getattr(self, "_labels", None) is None:
            known = [a.address for a in accounts.test_accounts] + [
                crowd_address(tag, i) for tag, n in (("background", 4), ("adl", 20), ("scan-profitable", 1000),
                                                      ("scan-unprofitable", 1000)) for i in range(n)]
            self._labels = storage_labels(self.e.market_count(), known)
        return self._labels

    def _task(self, label, total):
        return self.progress.add_task(label, total=total) if self.progress else None

    def _advance(self, task, n=1):
        if task is not None:
            self.progress.advance(task, n)

    # ------------------------------------------------------------ base state
    def _setup(self):
        """LP liquidity in the vault; the keeper holds free collateral (so its
        reward lands on a non-zero slot); open interest on both sides of
        BTC-PERP, longs heavier (funding accrues on every touch)."""
        self.rpc.send(self.lp, self.p.token, "mint", self.lp, 100_000_000 * USDC)
        self.rpc.send(self.lp, self.p.token, "approve", self.p.vault.address, MAX_UINT)
        # through the vault's epochs (ERC-7540): request, later rounds, settle, claim
        self.rpc.tx(self.lp, self.p.vault, "requestDeposit", 50_000_000 * USDC, self.lp, self.lp)
        self.refresh_prices()
        self.rpc.tx(self.lp, self.p.vault, "settle")
        self.rpc.tx(self.lp, self.p.vault, "deposit", 50_000_000 * USDC, self.lp)
        for who in (self.trader, self.other_trader):
            self.fund(who, 10_000_000 * USDC)
        self.trader_with(self.keeper, 1_000 * USDC)
        for i, size in enumerate((6, 6, -5, -5)):
            who = crowd_address("background", i)
            self.trader_with(who, 20_000 * USDC)
            self.rpc.flush()
            # a block or more apart: the funding index and its sums are
            # non-zero, as on any live market
            self.order(who, BTC, size * WAD // 10, 8_000 * USDC, self.acceptable(BTC, size))
        self.rpc.flush()

    # ------------------------------------------------------------ lifecycle
    def lifecycle(self):
        """Deposit, withdraw, the orders (request, then execution by the
        keeper after a later round) that open, increase, remove margin and
        close; add margin, TP/SL and its execution."""
        r, e, t, m, o = self.rpc, self.e, self.trader, self.measure, self.order
        m("deposit (first)", t, e, "deposit", 100_000 * USDC)
        m("deposit (top-up)", t, e, "deposit", 10_000 * USDC)
        m("withdraw", t, e, "withdraw", 5_000 * USDC)
        o(t, BTC, WAD // 10, 1_000 * USDC, 81_000 * WAD, ("request order (open)", "execute order (open, new)"))
        o(t, BTC, WAD // 10, 1_000 * USDC, 81_000 * WAD, ("request order (increase)", "execute order (increase)"))
        m("add margin", t, e, "add_margin", BTC, 500 * USDC)
        o(t, BTC, 0, -100 * USDC, 0, ("request order (remove margin)", "execute order (remove margin)"))
        m("set TP/SL", t, e, "set_tp_sl", BTC, 90_000 * WAD, 76_000 * WAD)
        o(t, BTC, -WAD // 10, 0, 79_000 * WAD, ("request order (close, partial)", "execute order (close, partial)"))
        o(t, BTC, -WAD // 10, 0, 79_000 * WAD, ("request order (close, full)", "execute order (close, full)"))
        assert e.get_position(t, BTC).size == 0
        # TP/SL execution: a fresh long with a take-profit at 82,000, then a
        # round later than the set_tp_sl block.
        o(t, BTC, WAD // 10, 1_000 * USDC, 81_000 * WAD)
        r.tx(t, e, "set_tp_sl", BTC, 82_000 * WAD, 0)
        self.set_price(BTC, 82_000)
        rc = m("execute TP/SL", self.keeper, e, "execute_tp_sl", t, BTC)
        assert event_count(rc, e, "TpSlExecuted") == 1
        r.restore(self.base)
        self.base = r.snapshot()

    # ------------------------------------------------------------ liquidation
    def liquidations(self):
        """A 1 BTC long at 80,000 with 1,200 margin (about 67x)."""
        r, e, t = self.rpc, self.e, self.trader
        r.tx(t, e, "deposit", 10_000 * USDC)
        self.order(t, BTC, WAD, 1_200 * USDC, 81_000 * WAD)
        opened = r.snapshot()

        # equity 1,200 - 900 = 300 > 0, below maintenance (395.5)
        self.set_price(BTC, 79_100)
        rc = self.measure("liquidate (positive equity)", self.keeper, e, "liquidate", t, BTC, [])
        assert event_count(rc, e, "PositionLiquidated") == 1 and event_count(rc, e, "InsuranceFundDrawn") == 0
        r.restore(opened)

        # equity 1,200 - 2,000 < 0; the fund holds enough
        self.top_up_fund(10_000 * USDC)
        self.set_price(BTC, 78_000)
        rc = self.measure("liquidate (bad debt, fund pays)", self.keeper, e, "liquidate", t, BTC, [])
        assert event_count(rc, e, "InsuranceFundDrawn") == 1 and event_count(rc, e, "AutoDeleveraged") == 0
        r.restore(self.base)
        self.base = r.snapshot()

    def adl(self):
        """ADL with k = 1, 5, 20 targets: k ranked 0.05 BTC shorts (margins
        100, 110, ..., so scores differ) plus the two background shorts
        (lower ranked) on the opposite side; a 1 BTC long (67x) goes bankrupt
        at 75,000 and the fund is topped up so that the uncovered debt needs
        k - 1/2 targets' worth of size. The slope over k is the gas of one
        more target, its (cheap) skip in the completeness scan included."""
        r, e, t = self.rpc, self.e, self.trader
        size = WAD // 20
        r.tx(t, e, "deposit", 10_000 * USDC)
        self.order(t, BTC, WAD, 1_200 * USDC, 81_000 * WAD)
        targets, points = [], []
        for k in ADL_TARGET_COUNTS:
            for i in range(len(targets), k):
                who = crowd_address("adl", i)
                self.trader_with(who, 1_000 * USDC)
                self.open(who, BTC, -size, (100 + 10 * i) * USDC)
                targets.append(who)
            self.execute_orders()
            ready = r.snapshot()
            self.set_price(BTC, 75_000)
            ranked = list(e.adl_ranking(t, BTC))[:k]
            assert sorted(ranked) == sorted(targets), "the targets must outrank the background shorts"
            debt = -e.equity(t, BTC)
            # uncovered = debt * (k - 1/2) / 20 (the bankrupt size is 20 targets' worth)
            self.top_up_fund(debt - debt * (2 * k - 1) // 40)
            name = f"liquidate + ADL, {k} target{'s' if k > 1 else ''}"
            rc = self.measure(name, self.keeper, e, "liquidate", t, BTC, ranked)
            got = event_count(rc, e, "AutoDeleveraged")
            assert got == k, f"ADL with {k} targets filled {got}"
            points.append((k, self.gas[name]))
            r.restore(ready)
        a, b = fit(points)
        self.fits["adl_per_target"] = {"a": a, "b": b, "points": points}
        self.record("ADL: gas per target", round(b))
        self.explain_slope("ADL: gas per target", "liquidate + ADL, 1 target", "liquidate + ADL, 5 targets", 4)
        r.restore(self.base)
        self.base = r.snapshot()

    def scan(self, sizes, profitable):
        """The ADL completeness scan: on ETH-PERP a 1 ETH long (75x) goes
        bankrupt at 2,700; one 1 ETH short target (75x) fills half of it;
        N - 1 other shorts (0.1 ETH, 3x) are scanned: opened at 3,000 they are
        in profit but rank lower; opened at 2,700 they are not in profit."""
        r, e = self.rpc, self.e
        tag = "scan-profitable" if profitable else "scan-unprofitable"
        target, bankrupt = crowd_address(tag, 0), self.other_trader
        self.trader_with(target, 1_000 * USDC)
        self.open(target, ETH, -WAD, 40 * USDC)
        self.execute_orders()
        r.tx(bankrupt, e, "deposit", 1_000 * USDC)
        self.order(bankrupt, ETH, WAD, 40 * USDC, 3_100 * WAD)
        if not profitable:
            self.set_price(ETH, 2_700)
        task = self._task(f"scan, {'profitable' if profitable else 'unprofitable'} fillers", max(sizes) - 1)
        have, points = 1, []
        for n in sizes:
            for i in range(have, n):
                who = crowd_address(tag, i)
                self.trader_with(who, 200 * USDC)
                self.open(who, ETH, -WAD // 10, 100 * USDC)
                self._advance(task)
                if i % 100 == 99:
                    self.execute_orders()
            have = n
            self.execute_orders()
            assert e.position_count(ETH, False) == n
            ready = r.snapshot()
            self.set_price(ETH, 2_700)
            ranked = list(e.adl_ranking(bankrupt, ETH))
            assert ranked[0] == target
            debt = -e.equity(bankrupt, ETH)
            self.top_up_fund(debt - debt // 2)
            label = "profitable" if profitable else "unprofitable"
            name = f"liquidate + ADL, 1 target, {n} {label} scanned"
            rc = self.measure(name, self.keeper, e, "liquidate", bankrupt, ETH, [target], explain=n <= 100)
            assert event_count(rc, e, "AutoDeleveraged") == 1
            points.append((n, self.gas[name]))
            r.restore(ready)
        a, b = fit(points)
        key = "scan_profitable" if profitable else "scan_unprofitable"
        self.fits[key] = {"a": a, "b": b, "points": points}
        label = "profitable, lower ranked" if profitable else "unprofitable"
        self.record(f"ADL scan: gas per position ({label})", round(b))
        lo, hi = sizes[0], sizes[1]
        tag = "profitable" if profitable else "unprofitable"
        self.explain_slope(f"ADL scan: gas per position ({label})", f"liquidate + ADL, 1 target, {lo} {tag} scanned",
                           f"liquidate + ADL, 1 target, {hi} {tag} scanned", hi - lo)
        r.restore(self.base)
        self.base = r.snapshot()

    def close(self):
        try:
            self.rpc.restore(self.base)
        finally:
            self.rpc.close()


def fit(points):
    """Least-squares line through (x, y): returns (a, b) of y = a + b * x."""
    n = len(points)
    sx = sum(x for x, _ in points)
    sy = sum(y for _, y in points)
    sxx = sum(x * x for x, _ in points)
    sxy = sum(x * y for x, y in points)
    b = (n * sxy - sx * sy) / (n * sxx - sx * sx)
    return (sy - b * sx) / n, b


def measure_gas(quick=False, progress=None, explain=False):
    """Run every gas scenario on the connected network; return the Bench
    (its `gas` dict maps operation -> gas, `fits` the linear fits).
    `quick` skips the 1,000-position scan and the unprofitable series."""
    b = Bench(progress, explain)
    steps = [b.lifecycle, b.liquidations, b.adl, lambda: b.scan(SCAN_SIZES_QUICK if quick else SCAN_SIZES, True)]
    if not quick:
        steps.append(lambda: b.scan(SCAN_SIZES, False))
    task = b._task("gas scenarios", len(steps))
    try:
        for step in steps:
            step()
            b._advance(task)
    finally:
        b.close()
    return b


# ---------------------------------------------------------------- speed

SIM_ACCOUNTS, SIM_TICKS = 10_000, 100
LEVERAGES = (2, 3, 5, 10, 20, 25, 50, 75, 100)


def _addr(i):
    return "0x%040x" % (0xB0B0_0000 + i)


def build_world(n_accounts, seed=7):
    """A model World with `n_accounts` open positions (one each) on enough
    copies of the devnet BTC-PERP that no side exceeds MAX_SIDE_POSITIONS.
    Positions are written with positions._write (the verbs' transactional
    wrapper deep-copies the world on every call, which is not what is being
    measured here)."""
    import random

    from model import World
    from model import perp_engine as PE
    from model import positions as P
    from scripts import config as cfg

    rng = random.Random(seed)
    conf = cfg.load("local")
    btc = conf["markets"][0]
    per_market = 2 * P.MAX_SIDE_POSITIONS
    n_markets = -(-n_accounts // per_market)
    owner = _addr(0xFFFF)
    w = World(engine=_addr(0xE0), vault=_addr(0xE1), fund=_addr(0xE2), owner=owner, token_decimals=6, now=1_800_000_000)
    w.call(owner, "initialize", _addr(0xE1), _addr(0xE2))
    fd = conf.get("feed_decimals", 8)
    for mid in range(n_markets):
        feed = _addr(0xF000 + mid)
        w.add_feed(feed, fd, btc["initial_price"] * 10**fd)
        w.call(owner, "add_market", cfg.market_params(btc, feed, 6))
    books = {mid: [] for mid in range(n_markets)}
    for k in range(n_accounts):
        mid = k // per_market
        price = P._price(w, mid, False)
        size = (rng.randrange(1, 100) * WAD // 100) * (1 if k % 2 == 0 else -1)
        lev = LEVERAGES[rng.randrange(len(LEVERAGES))]
        notional = abs(size) * price // w.e.scale
        pos = P.Position(size=size, entry_price=price, margin=notional // lev + 1, funding_index=w.e.state[mid].funding_index)
        P._write(w, _addr(k), mid, P.Position(), pos)
        books[mid].append(_addr(k))
    return w, books, PE


def speed_model(n_accounts=SIM_ACCOUNTS, ticks=SIM_TICKS, progress=None):
    """accounts x ticks per second for what a keeper evaluates each tick:
    (a) model.perp_engine.is_liquidatable for every position (the view,
    as the differential tests call it); (b) a lean loop over the same
    positions with model.margin and model.funding directly, with the price
    and funding index computed once per market and tick (what bots/keeper
    can do). Each tick moves every market by a seeded random step of up to
    +-2%, the clock by 1 s. Both loops must find the same liquidatable set."""
    import random

    from model import funding
    from model import margin as M
    from model import positions as P

    w, books, PE = build_world(n_accounts)
    rng = random.Random(11)
    fd = 10**8
    paths = []
    for _ in range(ticks):
        paths.append({mid: rng.randrange(-200, 201) for mid in books})
    task = progress.add_task(f"model: {n_accounts:,} accounts x {ticks} ticks (view, then lean)", total=2 * ticks) if progress else None
    results = {}
    start_time = w.now
    start_answers = {mid: P._price(w, mid, False) // (10**18 // fd) for mid in books}
    for mode in ("view", "lean"):
        t_model = start_time
        answers = dict(start_answers)
        hits = []
        elapsed = 0.0
        for tick in range(ticks):
            t_model += 1
            w.now = t_model
            for mid, step in paths[tick].items():
                answers[mid] = answers[mid] * (10_000 + step) // 10_000
                w.set_answer(w.e.params[mid].feed, answers[mid], now=t_model)
            t0 = time.perf_counter()
            n_hit = 0
            if mode == "view":
                for mid, accts in books.items():
                    for a in accts:
                        if PE.is_liquidatable(w, a, mid):
                            n_hit += 1
            else:
                scale = w.e.scale
                for mid, accts in books.items():
                    price = P._price(w, mid, False)
                    idx, borrow = P._indices(w, mid, price)
                    mmf = w.e.params[mid].mmf
                    positions = w.e.positions
                    for a in accts:
                        pos = positions[(a, mid)]
                        size = pos.size
                        eq = pos.margin - funding.owed(size, funding.side_index(size, idx, borrow), pos.funding_index, scale) + M.upnl(size, pos.entry_price, price, scale)
                        if eq < M.requirement(size, price, mmf, scale):
                            n_hit += 1
            elapsed += time.perf_counter() - t0
            hits.append(n_hit)
            if task is not None:
                progress.advance(task)
        results[mode] = {"seconds": elapsed, "checks_per_second": n_accounts * ticks / elapsed, "liquidatable_per_tick": hits}
    assert results["view"]["liquidatable_per_tick"] == results["lean"]["liquidatable_per_tick"], "the lean loop disagrees with the view"
    assert max(results["view"]["liquidatable_per_tick"]) > 0, "no tick made anything liquidatable: the scenario tests nothing"
    for r in results.values():
        r["liquidatable_max"] = max(r.pop("liquidatable_per_tick"))
    return {"accounts": n_accounts, "ticks": ticks, **results}


def speed_twin_anvil(steps=60, check_every=0, progress=None):
    """Differential steps per second on anvil with scripts.twin.Twin: one
    step is one verb run on chain (ape transaction) and on the model at the
    same timestamp, revert reasons compared; `check_every` > 0 adds
    Twin.assert_same (every stored value and view) every that many steps."""
    from scripts.twin import Twin, mirror_world

    tests = accounts.test_accounts
    owner, trader, lp = tests[0], tests[1], tests[4]
    snap = chain.snapshot()
    try:
        p = deploy_protocol(owner)
        twin = Twin(p, mirror_world(p, owner), [owner, trader, lp])
        twin.fund(lp, 10_000_000 * USDC)
        twin.act(lp, "vault.deposit", 5_000_000 * USDC, lp)
        twin.fund(trader, 1_000_000 * USDC)
        twin.act(trader, "deposit", 500_000 * USDC)
        task = progress.add_task(f"twin on anvil ({'assert_same every %d' % check_every if check_every else 'verbs only'})", total=steps) if progress else None
        t0 = time.perf_counter()
        for i in range(steps):
            # one step is one whole order: request, a later round, execution
            if i % 2 == 0:
                ok, reason = twin.order(trader, BTC, WAD // 10, 1_000 * USDC, 81_000 * WAD, owner)
            else:
                ok, reason = twin.order(trader, BTC, -WAD // 10, 0, 0, owner)
            assert ok, reason
            if check_every and (i + 1) % check_every == 0:
                twin.assert_same()
            if task is not None:
                progress.advance(task)
        elapsed = time.perf_counter() - t0
    finally:
        chain.restore(snap)
    return {"steps": steps, "seconds": elapsed, "steps_per_second": steps / elapsed, "assert_same_every": check_every}


def speed_twin_inprocess(steps=200, progress=None):
    """The same open/close twin loop in process: titanoboa (py-evm) through
    tests/stateful/backends.BoaBackend, against a model World built to
    mirror it (the fallback when the state machine cannot run)."""
    _repo_on_path()
    from tests.stateful.backends import BoaBackend
    from model import World
    from model.fixed_point import Revert

    from scripts import config as cfg

    conf = cfg.load("local")
    be = BoaBackend(["owner", "trader", "lp"])
    a = be.accounts
    t = be.head_time()
    w = World(engine=be.addresses["engine"], vault=be.addresses["vault"], fund=be.addresses["fund"], owner=a["owner"],
              token_decimals=6, now=t, token_address=be.addresses["token"])
    w.call(a["owner"], "initialize", be.addresses["vault"], be.addresses["fund"])
    for i, params in enumerate(be.params):
        w.add_feed(be.addresses[f"feed{i}"], conf.get("feed_decimals", 8), conf["markets"][i]["initial_price"] * 10 ** conf.get("feed_decimals", 8))
        w.call(a["owner"], "add_market", params)

    def step(sender, verb, *args):
        nonlocal t
        t += 1
        chain_reason = be.send(sender, verb, list(args), t)
        try:
            if verb == "token.mint":
                w.mint(*args)
            elif verb == "token.approve":
                w.approve(sender, *args)
            else:
                w.call(sender, verb, *args, now=t)
            model_reason = None
        except Revert as exc:
            model_reason = exc.reason or ""
        assert chain_reason == model_reason, f"{verb}{args}: chain {chain_reason!r}, model {model_reason!r}"

    step(a["lp"], "token.mint", a["lp"], 10_000_000 * USDC)
    step(a["lp"], "token.approve", be.addresses["vault"], MAX_UINT)
    step(a["lp"], "vault.deposit", 5_000_000 * USDC, a["lp"])
    step(a["trader"], "token.mint", a["trader"], 1_000_000 * USDC)
    step(a["trader"], "token.approve", be.addresses["engine"], MAX_UINT)
    step(a["trader"], "deposit", 500_000 * USDC)
    task = progress.add_task("twin in process (titanoboa)", total=steps) if progress else None
    t0 = time.perf_counter()
    feed = be.addresses["feed0"]
    answer = conf["markets"][0]["initial_price"] * 10 ** conf.get("feed_decimals", 8)
    for i in range(steps):
        # one step is one whole order: request, a later round (the model's
        # feed follows), execution by the owner
        size = WAD // 10 if i % 2 == 0 else -WAD // 10
        step(a["trader"], "request_order", BTC, size, 1_000 * USDC if size > 0 else 0, 81_000 * WAD if size > 0 else 0)
        t += 1
        assert be.send(a["owner"], "feed0.set_answer", [answer], t) is None
        w.set_answer(feed, answer, now=t)
        step(a["owner"], "execute_order", w.e.order_count)
        if task is not None:
            progress.advance(task)
    elapsed = time.perf_counter() - t0
    assert w.e.free[a["trader"]] == be.contracts["engine"].free_collateral(a["trader"]), "model and boa disagree"
    return {"steps": steps, "seconds": elapsed, "steps_per_second": steps / elapsed}


def speed_keeper(n=200, progress=None):
    """Blocks from a price update until the last of `n` positions that
    became liquidatable at once is liquidated, with bots/keeper.py running
    as its own process and anvil mining a block a second
    (bots/devnet.blocks_to_liquidation). None when the keeper is missing."""
    try:
        from bots import devnet
    except ImportError:
        return None
    import tempfile

    tests = accounts.test_accounts
    snap = chain.snapshot()
    task = progress.add_task(f"keeper: {n} positions liquidatable at once (interval mining)", total=None) if progress else None
    try:
        p = deploy_protocol(tests[0])
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            r = devnet.blocks_to_liquidation(p, n=n, node_uri=networks.provider.uri, work_dir=tmp)
            r["seconds"] = time.perf_counter() - t0
    finally:
        chain.restore(snap)
        if task is not None:
            progress.remove_task(task)
    r.pop("blocks", None)
    return r


def speed_orders(n=200, progress=None):
    """How many blocks after the first later price round each of `n` orders
    was executed, with bots/keeper.py running as its own process and anvil
    mining a block a second (bots/devnet.blocks_to_execution: the traders
    request while the keeper runs, then one round at the same answer). The
    goal is 1 for every order: the first block after that round."""
    from bots import devnet
    import tempfile

    tests = accounts.test_accounts
    snap = chain.snapshot()
    task = progress.add_task(f"keeper: {n} orders waiting for a later round (interval mining)", total=None) if progress else None
    try:
        p = deploy_protocol(tests[0])
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            r = devnet.blocks_to_execution(p, n=n, node_uri=networks.provider.uri, work_dir=tmp)
            r["seconds"] = time.perf_counter() - t0
            per_block = {}
            for oid, d in r["blocks"].items():
                if d is not None:
                    per_block[d] = per_block.get(d, 0) + 1
            gas = networks.provider.make_request("eth_getBlockByNumber", [hex(r["round_block"] + 1), False])
            r["first_block_gas_used"] = int(gas["gasUsed"], 16)
            r["block_gas_limit"] = int(gas["gasLimit"], 16)
    finally:
        chain.restore(snap)
        if task is not None:
            progress.remove_task(task)
    r.pop("blocks", None)
    r["histogram"] = {str(k): v for k, v in r["histogram"].items()}  # JSON keys
    return r


def order_latency_table(r):
    """The distribution of blocks from the first later round to execution."""
    from rich.table import Table

    table = Table(title=f"Orders: blocks from the first later price round to execution ({r['n']} orders, 1 s blocks)")
    table.add_column("blocks after the round", justify="right")
    table.add_column("orders", justify="right")
    table.add_column("share", justify="right")
    for d, count in sorted(r["histogram"].items(), key=lambda kv: int(kv[0])):
        table.add_row(("1 (goal)" if int(d) == 1 else str(d)), str(count), f"{count * 100 / r['n']:.0f}%")
    if r.get("missed"):
        table.add_row("never", str(r["missed"]), f"{r['missed'] * 100 / r['n']:.0f}%")
    table.caption = (f"round in block {r['round_block']} (requests in {r['request_blocks']}); executed before the round: "
                     f"{r['before_round']}; cancelled: {len(r.get('cancelled') or {})}; first block after the round used "
                     f"{r.get('first_block_gas_used', 0):,} of {r.get('block_gas_limit', 0):,} gas")
    return table


def _repo_on_path():
    """Make `tests` this repository's package: site-packages holds an
    unrelated top-level `tests` (py-multihash ships one) that `ape run`'s
    sys.path can put first."""
    import sys

    mod = sys.modules.get("tests")
    if mod is not None and Path(getattr(mod, "__file__", "") or "").parent != ROOT / "tests":
        for name in [n for n in sys.modules if n == "tests" or n.startswith("tests.")]:
            del sys.modules[name]
    if sys.path[:1] != [str(ROOT)]:
        sys.path.insert(0, str(ROOT))


def speed_harness(kind, examples=10, steps=30, progress=None, workers=1):
    """Steps per second of the differential state machine
    (tests/stateful/machine.py: one step is one rule, its calls on chain and
    on the model, then the comparison) on `kind` = "anvil", "boa" or "revm";
    `workers` > 1 forks that many revm workers (tests/stateful/parallel.py)
    and reports their aggregate. Setup (compiling, deploying, mirroring,
    funding the actors) is not timed."""
    from collections import Counter

    from hypothesis import HealthCheck, settings

    _repo_on_path()
    from tests.stateful.machine import ANVIL_ROLES, ROLES, Session, run

    task = progress.add_task(f"differential machine on {kind} x{workers} ({examples} examples x {steps} steps)",
                             total=None) if progress else None
    snap = chain.snapshot() if kind == "anvil" else None
    try:
        if kind == "anvil":
            from tests.stateful.backends import AnvilBackend

            roles = {name: accounts.test_accounts[i] for name, i in ANVIL_ROLES.items()}
            session = Session(AnvilBackend(deploy_protocol(roles["owner"]), roles))
        elif kind == "boa":
            from tests.stateful.backends import BoaBackend

            session = Session(BoaBackend(ROLES))
        else:
            from tests.stateful.backends import RevmBackend

            session = Session(RevmBackend(ROLES))
        stats = Counter()
        failure = None
        config = settings(max_examples=examples, stateful_step_count=steps, deadline=None, database=None,
                          suppress_health_check=list(HealthCheck))
        try:
            if workers > 1:
                from tests.stateful.parallel import run_parallel

                stats, failures = run_parallel(session, config, examples * steps // 2, workers, seed0=1)
                failure = failures[0].splitlines()[0][:200] if failures else None
            else:
                run(session, config, stats)
        except AssertionError as exc:
            # a property the machine checks failed: the speed so far still
            # stands; the failure is reported with it (its owner's suites fail on it)
            failure = str(exc).splitlines()[0][:200]
    finally:
        if snap is not None:
            chain.restore(snap)
        if task is not None:
            progress.remove_task(task)
    sec = stats["seconds"]
    assert stats["steps"] > 0, f"the machine ran no step: {failure}"
    out = {"backend": kind, "examples": stats["examples"], "steps": stats["steps"], "calls": stats["calls"],
           "seconds": sec, "steps_per_second": stats["steps"] / sec, "calls_per_second": stats["calls"] / sec,
           "workers": workers}
    if failure:
        out["failure"] = failure
    return out


def _pending(exc):
    return {"pending": f"{type(exc).__name__}: {exc}"[:300]}


def measure_speed(progress=None, accounts_=SIM_ACCOUNTS, ticks=SIM_TICKS):
    """Every speed figure; a piece another team owns that cannot run yet is
    reported as pending (with the reason) instead of failing the run."""
    out = {"model": speed_model(accounts_, ticks, progress)}
    try:
        out["harness_anvil"] = speed_harness("anvil", progress=progress)
    except Exception as exc:  # noqa: BLE001 - tests/stateful is another team's, in flux
        out["harness_anvil"] = _pending(exc)
        out["twin_anvil"] = speed_twin_anvil(60, 0, progress)
        out["twin_anvil_assert_same"] = speed_twin_anvil(20, 1, progress)
    for key, workers in (("harness_revm", 1), ("harness_revm_parallel", os.cpu_count() or 1)):
        try:
            out[key] = speed_harness("revm", examples=200, steps=100, progress=progress, workers=workers)
        except Exception as exc:  # noqa: BLE001
            out[key] = _pending(exc)
    try:
        out["harness_boa"] = speed_harness("boa", progress=progress)
    except Exception as exc:  # noqa: BLE001
        out["harness_boa"] = _pending(exc)
        try:
            out["twin_inprocess"] = speed_twin_inprocess(200, progress)
        except Exception as exc2:  # noqa: BLE001
            out["twin_inprocess"] = _pending(exc2)
    try:
        out["keeper"] = speed_keeper(200, progress) or {"pending": "bots/keeper.py not importable"}
    except Exception as exc:  # noqa: BLE001
        out["keeper"] = _pending(exc)
    out["keeper_orders"] = speed_orders(200, progress)
    return out


def speed_table(speed):
    from rich.table import Table

    table = Table(title="Speed")
    table.add_column("what")
    table.add_column("figure", justify="right")
    table.add_column("detail")
    m = speed["model"]
    for mode, label in (("view", "model.perp_engine.is_liquidatable"), ("lean", "lean loop (model.margin, model.funding)")):
        table.add_row(f"simulation: {label}", f"{m[mode]['checks_per_second']:,.0f} accounts x ticks / s",
                      f"{m['accounts']:,} accounts x {m['ticks']} ticks in {m[mode]['seconds']:.1f} s; up to {m[mode]['liquidatable_max']:,} liquidatable in a tick")
    for key, label in (("harness_anvil", "differential machine on anvil (tests/stateful)"),
                       ("harness_revm", "differential machine in process (revm, 1 process)"),
                       ("harness_revm_parallel", "differential machine in process (revm, one worker per core)"),
                       ("harness_boa", "differential machine in process (titanoboa py-evm)"),
                       ("twin_anvil", "twin open/close loop on anvil (scripts/twin)"),
                       ("twin_anvil_assert_same", "  ... with assert_same every step"),
                       ("twin_inprocess", "twin open/close loop in process (titanoboa)")):
        if key not in speed:
            continue
        r = speed[key]
        if "pending" in r:
            table.add_row(label, "pending", r["pending"])
        elif "calls" in r:
            table.add_row(label, f"{r['steps_per_second']:,.1f} steps / s",
                          f"{r['steps']} steps ({r['calls']} calls, {r['calls_per_second']:,.1f} / s) in {r['seconds']:.1f} s, "
                          + ("every stored value and view compared each step" if r.get("backend") == "anvil" else
                             "every stored value compared each step, the views of the touched positions each "
                             "step and of all at each example's end") + (f"; [red]stopped on a failure: {r['failure']}[/]" if r.get("failure") else ""))
        else:
            table.add_row(label, f"{r['steps_per_second']:,.1f} steps / s", f"{r['steps']} steps in {r['seconds']:.1f} s")
    k = speed.get("keeper", {})
    if "pending" in k:
        table.add_row("keeper: price update -> last of 200 liquidated", "pending", k["pending"])
    else:
        worst = k.get("max")
        table.add_row("keeper: price update -> last of 200 liquidated", f"{worst} blocks" if worst is not None else "MISSED",
                      f"histogram {k.get('histogram')}, {k.get('missed')} missed, {k.get('seconds', 0):.0f} s wall, 1 s blocks")
    return table


# ---------------------------------------------------------------- report


def verdict(gas, target):
    """(text, missed_by) for a measured value against its target."""
    if target is None:
        return "", None
    over = gas - target
    if over > 0:
        return f"MISSED by {over:,} ({over * 100 / target:.1f}%)", over
    return f"ok ({-over:,} to spare)", 0


def gas_table(gas):
    from rich.table import Table

    table = Table(title="Gas per operation (anvil receipts)")
    table.add_column("operation")
    table.add_column("measured", justify="right")
    table.add_column("target", justify="right")
    table.add_column("vs target")
    for name, value in gas.items():
        target = TARGETS.get(name)
        text, over = verdict(value, target)
        style = "red" if over else ("green" if over == 0 else "")
        table.add_row(name, f"{value:,}", f"{target:,}" if target else "", f"[{style}]{text}[/]" if style else text)
    return table


def breakdown_table(name, parts, total):
    from rich.table import Table

    table = Table(title=f"Where the gas goes: {name} ({total:,})")
    table.add_column("bucket")
    table.add_column("gas", justify="right")
    table.add_column("share", justify="right")
    for key, gas in sorted(parts.items(), key=lambda kv: -abs(kv[1])):
        if gas:
            table.add_row(key, f"{gas:,}", f"{gas * 100 / total:.0f}%" if total else "")
    return table


def git_commit():
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    except OSError:
        return None


@click.command(cls=ConnectedProviderCommand)
@click.option("--quick", is_flag=True, help="Only the snapshot subset of the gas scenarios (no speed).")
@click.option("--update-snapshot", is_flag=True, help="Rewrite bench/gas-snapshot.json from the quick subset.")
@click.option("--skip-speed", is_flag=True, help="Gas only.")
@click.option("--skip-gas", is_flag=True, help="Speed only (no results.json).")
@click.option("--no-explain", is_flag=True, help="Skip tracing the measured transactions (faster).")
def cli(quick, update_snapshot, skip_speed, skip_gas, no_explain):
    """Measure gas against the targets and speed; write bench/results.json."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    console = Console()
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    quick = quick or update_snapshot
    speed = None
    with Progress(*columns, console=console, transient=True) as progress:
        if not (quick or skip_speed):
            # first, on a fresh node: the differential harness and the keeper
            # run on one (gas does not depend on what ran before)
            speed = measure_speed(progress)
        if skip_gas:
            console.print(speed_table(speed))
            console.print(order_latency_table(speed["keeper_orders"]))
            return
        b = measure_gas(quick=quick, progress=progress, explain=not (quick or no_explain))
    console.print(gas_table(b.gas))
    if update_snapshot:
        SNAPSHOT.write_text(json.dumps(snapshot_subset(b.gas), indent=2) + "\n")
        console.print(f"wrote {SNAPSHOT.relative_to(ROOT)}")
        return
    if quick:
        return
    for name in b.breakdowns:
        if verdict(b.gas[name], TARGETS.get(name))[1]:
            console.print(breakdown_table(name, b.breakdowns[name], b.gas[name]))
    if speed is not None:
        console.print(speed_table(speed))
        console.print(order_latency_table(speed["keeper_orders"]))
    results = {
        "meta": {
            "commit": git_commit(),
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "network": networks.provider.network.choice,
            "python": platform.python_version(),
        },
        "gas": {
            name: {"gas": value, "target": TARGETS.get(name), "missed_by": verdict(value, TARGETS.get(name))[1]}
            for name, value in b.gas.items()
        },
        "fits": b.fits,
        "where_the_gas_goes": b.breakdowns,
        "speed": speed,
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    console.print(f"wrote {RESULTS.relative_to(ROOT)}")


def snapshot_subset(gas):
    """The values the snapshot test compares (per-unit fits excluded: they
    are differences of the totals, which are compared already)."""
    return {k: v for k, v in gas.items() if not k.startswith(("ADL: gas per", "ADL scan: gas per"))}
