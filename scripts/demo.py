"""The crash demo: `make demo [SCENARIO=scenarios/my.yaml]`, or

    .venv/bin/ape run demo --network ethereum:local:foundry [--scenario scenarios/crash.yaml]

from the repo's root (the entry point puts node_modules/.bin, where the npm
package installs anvil, and the venv on PATH itself, as make does).

The scenario is a YAML file (scenarios/crash.yaml documents every field),
validated by scripts/scenario.py before anything starts: a bad one ends in
one line naming the file and the field, a non-zero exit, no node started,
nothing deployed.

Deploys Backstop on the devnet, starts the keeper as a separate process,
seeds a few hundred traders (2x to 100x, both sides, some with stop-losses
and take-profits) whose positions open through orders (each trader requests
in one block; the next price round is later than the request, and the keeper
executes the order in the block after it), LPs in the vault and the
insurance fund, and plays the scenario's crash on the oracle while the
keeper liquidates, deleverages and executes stops.

Scenario time is chain time. The demo mines every block itself, at the
timestamp it chooses (evm_mine with a timestamp, automine off): each price
step lands in the block stamped crash start + its `seconds`, and between
steps a block follows every `block_time` seconds while the keeper has work
or transactions in flight. The demo mines the next block only once the
keeper has processed the last one (its state file names the last block it
processed), so however long the keeper takes on the wall clock, a "-20% in
30 s" path is 30 s of block time. Then it stops the keeper, replays the
whole run on the model (scripts/replay.py), prints a summary, writes an
HTML report under reports/ (scripts/report.py) and exits non-zero if model
and chain disagree. A run that fails before its report is written removes
its report folder.
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def tool_env(environ=os.environ):
    """What the Makefile exports, for an entry point started by hand: anvil
    (node_modules/.bin) and the venv on PATH, ape-vyper pointed at the
    pinned compiler (.vvm), the repo importable (the keeper process), the
    devnet port's default. Only what is missing is added."""
    path = environ.get("PATH", "").split(os.pathsep)
    for d in (ROOT / ".venv" / "bin", ROOT / "node_modules" / ".bin"):
        if d.is_dir() and str(d) not in path:
            path.insert(0, str(d))
    environ["PATH"] = os.pathsep.join(p for p in path if p)
    environ.setdefault("VVM_BINARY_PATH", str(ROOT / ".vvm"))
    environ.setdefault("BACKSTOP_PORT", "8547")
    py = environ.get("PYTHONPATH", "").split(os.pathsep)
    if str(ROOT) not in py:
        environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), *[p for p in py if p]])
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return environ


tool_env()  # before ape connects: ape-foundry looks for anvil on PATH when it starts the node

import json  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402

import click  # noqa: E402
from ape import accounts, chain, networks  # noqa: E402
from ape.cli import ConnectedProviderCommand  # noqa: E402
from ape.logging import logger  # noqa: E402
from eth_abi import encode as abi_encode  # noqa: E402
from eth_account import Account as EthAccount  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn  # noqa: E402

from model import adl  # noqa: E402
from model import margin as M  # noqa: E402
from model import perp_engine  # noqa: E402
from model import positions as P  # noqa: E402
from model.fixed_point import Revert  # noqa: E402
from scripts import report as R  # noqa: E402
from scripts import scenario as S  # noqa: E402
from scripts.replay import Replayer  # noqa: E402
from scripts.twin import mirror_world  # noqa: E402

WAD = 10**18
MAX_UINT = 2**256 - 1
TX_GAS = 3_000_000  # per raw transaction; blocks get room for all of them
KEEPER_MODULE = ROOT / "bots" / "keeper.py"
KEEPER_POLL = 0.05  # seconds between the keeper process's looks at the head (bots/keeper.py --poll)
# The crash starts at least this far ahead of the wall clock: the keeper
# simulates each batch at max(next block time, wall clock) (bots/keeper.py
# _exec_time), so a chain clock kept ahead of the wall clock makes its
# simulations run at exactly the timestamp the demo mines next.
CLOCK_LEAD = 120
IDLE_BLOCKS = 8  # blocks in a row with work the model sees and nothing the keeper sent: it has failed
MAX_TAIL_BLOCKS = 600  # blocks after the last price step before the demo gives up waiting for the keeper


# ---------------------------------------------------------------- scenario

def load_scenario(path=S.DEFAULT_PATH):
    """The validated scenario (scripts/scenario.py) as the plain dict the
    demo indexes; ScenarioError (one line) if it is bad."""
    return S.load_scenario(path).as_dict()


@dataclass
class Trader:
    account: object
    is_long: bool
    leverage: int
    margin: int  # token units
    block: int  # warmup block it trades in
    stop_way: int = 0  # % of the way from entry to liquidation (longs), 0 = none
    tp_below: int = 0  # % below entry (shorts), 0 = none
    size: int = 0
    entry: int = 0
    refused: bool = False  # its order was cancelled "vault: capacity"


