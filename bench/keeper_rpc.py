"""The keeper's JSON-RPC client (bots/rpc.py) against web3.py's batch
requests, on the keeper's three request shapes:

- the head poll: one eth_blockNumber (5 to 10 a second);
- a block's reads: 500 eth_call in one batch (the mirror re-reading
  positions, prices, aggregates);
- a settle: 200 eth_getTransactionReceipt in one batch.

    BACKSTOP_PORT=8611 scripts/with_anvil.sh .venv/bin/python bench/keeper_rpc.py

against the anvil on $BACKSTOP_PORT (nothing deployed: the calls go to the
identity precompile with 96 bytes of data, the receipts are of 200 plain
transfers). Prints the median of each over `REPEATS` runs and writes
bench/keeper-rpc.json.
"""

import json
import os
import statistics
import sys
import time
from pathlib import Path

from web3 import HTTPProvider, Web3

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bots import rpc as R  # noqa: E402

REPEATS = 15
IDENTITY = "0x0000000000000000000000000000000000000004"


def timed(fn, repeats=REPEATS):
    fn()  # warm: connections, caches
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return statistics.median(out)


def main():
    uri = f"http://127.0.0.1:{os.environ.get('BACKSTOP_PORT', '8547')}"
    ours = R.Rpc(uri, timeout=30)
    w3 = Web3(HTTPProvider(uri, request_kwargs={"timeout": 30}))
    assert w3.is_connected(), f"no node at {uri}"
    # web3 with its default middleware removed (validation, ENS names,
    # attribute dicts...): the least it does per request
    bare = Web3(HTTPProvider(uri, request_kwargs={"timeout": 30}))
    bare.middleware_onion.clear()

    # 200 transfers to read receipts of (automine: one block each)
    sender = w3.eth.accounts[0]
    hashes = ours.batch([("eth_sendTransaction", [{"from": sender, "to": IDENTITY, "value": "0x1"}])
                         for _ in range(200)])
    # one at a time: a batch of sends from one account is not ordered
    hashes = [ours.request("eth_sendTransaction", [{"from": sender, "to": IDENTITY, "value": "0x1"}])
              for _ in range(200)] if any(isinstance(h, Exception) for h in hashes) else hashes
    time.sleep(0.5)
    calls = [{"to": IDENTITY, "data": "0x" + f"{i:0192x}"} for i in range(500)]

    def ours_calls():
        res = ours.batch([("eth_call", [c, "latest"]) for c in calls])
        assert len(res) == 500 and all(isinstance(r, str) for r in res)

    def web3_calls(w3=w3):
        with w3.batch_requests() as batch:
            for c in calls:
                batch.add(w3.eth.call(c, "latest"))
            res = batch.execute()
        assert len(res) == 500

    def ours_receipts():
        res = ours.batch([("eth_getTransactionReceipt", [h]) for h in hashes])
        assert all(isinstance(r, dict) for r in res)

    def web3_receipts(w3=w3):
        with w3.batch_requests() as batch:
            for h in hashes:
                batch.add(w3.eth.get_transaction_receipt(h))
            res = batch.execute()
        assert len(res) == 200

    rows = {
        "head poll (eth_blockNumber)": (timed(lambda: ours.request("eth_blockNumber", []), 200),
                                        timed(lambda: w3.eth.block_number, 200),
                                        timed(lambda: bare.eth.block_number, 200)),
        "500 eth_call, one batch": (timed(ours_calls), timed(web3_calls), timed(lambda: web3_calls(bare))),
        "200 receipts, one batch": (timed(ours_receipts), timed(web3_receipts), timed(lambda: web3_receipts(bare))),
    }
    print(f"{'request':<30} {'bots/rpc.py ms':>15} {'web3.py ms':>12} {'bare web3 ms':>13}")
    for name, (a, b, c) in rows.items():
        print(f"{name:<30} {a:>15.2f} {b:>12.2f} {c:>13.2f}")
    out = {name: {"bots_rpc_ms": round(a, 3), "web3_ms": round(b, 3), "web3_no_middleware_ms": round(c, 3)}
           for name, (a, b, c) in rows.items()}
    out["web3_version"] = __import__("web3").__version__
    Path(__file__).with_name("keeper-rpc.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
