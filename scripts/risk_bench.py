"""The risk lab's speed (`make risk-bench`): bench/risk.json.

- one run of 10,000 accounts through the October-style path (299 ticks):
  opening and path seconds, accounts x ticks per second along the path,
  with the alternative ADL policies computed and without;
- a 1,000-scenario sweep (200-account books, one jump-diffusion path of
  300 ticks per seed) on one core in process and on a local Dask cluster of
  2 workers, with the check that both gave the same results.

Plain Python (no ape): python scripts/risk_bench.py [--sweep-scenarios N] [--out FILE]
"""

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from risk import sweep as S  # noqa: E402
from risk.book import BookSpec  # noqa: E402
from risk.lab import Run, Scenario  # noqa: E402


def one_run(accounts, path, policies):
    sc = Scenario(book=BookSpec(accounts=accounts), path=path, seed=1, policies=policies)
    t0, c0 = time.perf_counter(), time.process_time()
    r = Run(sc)
    r.open_book()
    t1, c1 = time.perf_counter(), time.process_time()
    r.run_path()
    t2, c2 = time.perf_counter(), time.process_time()
    res = r.result()
    ticks = len(r.path)
    return {"accounts": accounts, "path": path, "ticks": ticks, "policies": policies,
            "open_seconds": round(t1 - t0, 3), "path_seconds": round(t2 - t1, 3),
            "total_seconds": round(t2 - t0, 3),
            # CPU seconds of this process: what one core spent, whatever else the machine ran
            "open_cpu_seconds": round(c1 - c0, 3), "path_cpu_seconds": round(c2 - c1, 3),
            "account_ticks_per_cpu_second": round(accounts * ticks / (c2 - c1)),
            "account_ticks_per_second": round(accounts * ticks / (t2 - t1)),
            "account_ticks_per_second_with_opening": round(accounts * ticks / (t2 - t0)),
            "liquidations": res["liquidations"], "adl_fills": res["adl_fills"],
            "model_checks": res["checks"]}


def sweep(scenarios, ex):
    base = Scenario(book=BookSpec(accounts=200), path="jump")
    t0, c0 = time.perf_counter(), time.process_time()
    res = S.run_sweep(base, {}, scenarios, 0.99, ex)
    res["cpu_seconds_here"] = time.process_time() - c0  # in process: the whole sweep's CPU
    return time.perf_counter() - t0, res


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sweep-scenarios", type=int, default=1_000)
    ap.add_argument("--out", default=str(ROOT / "bench" / "risk.json"))
    a = ap.parse_args()
    out = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                       "load_average_at_start": os.getloadavg()[0]}, "runs": []}
    for policies in (True, False):
        r = one_run(10_000, "october", policies)
        print(f"10,000 accounts, october ({r['ticks']} ticks), policies {policies}: open {r['open_seconds']} s "
              f"({r['open_cpu_seconds']} s CPU), path {r['path_seconds']} s ({r['path_cpu_seconds']} s CPU, "
              f"{r['account_ticks_per_second']:,} account-ticks/s)", flush=True)
        out["runs"].append(r)
    if a.sweep_scenarios == 0:
        print(json.dumps(out, indent=1))
        return
    one_s, one = sweep(a.sweep_scenarios, S.InProcess())
    print(f"{a.sweep_scenarios}-scenario sweep, one core: {one_s:.1f} s ({one['cpu_seconds_here']:.1f} s CPU)", flush=True)
    ex = S.executor(local_cluster=2)
    try:
        two_s, two = sweep(a.sweep_scenarios, ex)
    finally:
        ex.close()
    print(f"{a.sweep_scenarios}-scenario sweep, local Dask cluster of 2: {two_s:.1f} s", flush=True)
    out["sweep"] = {"scenarios": a.sweep_scenarios, "book_accounts": 200, "path": "jump (300 ticks)",
                    "one_core_seconds": round(one_s, 2), "one_core_cpu_seconds": round(one["cpu_seconds_here"], 2),
                    "local_cluster_2_seconds": round(two_s, 2),
                    "identical": one["results"] == two["results"],
                    "fund_needed_99": one["points"][0]["fund_needed"]["value"],
                    "fund_needed_99_ci95": one["points"][0]["fund_needed"]["ci95"]}
    out["machine"]["load_average_at_end"] = os.getloadavg()[0]
    Path(a.out).write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {a.out}")
    if not out["sweep"]["identical"]:
        sys.exit("the sweep's results differ between in process and the cluster")


if __name__ == "__main__":
    main()