def plan_traders(sc, rng, new_account, unit):
    t = sc["traders"]
    levs = [int(k) for k in t["leverage"]]
    weights = [int(v) for v in t["leverage"].values()]
    n_blocks = len(sc["warmup"]["prices"])
    out = []
    for i in range(int(t["count"])):
        is_long = rng.randrange(100) < int(t["long_percent"])
        lev = rng.choices(levs, weights)[0]
        tr = Trader(new_account(), is_long, lev, rng.randint(*t["margin"]) * unit, i % n_blocks)
        sl, tp = t.get("stop_loss"), t.get("take_profit")
        if is_long and sl and lev <= int(sl["max_leverage"]) and rng.randrange(100) < int(sl["percent_of_longs"]):
            tr.stop_way = rng.randint(*sl["way_to_liquidation"])
        if not is_long and tp and rng.randrange(100) < int(tp["percent_of_shorts"]):
            tr.tp_below = rng.randint(*tp["below_entry"])
        out.append(tr)
    return out


# ---------------------------------------------------------------- raw batches

class Sender:
    """Signed raw transactions, encoded with eth_abi: ape's per-call
    overhead (tens of ms) would dominate the run. `send` does not wait; with
    automine off, `mine` seals everything pending in one block at a chosen
    timestamp and checks every receipt. `transact` sends and waits (automine
    on) and returns the receipt."""

    def __init__(self, web3):
        self.web3 = web3
        self.chain_id = web3.eth.chain_id
        self.gas_price = web3.eth.gas_price
        self.ecosystem = networks.provider.network.ecosystem
        self.nonces = {}
        self.pending = []
        self.abis = {}

    def _calldata(self, contract, method, args):
        key = (contract.address, method)
        if key not in self.abis:
            abi = getattr(contract, method).abis[0]
            self.abis[key] = (bytes(self.ecosystem.get_method_selector(abi)),
                              [i.canonical_type for i in abi.inputs])
        selector, types = self.abis[key]
        args = [getattr(a, "address", a) for a in args]
        return selector + abi_encode(types, args)

    def send(self, account, contract, method, *args):
        addr = account.address
        if addr not in self.nonces:
            self.nonces[addr] = self.web3.eth.get_transaction_count(addr, "pending")
        tx = {"to": contract.address, "data": self._calldata(contract, method, args), "gas": TX_GAS,
              "gasPrice": self.gas_price, "nonce": self.nonces[addr], "chainId": self.chain_id, "value": 0}
        self.nonces[addr] += 1
        signed = EthAccount.sign_transaction(tx, account.private_key)
        h = self.web3.eth.send_raw_transaction(signed.raw_transaction)
        self.pending.append((h, method))
        return h

    def transact(self, account, contract, method, *args):
        h = self.send(account, contract, method, *args)
        self.pending.pop()
        return self.web3.eth.wait_for_transaction_receipt(h, timeout=60, poll_latency=0.02)

    def mine(self, timestamp, force=False):
        """One block stamped `timestamp` with everything pending (also
        others', the keeper's); raise if any of ours reverted. Without
        `force`, nothing of ours pending mines nothing."""
        if not self.pending and not force:
            return None
        answer = self.web3.provider.make_request("evm_mine", [timestamp])
        if answer.get("error"):
            raise click.ClickException(f"evm_mine at {timestamp}: {answer['error'].get('message', answer['error'])}")
        number = self.web3.eth.block_number
        receipts = {r["transactionHash"]: r for r in self.web3.eth.get_block_receipts(number)}
        missing = [m for h, m in self.pending if h not in receipts]
        failed = [m for h, m in self.pending if h in receipts and receipts[h]["status"] != 1]
        self.pending = []
        if missing or failed:
            raise click.ClickException(f"block {number}: {len(failed)} reverted {failed[:5]}, {len(missing)} not mined")
        return number


# ---------------------------------------------------------------- keepers

def orders_due(w, now=None):
    """Pending order ids executable at `now` (default: the world's time):
    their market's feed is fresh and has a round later than the request,
    and they have not expired."""
    now = w.now if now is None else now
    saved, w.now = w.now, now
    try:
        due = []
        for oid, o in sorted(w.e.orders.items()):
            try:
                _, updated = P._round(w, o.market_id, True)
            except Revert:
                continue
            # each order's own deadline: set_order_expiry does not move it
            if updated > o.requested_at and now <= P._load_order(w, oid).expires_at:
                due.append(oid)
        return due
    finally:
        w.now = saved


