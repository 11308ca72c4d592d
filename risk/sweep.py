"""Sweeps: many scenarios, in process or on a Dask cluster, and the fund
size they call for.

A sweep is a grid of parameter values (insurance fund, any market field of
config/networks.yaml such as mmf_bps or liq_fee_bps, the engine's
max_profit_bps) crossed with `scenarios` seeds. Each (grid point, seed) is
one task: a book drawn from the seed and, for the `jump` path, a
jump-diffusion path from the same seed. A task is a pure function of its
inputs, so its result is the same to the unit wherever it runs; results
are put back in task order.

The headline: for each grid point but the fund, every seed also runs with a
fund that cannot run dry (`UNLIMITED_FUND`), which gives that scenario's
exact fund need F* (risk/lab.py, `fund_needed`): the smallest starting fund
that pays every bad debt in full, so nothing reaches the winners (ADL) or
the LPs (socialized loss). The fund for probability q is the empirical q
quantile of F*, with a distribution-free confidence interval from the
order statistics (binomial). Each fund value of the grid is also run as
is, and its probability of no socialized loss and of no ADL are given with
Wilson intervals.
"""

import itertools
import math
import time
from fractions import Fraction

from risk.errors import LabError
from risk.lab import Scenario, run

UNLIMITED_FUND = 10**12  # whole tokens: no run here draws that much
ENGINE_KEYS = ("max_profit_bps", "min_keeper_reward_units", "min_notional_units")
BOOK_KEYS = ("insurance_fund", "lp_deposit", "long_percent", "accounts")


def _compact(res):
    """What a sweep keeps of a run: the integers, no per-tick series."""
    keep = ("liquidations", "bankrupt_liquidations", "bad_debt", "fund_drawn", "adl_fills", "accounts_hit",
            "haircuts", "socialized_loss", "keeper_rewards", "capacity_refusals", "opened", "fund_needed",
            "tp_sl_executed")
    return {k: res[k] for k in keep}


def scenario_for(base, point, seed, fund=None):
    """The Scenario of one grid point and seed."""
    book = base.book.model_copy(update={k: v for k, v in point.items() if k in BOOK_KEYS})
    if fund is not None:
        book = book.model_copy(update={"insurance_fund": fund})
    market = {**base.market, **{k: v for k, v in point.items() if k not in BOOK_KEYS and k not in ENGINE_KEYS}}
    engine = {**base.engine, **{k: v for k, v in point.items() if k in ENGINE_KEYS}}
    return Scenario(book=book, path=base.path, seed=seed, market=market, engine=engine, policies=False)


def run_task(task):
    """One task: (index, Scenario as a dict) -> (index, compact result).
    Module-level so Dask can ship it by reference."""
    i, sc = task
    return i, _compact(run(Scenario.model_validate(sc)))


def tasks_for(base, grid, scenarios, first_seed=1):
    """Every task of a sweep, in a fixed order: grid points (the product of
    the grid's values, keys in the order given), each with a need run (a
    fund that cannot run dry) and a run at each fund value, per seed."""
    keys = list(grid)
    fund_values = grid.get("insurance_fund")
    other = [k for k in keys if k != "insurance_fund"]
    points = [dict(zip(other, vals)) for vals in itertools.product(*[grid[k] for k in other])] or [{}]
    tasks, index = [], []
    for p in points:
        for s in range(first_seed, first_seed + scenarios):
            tasks.append(scenario_for(base, p, s, UNLIMITED_FUND))
            index.append((p, None, s))
            for f in fund_values or ():
                tasks.append(scenario_for(base, {**p, "insurance_fund": f}, s))
                index.append((p, f, s))
    return points, tasks, index


# ---------------------------------------------------------------- statistics

