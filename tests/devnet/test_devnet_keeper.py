"""The devnet path end to end, as the README's three terminals run it:
`make devnet` in the background (anvil, the project's 30 accounts, a block
a second), `make deploy` (writes the manifest), `make keeper` (reads it),
with traders and an oracle driven from this test, which reads the same
manifest for every address.

What must show: the keeper executes orders and liquidates positions; its
metrics endpoint is scraped and each counter checked against the chain
(receipts and events); liquidations stuck behind transactions that outbid
them are replaced with higher fees and mined once (anvil drops a
transaction whose fee falls below the base fee rather than keep it
pending, so a base-fee spike would show a drop and a resend, not a
replacement); after the chain is reset the
keeper stays up, reports unhealthy while the engine has no code, and
reloads and liquidates again once the deployment is back.

The devnet runs on a free port of its own, its manifest in a temporary
folder, so neither the suite's node nor deployments/ is touched.
"""

import json
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests
from eth_abi import decode

from bots import devnet as D
from bots import rpc as R
from bots.devnet import USDC, WAD, Spec
from scripts import manifest as mf

ROOT = Path(__file__).resolve().parents[2]
BTC, ETH = 0, 1
TENTH = WAD // 10
KEEPER = "0x90F79bf6EB2c4f870365E785982E1f101E93b906"  # TEST::3
# The suite installed and compiled already: never reinstall or recompile
# under the other tests' feet (make would, were requirements.txt or a
# contract source newer than its stamp).
MAKE = ["--no-print-directory", "-o", ".venv/.stamp", "-o", "node_modules/.stamp", "-o", ".vvm/vyper-0.4.3", "-o",
        ".build/.stamp"]
BLOCK_GAS = 800_000  # while the fillers run: four of them fill a block
FILLER_GAS = 200_000  # 4,000 calldata bytes: 181k gas under EIP-7623's floor


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(what, check, timeout=30.0, every=0.1):
    end = time.time() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.time() > end:
            raise TimeoutError(f"{what}: not within {timeout}s")
        time.sleep(every)


class Background:
    """A make target in its own process group, output to a file."""

    def __init__(self, target, env, log, *args):
        self.log = Path(log)
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen(["make", *MAKE, target, *args], cwd=ROOT, env=env,
                                         stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)

    def text(self):
        return self.log.read_text()

    def wait_for(self, needle, timeout=30.0, count=1):
        def seen():
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.log.name}: exited {self.proc.returncode}:\n{self.text()[-3000:]}")
            return self.text().count(needle) >= count
        try:
            _wait(f"{needle!r} in {self.log.name}", seen, timeout)
        except TimeoutError as e:
            raise TimeoutError(f"{e}\n{self.text()[-3000:]}") from None

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        return self.proc.returncode


@pytest.fixture
def devnet(tmp_path):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KEEPER_", "MAKE", "MFLAGS"))}
    env.update(BACKSTOP_PORT=str(port), BACKSTOP_DEPLOYMENTS=str(tmp_path / "deployments"))
    node = Background("devnet", env, tmp_path / "devnet.log", "DEVNET_ARGS=--silent")
    uri = f"http://127.0.0.1:{port}"
    rpc = R.Rpc(uri, timeout=5)

    def up():
        try:
            return int(rpc.request("eth_blockNumber", []), 16) >= 0
        except R.RpcError:
            if node.proc.poll() is not None:
                raise RuntimeError(f"make devnet exited:\n{node.text()}")
            return False
    _wait("make devnet answering", up, timeout=60)
    yield SimpleNamespace(env=env, uri=uri, node=D.Node(uri), tmp=tmp_path, port=port)
    node.stop()


def _protocol(m):
    """What bots.devnet's helpers need, from the manifest."""
    at = lambda a: SimpleNamespace(address=a)  # noqa: E731
    c = m.contracts
    return SimpleNamespace(engine=at(c.engine), token=at(c.token), vault=at(c.vault),
                           feeds=[at(mk.feed) for mk in m.markets])


