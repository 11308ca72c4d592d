"""A sweep's results are the same to the unit in process and on a local
Dask cluster of two worker processes (seeded per scenario, put back in
task order)."""

from risk import sweep as S
from risk.book import BookSpec
from risk.lab import Scenario


def test_sweep__in_process_and_on_a_two_worker_local_cluster__identical():
    base = Scenario(book=BookSpec(accounts=120, per_side=60, insurance_fund=500), path="jump")
    grid = {"mmf_bps": [50, 70], "insurance_fund": [0, 3_000]}
    here = S.run_sweep(base, grid, scenarios=2, probability=0.5)
    ex = S.executor(local_cluster=2)
    try:
        assert len(ex.client.scheduler_info()["workers"]) == 2
        there = S.run_sweep(base, grid, scenarios=2, probability=0.5, ex=ex)
    finally:
        ex.close()
    assert here["tasks"] == there["tasks"] == 2 * 2 * 3
    assert here["results"] == there["results"]
    assert here["points"] == there["points"]
    assert there["executor"] == "local Dask cluster of 2 workers"
    # the runs are not all alike: the grid reaches the model
    assert len({r["liquidations"] for r in here["results"]}) > 1
