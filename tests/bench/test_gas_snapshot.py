"""Gas regression against bench/gas-snapshot.json.

Runs the quick subset of scripts/bench.py's gas scenarios (the same
transactions, the same state, so the same numbers as
`ape run bench --quick`) and fails when an operation costs more than 5%
over its committed snapshot, or when an operation in the snapshot is no
longer measured. The trading verbs are orders: each `request order (...)`
row is the trader's request, each `execute order (...)` row the keeper's
execution of it after a later price round. After an intended change, rewrite the snapshot with

    ape run bench --network ethereum:local:foundry --update-snapshot

Cheaper is never a failure, but it is reported (a stale snapshot lets a
later regression hide under the 5%).
"""

import json
import warnings

from scripts.bench import SNAPSHOT, SNAPSHOT_TOLERANCE_BPS, measure_gas, snapshot_subset


def _grown(measured, snapshot):
    """{operation: (snapshot, measured)} for every operation over tolerance."""
    return {
        name: (snapshot[name], gas)
        for name, gas in measured.items()
        if name in snapshot and gas * 10_000 > snapshot[name] * (10_000 + SNAPSHOT_TOLERANCE_BPS)
    }


def test_grown__six_percent_over__is_reported_and_five_is_not():
    snapshot = {"execute order (open, new)": 100_000, "execute order (close, full)": 100_000}
    assert _grown({"execute order (open, new)": 106_000, "execute order (close, full)": 105_000}, snapshot) == {
        "execute order (open, new)": (100_000, 106_000)}


def test_snapshot__covers_the_order_verbs__and_none_of_the_removed_ones():
    snapshot = json.loads(SNAPSHOT.read_text())
    for verb in ("open", "increase", "remove margin", "close, partial", "close, full"):
        assert f"request order ({verb})" in snapshot
    for verb in ("open, new", "increase", "remove margin", "close, partial", "close, full"):
        assert f"execute order ({verb})" in snapshot
    assert "execute TP/SL" in snapshot and "set TP/SL" in snapshot
    assert not [name for name in snapshot if name.startswith(("open position", "close position", "increase position"))]


def test_gas__every_operation__within_five_percent_of_the_snapshot():
    snapshot = json.loads(SNAPSHOT.read_text())
    bench = measure_gas(quick=True)
    measured = snapshot_subset(bench.gas)

    missing = sorted(set(snapshot) - set(measured))
    assert not missing, f"operations in {SNAPSHOT.name} no longer measured: {missing}"
    unknown = sorted(set(measured) - set(snapshot))
    assert not unknown, f"operations measured but not in {SNAPSHOT.name} (update the snapshot): {unknown}"

    grown = _grown(measured, snapshot)
    assert not grown, "gas grew more than 5% over the snapshot:\n" + "\n".join(
        f"  {name}: {old:,} -> {new:,} (+{(new - old) * 100 / old:.1f}%)" for name, (old, new) in grown.items())

    cheaper = {n: (snapshot[n], g) for n, g in measured.items() if g * 10_000 < snapshot[n] * (10_000 - SNAPSHOT_TOLERANCE_BPS)}
    if cheaper:
        warnings.warn("cheaper than the snapshot by over 5% (consider --update-snapshot): " + ", ".join(
            f"{n} {old:,} -> {new:,}" for n, (old, new) in cheaper.items()))