def _metrics(url):
    """{(name, frozenset(labels)): value} of a Prometheus text page."""
    out = {}
    for line in requests.get(url, timeout=5, proxies={"http": None}).text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, value = line.rsplit(" ", 1)
        labels = frozenset()
        if "{" in name:
            name, rest = name.split("{", 1)
            labels = frozenset(re.findall(r'(\w+)="([^"]*)"', rest))
        out[(name, labels)] = float(value)
    return out


def _metric(page, name, **labels):
    return page.get((name, frozenset(labels.items())), 0.0)


def _price_now(node, p, market_id, usd, sender):
    """With mining held: send a feed update and mine it; its block."""
    node.set_balances([sender])
    node.rpc.request("anvil_impersonateAccount", [sender])
    h = node.rpc.request("eth_sendTransaction", [{"from": sender, "to": p.feeds[market_id].address, "gas": hex(200_000),
                                                  "data": R.calldata("set_answer(int256)", ["int256"],
                                                                     [usd * D.FEED_UNIT])}])
    node.rpc.request("evm_mine", [])
    (rc,) = node.receipts([h], timeout=10)
    assert int(rc["status"], 16) == 1
    return int(rc["blockNumber"], 16)


def _fill_blocks(node, senders):
    """Transactions that bid 100 gwei a gas for block space (the keeper
    bids about 1): with BLOCK_GAS, four fill a block and nothing of the
    keeper's fits beside them."""
    node.set_balances(senders)
    node.rpc.request("anvil_autoImpersonateAccount", [True])
    try:
        res = node.rpc.batch([("eth_sendTransaction", [{
            "from": s, "to": s, "gas": hex(FILLER_GAS), "data": "0x" + "ff" * 4000,
            "maxFeePerGas": hex(200 * 10**9), "maxPriorityFeePerGas": hex(100 * 10**9)}]) for s in senders])
    finally:
        node.rpc.request("anvil_autoImpersonateAccount", [False])
    assert not [r for r in res if isinstance(r, Exception)], res


def _keeper_receipts(node, from_block, to_block):
    blocks = node.rpc.batch([("eth_getBlockByNumber", [hex(n), True]) for n in range(from_block, to_block + 1)])
    txs = [tx for b in blocks for tx in b["transactions"] if tx["from"].lower() == KEEPER.lower()]
    return txs, node.receipts([tx["hash"] for tx in txs])