def keeper_work(w):
    """What a keeper still has to do, per the model: positions liquidatable,
    TP/SL orders triggered (and not liquidatable, with a round later than
    their setting), markets with ADL pending, orders executable."""
    liq, trig, pending = [], [], []
    for mid in range(w.e.market_count):
        if w.e.adl_pending.get(mid, P.AdlPending()).remaining > 0:
            pending.append(mid)
    for (acct, mid), pos in list(w.e.positions.items()):
        try:
            if perp_engine.is_liquidatable(w, acct, mid):
                liq.append((acct, mid))
                continue
            price, updated = P._round(w, mid, True)
        except Revert:
            continue
        if updated <= w.e.tp_sl_at.get((acct, mid), 0):
            continue
        long_ = pos.size > 0
        tp, sl = pos.take_profit, pos.stop_loss
        if long_:
            hit = (tp and price >= tp) or (sl and price <= sl)
        else:
            hit = (tp and price <= tp) or (sl and price >= sl)
        if hit:
            trig.append((acct, mid))
    return liq, trig, pending, orders_due(w)


class InlineKeeper:
    """The in-process fallback keeper: the same job as bots/keeper.py, with
    the ADL target lists from model.perp_engine.adl_ranking on the replayer's
    model world. Used only if the keeper process fails. Each of its
    transactions is mined alone, in a block stamped with the chain time the
    demo is at (anvil accepts equal timestamps), so the scenario's clock
    stays true on this path too."""

    def __init__(self, protocol, replayer, account, sender):
        self.p, self.r, self.account, self.sender = protocol, replayer, account, sender
        self.sent = self.failed = 0

    def _send(self, timestamp, verb, *args):
        h = self.sender.send(self.account, self.p.engine, verb, *args)
        self.sender.pending.pop()  # its receipt is read here: a revert is logged, not raised
        self.sender.mine(timestamp, force=True)
        receipt = self.sender.web3.eth.get_transaction_receipt(h)
        self.sent += 1
        if receipt["status"] != 1:
            self.failed += 1
            logger.warning(f"fallback keeper: {verb}{args[:2]} reverted")
        self.r.catch_up()

    def run(self, timestamp=None, max_txs=10_000):
        """Work until the model says nothing is left, every transaction in
        its own block at `timestamp` (default: the head's)."""
        if timestamp is None:
            timestamp = self.sender.web3.eth.get_block("latest")["timestamp"]
        for _ in range(max_txs):
            self.r.catch_up()
            world = self.r.w
            world.now = timestamp
            liq, trig, pending, due = keeper_work(world)
            if pending:
                mid = pending[0]
                targets = adl.job_ranking(world, mid)  # at the job's price
                self._send(timestamp, "deleverage", mid, targets)
            elif trig:
                acct, mid = trig[0]
                self._send(timestamp, "execute_tp_sl", acct, mid)
            elif liq:
                acct, mid = liq[0]
                self._send(timestamp, "liquidate", acct, mid, perp_engine.adl_ranking(world, acct, mid))
            elif due:
                self._send(timestamp, "execute_order", due[0])
            else:
                return


class KeeperProcess:
    """`python -m bots.keeper` in its own process group; stopped for sure."""

    def __init__(self, engine, account_index, network_choice, log_path, state_path, block_time=1):
        self.cmd = [sys.executable, "-m", "bots.keeper", "--network", network_choice, "--engine", engine.address,
                    "--account", f"TEST::{account_index}", "--state-file", str(state_path),
                    "--poll", str(KEEPER_POLL), "--block-time", str(block_time)]
        self.log_path = log_path
        self.state_path = Path(state_path)
        self.proc = None

    def start(self):
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(self.cmd, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True, env=os.environ.copy())
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def last_block(self):
        """The last block the keeper has processed (planned, simulated and
        sent for), from its state file; -1 before it has written one."""
        try:
            return int(json.loads(self.state_path.read_text()).get("last_block") or -1)
        except (OSError, ValueError):
            return -1

    def tail(self, n=15):
        try:
            return "\n".join(Path(self.log_path).read_text().splitlines()[-n:])
        except OSError:
            return ""

    def stop(self, timeout=10):
        """SIGTERM the keeper's process group, SIGKILL it if it lingers.
        Returns (exit code, processes left in the group)."""
        if self.proc is None:
            return None, 0
        pgid = self.proc.pid  # start_new_session: the group is ours alone
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5)):
            if not _group_alive(pgid):
                break
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                break
            deadline = time.time() + wait
            while time.time() < deadline and _group_alive(pgid):
                if self.proc.poll() is None:
                    try:
                        self.proc.wait(0.2)
                    except subprocess.TimeoutExpired:
                        pass
                else:
                    time.sleep(0.1)
        if self.proc.poll() is None:
            self.proc.wait(5)
        self.log.close()
        return self.proc.returncode, (1 if _group_alive(pgid) else 0)


def _group_alive(pgid):
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


# ---------------------------------------------------------------- the run

