"""The deep in-process run on every core: one forked worker per core, each
with the session its parent built (compiled, deployed, mirrored, funded:
revm's state is plain memory, so a fork carries it) and its own hypothesis
seed, until the workers' steps add up to the target.

    stats, failures = run_parallel(session, settings, steps, workers, seed0)

Worker i runs with seed seed0 + i; a failure comes back as its text, which
names the seed: BACKSTOP_SEED=<seed> make fuzz-deep BACKSTOP_WORKERS=1
replays it (hypothesis also prints its @reproduce_failure line).
"""

import multiprocessing as mp
import time
import traceback
from collections import Counter

from tests.stateful.machine import run

# What the forked workers inherit (a revm EVM does not pickle; a fork copies it).
_JOB = {}


def _worker(seed):
    """Run until this worker's share of steps is done; return (stats, None)
    or (stats, failure text): the seed to replay it, hypothesis's own report
    (the shrunk steps, the @reproduce_failure line) and each error's message."""
    session, settings, steps = _JOB["session"], _JOB["settings"], _JOB["steps"]
    stats = Counter()
    current = seed
    try:
        while stats["steps"] < steps:
            run(session, settings, stats, seed=current)
            current += 1_000_000  # the next run's own stream
        return dict(stats), None
    except BaseException as exc:  # noqa: BLE001 - reported by the parent, with the seed
        errors = exc.exceptions if isinstance(exc, BaseExceptionGroup) else [exc]
        # hypothesis attaches the shrunk steps and the @reproduce_failure
        # line to each error as notes (PEP 678)
        messages = [f"{type(e).__name__}: {str(e)[:1500]}\n" + "\n".join(getattr(e, "__notes__", []))
                    for e in errors]
        text = (f"worker seed {current} (replay: BACKSTOP_SEED={current} "
                f"BACKSTOP_WORKERS=1 make fuzz-deep)\n\n" + "\n\n".join(messages))
        return dict(stats), text + "\n\n" + "".join(traceback.format_exception(errors[0]))[-2000:]


def run_parallel(session, settings, steps, workers, seed0):
    """(summed stats with per-worker steps/s, [failure texts])."""
    _JOB.update(session=session, settings=settings, steps=-(-steps // workers))  # ceil
    t0 = time.perf_counter()
    try:
        with mp.get_context("fork").Pool(workers) as pool:
            results = pool.map(_worker, [seed0 + i for i in range(workers)], chunksize=1)
    finally:
        _JOB.clear()
    total = Counter()
    failures = []
    for stats, failure in results:
        total["worker_seconds"] += stats.pop("seconds", 0.0)
        total.update(stats)
        if failure:
            failures.append(failure)
    # the wall clock of the whole run, forks included: the aggregate rate
    total["seconds"] = time.perf_counter() - t0
    # exit checks as the same share of the wall clock as of the workers' time
    total["worker_exit_seconds"] = total["exit seconds"]
    total["exit seconds"] = total["seconds"] * total["exit seconds"] / max(total["worker_seconds"], 1e-9)
    total["workers"] = workers
    return total, failures