def test_devnet__make_devnet_deploy_keeper__orders_liquidations_metrics_stuck_tx_and_reset(devnet):
    env, node = devnet.env, devnet.node
    t0 = time.time()

    # ---- make deploy: the manifest
    r = subprocess.run(["make", *MAKE, "deploy"], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    m = mf.load(devnet.tmp / "deployments" / "local.json")
    assert f"lens            {m.contracts.lens}" in r.stdout
    assert m.chain_id == 31337 and len(m.markets) == 2 and m.markets[0].name == "BTC-PERP"
    assert node.rpc.request("eth_getBlockByNumber", [hex(m.block), False])["hash"] == m.block_hash
    for name, address in m.contracts.model_dump().items():
        assert node.rpc.request("eth_getCode", [address, "latest"]) not in ("0x", None), name
    p = _protocol(m)
    deployed = time.time()

    # ---- traders, fast (automine): 50x and 25x BTC longs, three ETH orders pending
    t = D.trader_address
    node.automine()
    D.provide_liquidity(node, p, t("lp"), 2_000_000 * USDC)
    first = [Spec(t(f"50x-{i}"), BTC, TENTH, 160 * USDC) for i in range(3)]  # liquidatable at 78,500
    second = [Spec(t(f"25x-{i}"), BTC, TENTH, 320 * USDC) for i in range(2)]  # liquidatable at 77,000
    D.open_positions(node, p, first + second)
    orders = [Spec(t(f"eth-{i}"), ETH, WAD, 300 * USDC) for i in range(3)]
    ids, requested_at, _ = D.request_orders(node, p, orders)
    node.interval(1)  # back to the devnet's block a second

    # ---- make keeper: from the manifest; settings from a file and the environment, JSON logs
    (devnet.tmp / "keeper.yaml").write_text(f"state-file: {devnet.tmp / 'keeper-state.json'}\npoll: 0.1\n"
                                            "stuck-blocks: 2\nlog-format: json\n")
    keeper = Background("keeper", {**env, "KEEPER_HEARTBEAT": "2"}, devnet.tmp / "keeper.log", "METRICS_PORT=0",
                        f"KEEPER_ARGS=--config {devnet.tmp / 'keeper.yaml'}")
    try:
        keeper.wait_for("start: block", timeout=60)
        assert f"from {devnet.tmp / 'deployments' / 'local.json'}" in keeper.text()
        assert "3 pending orders" in keeper.text()
        url = re.search(r"metrics (http://\S+/metrics)", keeper.text()).group(1)
        start = node.head()

        # orders: executed by the keeper in the block after a later round
        round_block = D.later_round(node, p, [ETH], t("oracle"), requested_at)
        _wait("orders executed", lambda: len(D.order_blocks(node, m.contracts.engine, round_block)) == 3, 15)
        done = D.order_blocks(node, m.contracts.engine, round_block)
        assert {oid: v[1] for oid, v in done.items()} == {oid: "executed" for oid in ids}

        # a crash; once the keeper's liquidations are in the pool, blocks
        # fill up with transactions that outbid them (four fillers a block
        # for four blocks): they are stuck, replaced with higher fees, and
        # mined once the fillers are gone. Blocks are held until the sends.
        node.interval(0)
        limit = node.rpc.request("eth_getBlockByNumber", ["latest", False])["gasLimit"]
        node.rpc.request("evm_setBlockGasLimit", [hex(BLOCK_GAS)])
        crash = _price_now(node, p, BTC, 78_500, t("oracle"))
        keeper.wait_for('"sent liquidate', count=3, timeout=15)
        _fill_blocks(node, [t(f"filler-{i}") for i in range(16)])
        node.interval(1)
        keeper.wait_for("replaced liquidate", count=3, timeout=20)
        _wait("50x liquidated", lambda: len(D.liquidation_blocks(node, m.contracts.engine, crash)) == 3, 20)
        node.rpc.request("evm_setBlockGasLimit", [limit])
        keeper.wait_for("mined liquidate", count=3)
        liquidated = D.liquidation_blocks(node, m.contracts.engine, crash)
        assert sorted(liquidated) == sorted((s.trader, BTC) for s in first)
        assert all(len(b) == 1 and b[0] >= crash + 3 for b in liquidated.values()), liquidated  # after the stuck blocks
        replaced = keeper.text().count("replaced liquidate")
        assert replaced >= 3
        first_hashes = set(re.findall(r'"sent liquidate [^"]* (0x[0-9a-f]{64})"', keeper.text()))
        assert len(first_hashes) == 3

        # metrics: each counter against the chain
        node.wait_for_block(node.head() + 2)
        end = node.head()
        txs, receipts = _keeper_receipts(node, start, end)
        assert not first_hashes & {tx["hash"] for tx in txs}  # what was mined are the replacements
        assert sorted(int(tx["nonce"], 16) for tx in txs) == list(range(6))  # 3 orders, 3 liquidations, no gap
        page = _metrics(url)
        assert _metric(page, "backstop_keeper_actions_total", kind="order", outcome="mined") == 3
        assert _metric(page, "backstop_keeper_actions_total", kind="liquidate", outcome="sent") == 3
        assert _metric(page, "backstop_keeper_actions_total", kind="liquidate", outcome="replaced") == replaced
        assert _metric(page, "backstop_keeper_actions_total", kind="liquidate", outcome="mined") == 3
        fee = m.markets[ETH].params["execution_fee"]
        assert _metric(page, "backstop_keeper_rewards_earned_tokens_total", kind="order") == 3 * fee / USDC
        rewards = sum(decode(["int256", "uint256", "uint256", "uint256", "uint256"], bytes.fromhex(lg["data"][2:]))[3]
                      for lg in node.logs(m.contracts.engine, D.LIQUIDATED, crash))
        rewards += sum(sum(decode(["uint256", "uint256"], bytes.fromhex(lg["data"][2:])))  # the floor's top-ups
                       for lg in node.logs(m.contracts.engine, R.KEEPER_PAID, crash))
        assert rewards > 0
        assert _metric(page, "backstop_keeper_rewards_earned_tokens_total", kind="liquidate") == pytest.approx(
            rewards / USDC, abs=1e-9)
        assert _metric(page, "backstop_keeper_gas_used_total") == sum(int(rc["gasUsed"], 16) for rc in receipts)
        spent = sum(int(rc["gasUsed"], 16) * int(rc["effectiveGasPrice"], 16) for rc in receipts)
        assert spent > 0 and _metric(page, "backstop_keeper_gas_spent_wei_total") == pytest.approx(spent, rel=1e-12)
        assert _metric(page, "backstop_keeper_in_flight") == 0
        assert _metric(page, "backstop_keeper_balance_wei") == pytest.approx(
            int(node.rpc.request("eth_getBalance", [KEEPER, "latest"]), 16), rel=1e-12)
        assert 0 <= _metric(page, "backstop_keeper_lag_blocks") <= 2
        assert _metric(page, "backstop_keeper_unexpected_total") == 0
        health = requests.get(url.replace("/metrics", "/health"), timeout=5, proxies={"http": None})
        assert health.status_code == 200 and health.json()["status"] == "ok"
        keeper.wait_for("heartbeat: head")

        # ---- the chain is reset: the keeper waits, unhealthy, then reloads
        saved = node.rpc.request("anvil_dumpState", [])
        node.rpc.request("anvil_reset", [])
        keeper.wait_for("has no code at the head", timeout=15)
        health = requests.get(url.replace("/metrics", "/health"), timeout=5, proxies={"http": None})
        assert health.status_code == 503 and "has no code" in health.json()["reason"]
        node.rpc.request("anvil_loadState", [saved])
        keeper.wait_for("has code again: reloading", timeout=15)
        keeper.wait_for("start: block", count=2, timeout=15)
        again = D.set_price(node, p, BTC, 77_000, t("oracle"))
        _wait("25x liquidated", lambda: len(D.liquidation_blocks(node, m.contracts.engine, again)) == 2, 20)
        assert sorted(D.liquidation_blocks(node, m.contracts.engine, again)) == sorted((s.trader, BTC) for s in second)
        keeper.wait_for("mined liquidate", count=5)  # settled from its receipts, a block later
        _wait("healthy again", lambda: requests.get(url.replace("/metrics", "/health"), timeout=5,
                                                    proxies={"http": None}).status_code == 200, 10)
        page = _metrics(url)
        assert _metric(page, "backstop_keeper_chain_resets_total") == 1
        assert _metric(page, "backstop_keeper_actions_total", kind="liquidate", outcome="mined") == 5
        assert "Traceback" not in keeper.text() and "unexpected revert" not in keeper.text()
        lines = [json.loads(line) for line in keeper.text().splitlines() if line.startswith("{")]
        assert len(lines) > 20 and {x["level"] for x in lines} <= {"info", "warning"}
        assert [x for x in keeper.text().splitlines() if not x.startswith("{")] == keeper.text().splitlines()[:2]
    finally:
        code = keeper.stop()
    assert code in (0, -signal.SIGTERM), keeper.text()[-2000:]  # SIGTERM reaches make and the keeper together
    print(f"devnet e2e: deploy {deployed - t0:.1f}s, the rest {time.time() - deployed:.1f}s")