@dataclass
class DemoResult:
    ok: bool
    report_path: Path
    summary: dict
    keeper_mode: str
    replay_mismatches: list
    state_diffs: list
    keeper_exit: object = None
    keeper_leftovers: int = 0
    warnings: list = field(default_factory=list)
    data: dict = field(default_factory=dict)  # everything the report shows (scripts/report.collect)
    replayer: object = None


def run_demo(sc, owner, keeper_mode="process", out_dir=ROOT / "reports", console=None):
    """Play scenario `sc` on the connected devnet: a Scenario, or a dict in
    the YAML's shape, validated here before anything is sent (ScenarioError,
    one line). The report goes to <out_dir>/<name>-<time>/; a run that fails
    before writing it removes that folder (and out_dir, if it made it and it
    is empty)."""
    sc = S.validate(sc, "scenario").as_dict()
    console = console or Console()
    out = Path(out_dir) / f"{sc['name']}-{time.strftime('%Y%m%d-%H%M%S')}"
    made = []  # the folders this run creates, outermost first
    d = out
    while not d.exists():
        made.insert(0, d)
        d = d.parent
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # before anything is deployed
        raise click.ClickException(f"--out {out_dir}: cannot create {out}: {e.strerror or e}") from None
    done = False
    try:
        result = _run(sc, owner, keeper_mode, out, console)
        done = True
        return result
    finally:
        if not done:
            if out in made:
                shutil.rmtree(out, ignore_errors=True)
            for d in reversed(made[:-1]):
                try:
                    d.rmdir()  # only if empty: another run may share it
                except OSError:
                    break


def _run(sc, owner, keeper_mode, out, console):
    # imported here, not at the top: `ape run` executes every script with a
    # `cli` as its own module, and importing scripts.deploy before ape runs
    # it makes runpy print a RuntimeWarning in front of every demo error
    from scripts.deploy import deploy_protocol

    t_start = time.time()
    provider = networks.provider
    warnings = []

    def loud(msg):
        warnings.append(msg)
        console.print(f"[bold red]!!! {msg}[/]")

    # ------------------------------------------------ deploy
    console.rule(f"[bold]Backstop crash demo: {sc['name']}")
    p = deploy_protocol(owner)
    mid = p.markets.index(sc["market"])
    params = p.params[mid]
    feed = p.feeds[mid]
    fd = feed.decimals()
    unit = 10 ** p.token.decimals()
    start_block = chain.blocks.head.number
    world0 = mirror_world(p, owner)
    fund_at_start = world0.token.balance_of(p.insurance_fund.address)
    replayer = Replayer(p, world0, start_block)
    console.print(f"deployed at block {start_block}: engine {p.engine.address}, market {mid} {sc['market']}")

    keeper_acct = accounts.test_accounts[int(sc["keeper"]["account"])]
    fallback_acct = accounts.test_accounts[int(sc["keeper"]["fallback_account"])]
    keeper = None
    if keeper_mode == "process":
        if not KEEPER_MODULE.exists():
            loud(f"no keeper at {KEEPER_MODULE.relative_to(ROOT)}: using the in-process fallback keeper")
            keeper_mode = "fallback"
        else:
            keeper = KeeperProcess(p.engine, sc["keeper"]["account"], provider.network_choice,
                                   out / "keeper.log", out / "keeper-state.json", sc["block_time"]).start()
            console.print(f"keeper process started (pid {keeper.proc.pid}): {' '.join(keeper.cmd[1:])}")
    sender = Sender(networks.provider.web3)
    inline = InlineKeeper(p, replayer, fallback_acct, sender)

    # The demo mines every block itself from here on: a node that mines on
    # an interval (make devnet's anvil --block-time) stops for the run and is
    # put back afterwards.
    interval = _rpc(provider, "anvil_getIntervalMining") or 0
    try:
        if interval:
            _rpc(provider, "evm_setIntervalMining", 0)
        summary = _play(sc, p, mid, params, feed, fd, unit, owner, sender, replayer, keeper, inline, keeper_mode,
                        console, loud)
        keeper_mode = summary.pop("_keeper_mode")
    except BaseException:
        if keeper:  # the run folder goes with the failure: show what the keeper said
            console.print(f"keeper log ({keeper.log_path.name}) ends:\n{keeper.tail()}", highlight=False)
        raise
    finally:
        keeper_exit, leftovers = (keeper.stop() if keeper else (None, 0))
        try:
            provider.auto_mine = True
            if interval:
                _rpc(provider, "evm_setIntervalMining", interval)
        except Exception:  # noqa: BLE001 - the provider may already be gone
            pass
    if keeper:
        console.print(f"keeper process stopped (exit code {keeper_exit}); "
                      f"{'no processes left' if not leftovers else f'{leftovers} PROCESS(ES) LEFT'} in its group")
        if leftovers:
            loud("the keeper process group did not exit")

    # ------------------------------------------------ replay check and report
    console.rule("replay on the model")
    end_block = replayer.catch_up()
    tracked = [owner.address, keeper_acct.address, fallback_acct.address, *summary.pop("_accounts")]
    diffs = replayer.compare_state(tracked)
    ok = not replayer.mismatches and not diffs and not leftovers and keeper_mode != "failed"
    console.print(f"replayed {replayer.stats.txs} transactions ({replayer.stats.reverted} reverted on chain and in "
                  f"the model) from block {start_block + 1} to {end_block}; compared {len(tracked)} accounts")
    for m in replayer.mismatches[:10]:
        console.print(f"[red]  mismatch: {m}")
    for d in diffs[:10]:
        console.print(f"[red]  state differs: {d}")
    data = R.collect(p, mid, replayer, start_block, end_block, sc, summary["crash_start_block"],
                     {"keeper_mode": keeper_mode, "keeper_account": keeper_acct.address,
                      "fallback_account": fallback_acct.address, "warnings": warnings,
                      "replay_ok": not replayer.mismatches and not diffs, "fund_at_start": fund_at_start, "replay_txs": replayer.stats.txs,
                      "mismatches": [str(m) for m in replayer.mismatches], "state_diffs": diffs,
                      "wall_seconds": int(time.time() - t_start), "traders": summary["traders"],
                      "crash_t0": summary["crash_t0"], "crash_blocks": summary["crash_blocks"]})
    report_path = R.write_html(data, out)
    R.print_summary(data, console)
    console.print(f"report: {report_path}")
    replay_ok = not replayer.mismatches and not diffs
    verdict = "[bold green]PASS" if replay_ok else "[bold red]FAIL"
    console.print(f"model replay check: {verdict}[/] ({len(replayer.mismatches)} transaction mismatches, "
                  f"{len(diffs)} state differences)")
    if keeper_mode == "failed":
        console.print("[bold red]keeper process: FAILED during the crash (see above); exiting non-zero")
    return DemoResult(ok, report_path, data["summary"], keeper_mode, replayer.mismatches, diffs,
                      keeper_exit, leftovers, warnings, data, replayer)