def wilson(k, n, z=1.96):
    """Wilson score interval of a proportion k/n (95% for z = 1.96)."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    d = 1 + z * z / n
    c = p + z * z / (2 * n)
    r = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    # the interval holds p (rounding could leave 1.0 a hair above the upper end)
    return (min(p, max(0.0, (c - r) / d)), max(p, min(1.0, (c + r) / d)))


def _binom_cdf(k, n, q):
    """P(Binomial(n, q) <= k), exactly (q a Fraction)."""
    return sum(math.comb(n, i) * q**i * (1 - q) ** (n - i) for i in range(0, k + 1))


def quantile_ci(values, q, confidence=Fraction(95, 100)):
    """The empirical q quantile of `values` (the smallest v with at least
    q of them <= v) and a distribution-free interval [x_(l), x_(u)] (order
    statistics, 1-based) with P(x_(l) <= true quantile <= x_(u)) >= the
    confidence, from the binomial distribution of how many fall below it.
    An end the sample cannot reach is None."""
    xs = sorted(values)
    n = len(xs)
    if n == 0:
        return None, (None, None)
    qf = Fraction(q).limit_denominator(10**6)
    k = max(1, math.ceil(qf * n))
    point = xs[k - 1]
    alpha = (1 - confidence) / 2
    # lower: the largest l with P(B <= l - 1) <= alpha; upper: the smallest u with P(B <= u - 1) >= 1 - alpha
    lo = None
    for l in range(k, 0, -1):
        if _binom_cdf(l - 1, n, qf) <= alpha:
            lo = xs[l - 1]
            break
    hi = None
    for u in range(k, n + 1):
        if _binom_cdf(u - 1, n, qf) >= 1 - alpha:
            hi = xs[u - 1]
            break
    return point, (lo, hi)


# ---------------------------------------------------------------- executors

class InProcess:
    name = "in process"

    def map(self, fn, tasks):
        for t in tasks:
            yield fn(t)

    def close(self):
        pass


class DaskExecutor:
    """A Dask distributed client: an existing scheduler (`address`) or a
    local cluster of `workers` processes, one thread each."""

    def __init__(self, address=None, workers=None, timeout=10):
        try:
            from distributed import Client, LocalCluster
        except ImportError:  # pragma: no cover - pinned in requirements.txt
            raise LabError("dask[distributed] is not installed (make install)") from None
        self.cluster = None
        if address is not None:
            self.name = f"Dask cluster at {address}"
            _probe(address, timeout)
            try:
                self.client = Client(address, timeout=timeout)
            except (OSError, TimeoutError) as e:
                raise LabError(f"cluster {address}: no answer within {timeout} s ({type(e).__name__})") from None
            except Exception as e:  # noqa: BLE001 - whatever answered is not a Dask scheduler
                raise LabError(f"cluster {address}: no Dask scheduler answers there ({type(e).__name__})") from None
        else:
            self.name = f"local Dask cluster of {workers} workers"
            try:
                self.cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                            dashboard_address=None, silence_logs=50)
                self.client = Client(self.cluster)
            except Exception as e:  # noqa: BLE001 - said in one line
                raise LabError(f"a local Dask cluster of {workers} workers did not start: {type(e).__name__}: {e}") from None

    def map(self, fn, tasks):
        from distributed import as_completed
        futures = self.client.map(fn, tasks, pure=False)
        for f in as_completed(futures):
            try:
                yield f.result()
            except LabError:
                raise
            except Exception as e:  # noqa: BLE001 - a worker's failure, said in one line
                hint = " (the workers need this repository on their PYTHONPATH)" if isinstance(e, ImportError) else ""
                raise LabError(f"a task failed on the {self.name}: {type(e).__name__}: {e}{hint}") from None

    def close(self):
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def _probe(address, timeout):
    """A TCP connection to the scheduler first: a refused or silent port is
    one line at once, not Dask's retries until its timeout."""
    import socket
    from urllib.parse import urlsplit
    u = urlsplit(address if "://" in address else "tcp://" + address)
    try:
        host, port = u.hostname, u.port or 8786
    except ValueError:
        raise LabError(f"cluster {address}: not a scheduler address (tcp://host:port)") from None
    if u.scheme not in ("tcp", "tls") or not host:
        raise LabError(f"cluster {address}: not a scheduler address (tcp://host:port)")
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as e:
        raise LabError(f"cluster {address}: no answer ({e.strerror or type(e).__name__})") from None


def executor(local_cluster=None, cluster=None):
    if local_cluster is not None and cluster is not None:
        raise LabError("choose one of --local-cluster and --cluster")
    if cluster is not None:
        return DaskExecutor(address=cluster)
    if local_cluster is not None:
        if local_cluster < 1:
            raise LabError(f"--local-cluster {local_cluster}: at least 1 worker")
        return DaskExecutor(workers=local_cluster)
    return InProcess()


# ---------------------------------------------------------------- the sweep

def run_sweep(base, grid, scenarios, probability=0.99, ex=None, progress=None):
    """Every task of the sweep on `ex` (default in process); the summary."""
    if scenarios < 1:
        raise LabError("sweep: scenarios must be at least 1")
    if not 0 < probability < 1:
        raise LabError(f"sweep: probability must be between 0 and 1, got {probability}")
    points, tasks, index = tasks_for(base, grid, scenarios)
    ex = ex or InProcess()
    payload = [(i, t.model_dump(mode="json")) for i, t in enumerate(tasks)]
    results = [None] * len(tasks)
    t0 = time.perf_counter()
    for i, res in ex.map(run_task, payload):
        results[i] = res
        if progress:
            progress(index[i], res)
    wall = time.perf_counter() - t0
    return summarize(points, index, results, grid.get("insurance_fund"), probability, wall, ex.name)


def summarize(points, index, results, fund_values, probability, wall, where):
    out = {"probability": probability, "wall_seconds": round(wall, 3), "executor": where,
           "tasks": len(results), "points": []}
    for p in points:
        rows = [(f, s, r) for (pp, f, s), r in zip(index, results) if pp == p]
        need = [r["fund_needed"] for f, s, r in rows if f is None]
        point, (lo, hi) = quantile_ci(need, probability)
        entry = {"params": p, "fund_needed": {"value": point, "ci95": [lo, hi], "per_seed": need},
                 "funds": []}
        for f in fund_values or ():
            rs = [r for ff, s, r in rows if ff == f]
            n = len(rs)
            no_social = sum(1 for r in rs if r["socialized_loss"] == 0)
            no_adl = sum(1 for r in rs if r["adl_fills"] == 0 and r["socialized_loss"] == 0)
            entry["funds"].append({
                "insurance_fund": f, "runs": n,
                "p_no_socialized": no_social / n, "p_no_socialized_ci95": wilson(no_social, n),
                "p_no_adl": no_adl / n, "p_no_adl_ci95": wilson(no_adl, n),
                "mean_liquidations": sum(r["liquidations"] for r in rs) / n,
                "mean_bad_debt": sum(r["bad_debt"] for r in rs) / n,
                "mean_adl_fills": sum(r["adl_fills"] for r in rs) / n,
                "mean_socialized": sum(r["socialized_loss"] for r in rs) / n,
                "capacity_refusals": sum(r["capacity_refusals"] for r in rs),
            })
        out["points"].append(entry)
    out["results"] = [{"params": p, "insurance_fund": f, "seed": s, **r} for (p, f, s), r in zip(index, results)]
    return out