def _rpc(provider, method, *params):
    """A node method's result; None if the node answers with an error."""
    answer = provider.web3.provider.make_request(method, list(params))
    return None if answer.get("error") else answer.get("result")


def _play(sc, p, mid, params, feed, fd, unit, owner, batch, replayer, keeper, inline, keeper_mode, console, loud):
    """Seed, warm up and crash; returns numbers the report needs."""
    provider = networks.provider
    rng = random.Random(int(sc["seed"]))
    lps = [accounts.test_accounts.generate_test_account() for _ in range(int(sc["lps"]["count"]))]
    traders = plan_traders(sc, rng, accounts.test_accounts.generate_test_account, unit)
    everyone = [*lps, *(t.account for t in traders)]
    for a in everyone:
        provider.set_balance(a.address, 10**20)
    scale = p.engine.SCALE()  # 1e36 / token unit: USD-1e18 times size-1e18 per token unit

    provider.auto_mine = False
    provider.set_block_gas_limit(TX_GAS * (4 * len(everyone) + 100))
    now = chain.blocks.head.timestamp
    progress = Progress(TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=console, transient=False)
    with progress:
        # ------------------------------------------------ money in: LPs, traders, fund
        task = progress.add_task("funding accounts", total=len(everyone) + 1)
        lp_amounts = []
        batch.send(owner, p.token, "mint", p.insurance_fund, int(sc["insurance_fund"]) * unit)
        for a in lps:
            amount = rng.randint(*sc["lps"]["deposit"]) * unit
            batch.send(a, p.token, "mint", a, amount)
            batch.send(a, p.token, "approve", p.vault, amount)
            batch.send(a, p.vault, "requestDeposit", amount, a, a)  # the vault's epochs (ERC-7540)
            lp_amounts.append((a, amount))
            progress.advance(task)
        for t in traders:
            notional = t.margin * t.leverage
            need = t.margin + notional * params.trading_fee // WAD + unit + t.margin // 50
            batch.send(t.account, p.token, "mint", t.account, need)
            batch.send(t.account, p.token, "approve", p.engine, MAX_UINT)
            batch.send(t.account, p.engine, "deposit", need)
            progress.advance(task)
        now += 12
        batch.mine(now)
        # the LPs' epoch: a round on every feed after the requests and the
        # settle in the same block (the rounds' updatedAt is this block's
        # time, later than the requests'), then the claims. Settled in the
        # rounds' block, the epoch is never due in a block the keeper
        # process sees, which would settle it too and revert ours.
        now += 1
        for f in p.feeds:
            batch.send(owner, f, "set_answer", f.latestRoundData()[1])
        batch.send(owner, p.vault, "settle")
        batch.mine(now)
        now += 1
        for a, amount in lp_amounts:
            batch.send(a, p.vault, "deposit", amount, a)
        batch.mine(now)
        replayer.catch_up()
        progress.advance(task)

        # ------------------------------------------------ warmup: positions open through orders
        # Block i's round (price i) is later than the requests of block i - 1:
        # the keeper process executes them in the next block, at price i.
        # Each trader's size is set for the price its order will execute at
        # (the next round's), so its leverage is the planned one.
        task = progress.add_task("opening positions (orders)", total=len(traders))
        prices = [int(x) for x in sc["warmup"]["prices"]]
        waiting = []  # traders whose orders wait for the next round
        for i in range(len(prices) + 1):
            whole = prices[min(i, len(prices) - 1)]  # after the last block: one more round at the last price
            price = whole * WAD
            now += int(sc["warmup"]["seconds_per_block"])
            batch.send(owner, feed, "set_answer", whole * 10**fd)
            batch.mine(now)
            replayer.catch_up()
            if waiting:
                now += 1
                keeper_mode = _execute_orders(sc, p, batch, replayer, keeper, inline, keeper_mode, now, loud)
                requested = {str(f["account"]).lower(): f["order_id"] for name, f in replayer.w.events
                             if name == "OrderRequested"}
                for t in waiting:
                    pos = replayer.w.e.positions.get((t.account.address, mid))
                    if pos is None or pos.size != t.size:
                        outcome = replayer.order_outcomes.get(requested.get(t.account.address.lower()))
                        if pos is None and outcome == ("cancelled", R.CAPACITY):
                            # the vault's cash would not back its payout cap: refused, as on a real venue
                            t.refused = True
                            progress.advance(task)
                            continue
                        raise click.ClickException(f"{t.account.address}'s order did not open its position "
                                                   f"(position {pos}, size planned {t.size}; outcome: {outcome})")
                    t.entry, t.margin = pos.entry_price, pos.margin
                    if t.stop_way:
                        liq = M.liquidation_price(t.size, t.entry, t.margin, params.mmf, scale)
                        batch.send(t.account, p.engine, "set_tp_sl", mid, 0, t.entry - (t.entry - liq) * t.stop_way // 100)
                    if t.tp_below:
                        batch.send(t.account, p.engine, "set_tp_sl", mid, t.entry * (100 - t.tp_below) // 100, 0)
                    progress.advance(task)
                waiting = []
            if i == len(prices):
                now += 1
                batch.mine(now)
                replayer.catch_up()
                break
            exec_price = prices[min(i + 1, len(prices) - 1)] * WAD  # the next round's
            for t in (t for t in traders if t.block == i):
                # size so that notional <= margin * leverage at the execution price (the initial check rounds up)
                t.size = t.margin * t.leverage * scale // exec_price
                t.size = t.size if t.is_long else -t.size
                accept = price * 101 // 100 if t.is_long else price * 99 // 100
                # A sell executing above its acceptable price owes a trading
                # fee above the escrowed one, taken from the margin moving in
                # (docs/orders.md): a short adds the fee difference up to 2%
                # above the request price, so its margin still covers 100x.
                headroom = 0 if t.is_long else (M.requirement(t.size, price * 102 // 100, params.trading_fee, scale)
                                                - M.requirement(t.size, accept, params.trading_fee, scale))
                batch.send(t.account, p.engine, "request_order", mid, t.size, t.margin + headroom, accept)
                waiting.append(t)
            now += 1
            batch.mine(now)
            replayer.catch_up()
    orders = [f for name, f in replayer.w.events if name == "OrderExecuted"]
    refused = sum(1 for t in traders if t.refused)
    console.print(f"{len(orders)} orders executed, {refused} refused for vault capacity, "
                  f"{len(replayer.w.e.orders)} pending")
    longs = sum(1 for t in traders if t.is_long)
    console.print(f"{len(traders)} traders ({longs} long, {len(traders) - longs} short), {len(lps)} LPs, "
                  f"{sum(1 for t in traders if t.stop_way and not t.refused)} stop-losses, "
                  f"{sum(1 for t in traders if t.tp_below and not t.refused)} "
                  f"take-profits; block {chain.blocks.head.number}")

    # ------------------------------------------------ the crash, on the chain's clock
    if keeper_mode == "process" and not keeper.alive():
        loud(f"the keeper process failed to start (exit code {keeper.proc.returncode}): the in-process fallback "
             f"keeper plays its part. Its log ends:\n{keeper.tail()}")
        keeper_mode = "fallback"
    crash_start_block = chain.blocks.head.number
    t0 = max(now + 60, int(time.time()) + CLOCK_LEAD)
    crash = _crash(sc, p, mid, feed, fd, unit, owner, batch, replayer, keeper, inline, keeper_mode, t0, console, loud)
    provider.auto_mine = True
    return {"crash_start_block": crash_start_block, "crash_t0": t0, "_keeper_mode": crash["mode"],
            "crash_blocks": crash["blocks"], "_accounts": [a.address for a in everyone],
            "traders": [{"account": t.account.address, "is_long": t.is_long, "leverage": t.leverage,
                         "margin": t.margin, "stop": bool(t.stop_way), "tp": bool(t.tp_below),
                         "refused": t.refused} for t in traders]}


def _crash(sc, p, mid, feed, fd, unit, owner, batch, replayer, keeper, inline, mode, t0, console, loud):
    """The crash path in blocks the demo mines itself (automine stays off).

    Step i's price is sent and mined in the block stamped t0 + seconds_i.
    After every block the demo waits (wall clock, at most step_timeout)
    until the keeper process has processed it; then, if the keeper has
    transactions waiting or the model sees work left (liquidations,
    triggered TP/SL, pending ADL, executable orders), the next block comes
    block_time seconds later, else the chain jumps to the next price step.
    A keeper that dies, stalls, or leaves work undone for IDLE_BLOCKS
    blocks is replaced by the in-process fallback (and the demo exits
    non-zero)."""
    web3 = batch.web3
    bt = int(sc["block_time"])
    timeout = int(sc["keeper"]["step_timeout"])
    steps = [(t0 + int(dt), int(whole)) for dt, whole in sc["crash"]]
    who = keeper.cmd[keeper.cmd.index("--account") + 1] if keeper else None
    keeper_address = accounts.test_accounts[int(who.rsplit(":", 1)[1])].address if who else None
    fund = p.insurance_fund.address
    p0 = steps[0][1]

    def in_flight():
        if keeper_address is None:
            return 0
        return web3.eth.get_transaction_count(keeper_address, "pending") - web3.eth.get_transaction_count(keeper_address)

    def work_left(at):
        w = replayer.w
        saved, w.now = w.now, at
        try:
            return [len(x) for x in keeper_work(w)]
        finally:
            w.now = saved

    def line(k, number, blocks, wall):
        dt, whole = sc["crash"][k]
        w = replayer.w
        liqs = sum(1 for name, _ in w.events if name == "PositionLiquidated")
        adls = sum(1 for name, _ in w.events if name == "AutoDeleveraged")
        bad = sum(f["bad_debt"] for name, f in w.events if name == "PositionLiquidated")
        long_oi, short_oi = perp_engine.open_interest(w, mid)
        console.print(
            f"t+{int(dt):<3} #{number:<5} {int(whole):>6,} {(int(whole) - p0) * 100 / p0:+6.2f}% "
            f"liq {liqs:>3}  bad debt {bad / unit:>7,.0f}  fund {w.token.balance_of(fund) / unit:>6,.0f}  "
            f"ADL {adls:>3}  OI {long_oi / WAD:>6.2f}/{short_oi / WAD:<6.2f} [{blocks} blocks, {wall:4.1f}s]",
            highlight=False)

    console.rule(f"crash on {sc['market']}")
    console.print("time   block    price  change  liquidations, bad debt, fund, ADL fills, open interest long/short "
                  "[blocks until the next step, wall-clock time]", style="dim", highlight=False)
    k = 0  # the next price step
    t = None  # the last block's timestamp
    shown = None  # (step index, its block, blocks since, wall clock at its block)
    idle = tail = blocks = 0
    while True:
        if t is None:
            at = steps[0][0]
        else:
            waiting = in_flight()
            left = work_left(t + bt)
            if waiting or any(left):
                idle = 0 if waiting or not any(left) else idle + 1
                if mode == "process" and idle >= IDLE_BLOCKS:
                    loud(f"the keeper process left work undone for {idle} blocks ({left[0]} liquidatable, {left[1]} "
                         f"triggered, {left[2]} pending-ADL markets, {left[3]} executable orders): it is stopped, the "
                         f"in-process fallback keeper takes over, and the demo will exit non-zero. Its log ends:\n"
                         f"{keeper.tail()}")
                    keeper.stop()
                    mode = "failed"
                at = t + bt
            elif k < len(steps):
                at = steps[k][0]
            else:
                break
            if k >= len(steps):
                tail += 1
                if tail > MAX_TAIL_BLOCKS:
                    loud(f"work left {MAX_TAIL_BLOCKS} blocks after the last price step: giving up")
                    break
        if k < len(steps) and at == steps[k][0]:
            if shown:
                line(shown[0], shown[1], shown[2], time.time() - shown[3])
            batch.send(owner, feed, "set_answer", steps[k][1] * 10**fd)
            k += 1
            number = batch.mine(at, force=True)
            shown = [k - 1, number, 0, time.time()]
        else:
            number = batch.mine(at, force=True)
        t = at
        blocks += 1
        shown[2] += 1
        replayer.catch_up()
        if replayer.broken:
            loud(f"the model diverged from the chain ({replayer.mismatches[-1]}): not waiting for the keeper")
            break
        if mode == "process":
            mode = _await_keeper(keeper, number, timeout, loud)
        if mode in ("fallback", "failed"):
            inline.run(t)
    if shown:
        line(shown[0], shown[1], shown[2], time.time() - shown[3])
    return {"mode": mode, "blocks": blocks}


def _await_keeper(keeper, number, timeout, loud):
    """Until the keeper process has processed block `number` (its state
    file says so): "process"; "failed" if it died or took longer than
    `timeout` wall-clock seconds (then it is stopped)."""
    t = time.time()
    while keeper.last_block() < number:
        if not keeper.alive():
            loud(f"the keeper process exited (code {keeper.proc.returncode}) during the crash; the in-process "
                 f"fallback keeper takes over, and the demo will exit non-zero. Its log ends:\n{keeper.tail()}")
            return "failed"
        if time.time() - t > timeout:
            loud(f"the keeper process did not process block {number} in {timeout}s: it is stopped, the in-process "
                 f"fallback keeper takes over, and the demo will exit non-zero. Its log ends:\n{keeper.tail()}")
            keeper.stop()
            return "failed"
        time.sleep(0.01)
    return "process"


def _execute_orders(sc, p, batch, replayer, keeper, inline, mode, timestamp, loud):
    """Manual mining: wait until the keeper has sent an execution for every
    order the model says is executable in the next block, then mine that
    block at `timestamp`. If the keeper process is gone or too slow, the
    fallback executes them (and the demo will exit non-zero)."""
    web3 = batch.web3
    due = orders_due(replayer.w, timestamp)
    if not due:
        return mode
    who = keeper.cmd[keeper.cmd.index("--account") + 1] if keeper else None
    address = accounts.test_accounts[int(who.rsplit(":", 1)[1])].address if who else None
    t = time.time()
    timeout = int(sc["keeper"]["step_timeout"])
    while mode == "process":
        if not keeper.alive():
            loud(f"the keeper process exited (code {keeper.proc.returncode}) while orders waited; the in-process "
                 f"fallback keeper executes them, and the demo will exit non-zero. Its log ends:\n{keeper.tail()}")
            mode = "failed"
            break
        sent = web3.eth.get_transaction_count(address, "pending") - web3.eth.get_transaction_count(address, "latest")
        if sent >= len(due):
            break
        if time.time() - t > timeout:
            loud(f"the keeper process sent {sent} of {len(due)} order executions in {timeout}s: the in-process "
                 f"fallback keeper executes them, and the demo will exit non-zero. Its log ends:\n{keeper.tail()}")
            keeper.stop()
            mode = "failed"
            break
        time.sleep(0.1)
    if mode != "process":
        for oid in due:
            batch.send(inline.account, p.engine, "execute_order", oid)
    batch.mine(timestamp, force=True)
    replayer.catch_up()
    left = [oid for oid in due if oid in replayer.w.e.orders]
    if left:
        raise click.ClickException(f"orders {left[:5]} not executed in the block after their later round")
    return mode


def _scenario_option(ctx, param, value):
    """Validated while the command line is parsed, before ape connects:
    a bad scenario starts no node and deploys nothing."""
    try:
        return load_scenario(value)
    except S.ScenarioError as e:
        raise click.ClickException(str(e)) from None


def _out_option(ctx, param, value):
    """The report folder must be creatable, checked before ape connects
    (nothing is created here: a run that fails leaves nothing behind)."""
    d = Path(value).resolve()
    while not d.exists():
        d = d.parent
    if not d.is_dir() or not os.access(d, os.W_OK | os.X_OK):
        raise click.ClickException(f"--out {value}: {d} is not a folder this user can write to")
    return value


@click.command(cls=ConnectedProviderCommand)
@click.option("--scenario", "sc", default=str(S.DEFAULT_PATH), show_default=True,
              envvar="BACKSTOP_SCENARIO", callback=_scenario_option, expose_value=True,
              help="scenario file (YAML, scenarios/crash.yaml documents every field); env BACKSTOP_SCENARIO")
@click.option("--keeper", "keeper_mode", type=click.Choice(["process", "fallback"]), default="process",
              show_default=True, help="process: run bots/keeper.py; fallback: the in-process keeper")
@click.option("--out", default=str(ROOT / "reports"), show_default=True, callback=_out_option,
              help="report folder")
def cli(sc, keeper_mode, out):
    """Play a crash on a devnet with the keeper running; report and check."""
    if networks.provider.network.name not in ("local", "development"):
        raise click.ClickException("the demo mints mock tokens and moves mock feeds: local networks only")
    logger.set_level("WARNING")
    result = run_demo(sc, accounts.test_accounts[0], keeper_mode, out)
    if not result.ok:
        sys.exit(1)
