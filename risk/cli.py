"""python -m risk: the risk lab's command line.

    python -m risk run --accounts 10000 --path october          one run, the policy table, a report
    python -m risk policies --accounts 10000 --path seed --path october   the table for docs/risk.md
    python -m risk sweep --scenarios 200 --fund 0,20000,100000 --set mmf_bps=50,75 [--local-cluster 2]

Every bad input (an unknown policy or path, a negative price in a CSV, an
empty book, a cluster that does not answer, a market field the deploy
would refuse) is one line on stderr and exit status 2, before any run.
"""

import json
import sys
import time
from pathlib import Path

import click
from pydantic import ValidationError
from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)

from risk.book import BookSpec
from risk.errors import LabError
from risk.lab import Scenario, Run
from risk.paths import make_path
from risk.policies import POLICIES

ROOT = Path(__file__).resolve().parent.parent
err = Console(stderr=True)


def _pairs(values, what):
    """KEY=V[,V...] options -> {key: [ints]}."""
    out = {}
    for item in values:
        if "=" not in item:
            raise LabError(f"{what} {item!r}: expected KEY=VALUE")
        k, v = item.split("=", 1)
        try:
            out[k.strip()] = [int(x) for x in v.split(",")]
        except ValueError:
            raise LabError(f"{what} {item!r}: values must be integers") from None
    return out


def _ints(text, what):
    try:
        return [int(x) for x in text.split(",")] if text else []
    except ValueError:
        raise LabError(f"{what} {text!r}: a comma-separated list of integers") from None


def _book(accounts, fund, lp, long_percent):
    upd = {"accounts": accounts}
    if fund is not None:
        upd["insurance_fund"] = fund
    if lp is not None:
        upd["lp_deposit"] = lp
    if long_percent is not None:
        upd["long_percent"] = long_percent
    return BookSpec(**upd)


def _check_policy(policy):
    if policy != "all" and policy not in POLICIES:
        raise LabError(f"unknown policy {policy!r} (known: all, {', '.join(POLICIES)})")


def _one(path, seed, book, market, engine, progress_label=None):
    sc = Scenario(book=book, path=path, seed=seed, market=market, engine=engine)
    r = Run(sc)
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.fields[info]}"), console=err, transient=True) as prog:
        task = prog.add_task(f"{progress_label or path}: opening {book.accounts:,} accounts", total=len(r.path), info="")
        r.open_book()
        prog.update(task, description=f"{progress_label or path}: path")

        def step():
            prog.update(task, advance=1, info=f"liquidations {r.m.liquidations:,}  ADL fills {r.m.adl_fills:,}")
        t0 = time.perf_counter()
        r.run_path(step)
    res = r.result()
    res["path_seconds"] = round(time.perf_counter() - t0, 3)
    return res


@click.group()
def cli():
    """Backstop's risk lab: crash cascades through the exact model."""


_common = [
    click.option("--accounts", default=1_000, show_default=True, type=int, help="traders in the book"),
    click.option("--seed", default=1, show_default=True, type=int),
    click.option("--fund", default=None, type=int, help="insurance fund, whole tokens (default 20,000)"),
    click.option("--lp", default=None, type=int, help="LP deposit, whole tokens (default 50,000,000)"),
    click.option("--long-percent", default=None, type=int, help="share of longs (crowding), default 60"),
    click.option("--set", "sets", multiple=True, help="a market field of config/networks.yaml, KEY=VALUE"),
    click.option("--engine", "engine", multiple=True, help="an engine parameter: max_profit_bps, min_keeper_reward_units, min_notional_units (KEY=VALUE)"),
]


def common(f):
    for o in reversed(_common):
        f = o(f)
    return f


def _single(pairs, what):
    for k, v in pairs.items():
        if len(v) != 1:
            raise LabError(f"{what} {k}: one value here (a list is for sweeps)")
    return {k: v[0] for k, v in pairs.items()}


@cli.command("run")
@common
@click.option("--path", "path", default="seed", show_default=True,
              help="seed | october | squeeze | jump | csv:FILE")
@click.option("--policy", default="all", show_default=True, help="ADL policy to show: all, ranking, pro_rata, drain")
@click.option("--out", type=click.Path(), default=None, help="report folder (default reports/risk/<path>-<time>)")
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON on stdout")
def run_cmd(accounts, seed, fund, lp, long_percent, sets, engine, path, policy, out, as_json):
    """One scenario: metrics, the ADL policies side by side, a report."""
    _check_policy(policy)
    make_path(path, seed)  # a bad path fails here, before the book is drawn
    book = _book(accounts, fund, lp, long_percent)
    res = _one(path, seed, book, _single(_pairs(sets, "--set"), "--set"), _single(_pairs(engine, "--engine"), "--engine"))
    if policy != "all":
        res["policies"] = {policy: res["policies"][policy]}
    _show_run(res, path, policy)
    folder = Path(out) if out else ROOT / "reports" / "risk" / f"{path.replace(':', '-').replace('/', '_')}-{time.strftime('%Y%m%d-%H%M%S')}"
    from risk import report
    if policy == "all":
        page = report.write_run(res, folder, f"Risk lab: {path}, {accounts:,} accounts, seed {seed}")
        err.print(f"report: {page}")
    if as_json:
        click.echo(json.dumps({k: v for k, v in res.items() if k != "series"}, sort_keys=True))


def _show_run(res, path, policy):
    from rich.table import Table
    from risk import report
    t = Table(title=f"{path}: {res['accounts']:,} accounts, {res['ticks']} ticks ({res['path_seconds']:.2f} s)")
    t.add_column("metric")
    t.add_column("value", justify="right")
    for k, v in report.run_rows(res):
        t.add_row(k, v)
    err.print(t)
    if policy == "all":
        err.print(report.policy_rich(res, "ADL policies on the same shortfalls"))
    else:
        m = res["policies"][policy]
        err.print({k: m[k] for k in m})


@cli.command("policies")
@common
@click.option("--path", "paths", multiple=True, default=("seed", "october"), show_default=True)
@click.option("--markdown", type=click.Path(), default=None, help="write the table here")
def policies_cmd(accounts, seed, fund, lp, long_percent, sets, engine, paths, markdown):
    """The policy table on several paths, same book (for docs/risk.md)."""
    from risk import report
    for p in paths:
        make_path(p, seed)
    book = _book(accounts, fund, lp, long_percent)
    results = [_one(p, seed, book, _single(_pairs(sets, "--set"), "--set"), _single(_pairs(engine, "--engine"), "--engine"))
               for p in paths]
    for p, res in zip(paths, results):
        err.print(report.policy_rich(res, f"{p}: {res['accounts']:,} accounts, {res['liquidations']:,} liquidations, "
                                          f"bad debt {res['bad_debt'] / 10**6:,.0f}, fund drawn {res['fund_drawn'] / 10**6:,.0f}"))
    table = report.run_markdown(results, list(paths)) + "\n\n" + report.policy_markdown(results, list(paths))
    if markdown:
        Path(markdown).write_text(table + "\n")
    click.echo(table)


@cli.command("sweep")
@common
@click.option("--path", "path", default="jump", show_default=True, help="a path kind; jump draws one per seed")
@click.option("--scenarios", default=50, show_default=True, type=int, help="seeds per grid point")
@click.option("--funds", "funds", default="0,20000,100000,500000", show_default=True,
              help="insurance fund sizes to run, whole tokens")
@click.option("--probability", default=0.99, show_default=True, type=float,
              help="the chosen probability of no socialized loss")
@click.option("--local-cluster", type=int, default=None, help="run on a local Dask cluster of N workers")
@click.option("--cluster", default=None, help="run on the Dask scheduler at ADDRESS (tcp://host:8786)")
@click.option("--out", type=click.Path(), default=None)
def sweep_cmd(accounts, seed, fund, lp, long_percent, sets, engine, path, scenarios, funds, probability,
              local_cluster, cluster, out):
    """Many seeded scenarios over a grid; the fund size needed."""
    from risk import report, sweep as S
    if scenarios < 1:
        raise LabError("sweep: scenarios must be at least 1")
    if not 0 < probability < 1:
        raise LabError(f"sweep: --probability must be between 0 and 1, got {probability}")
    make_path(path, seed)
    grid = {**_pairs(sets, "--set"), **_pairs(engine, "--engine")}
    fund_values = _ints(funds, "--funds")
    if fund_values:
        grid["insurance_fund"] = fund_values
    book = _book(accounts, fund, lp, long_percent)
    base = Scenario(book=book, path=path, seed=seed)
    S.tasks_for(base, grid, 1)  # every grid point validates before anything runs
    for sc in S.tasks_for(base, grid, 1)[1]:
        from risk.lab import market_config
        market_config(sc.market)
    ex = S.executor(local_cluster, cluster)
    try:
        n_points = len(S.tasks_for(base, grid, scenarios)[1])
        stats = {"adl": 0, "social": 0, "need": []}
        with Progress(TextColumn("[bold]sweep"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      TimeRemainingColumn(), TextColumn("{task.fields[info]}"), console=err) as prog:
            task = prog.add_task("sweep", total=n_points, info=ex.name)

            def progress(idx, res):
                p, f, s = idx
                if f is None:
                    stats["need"].append(res["fund_needed"])
                else:
                    stats["adl"] += res["adl_fills"] > 0
                    stats["social"] += res["socialized_loss"] > 0
                worst = max(stats["need"]) / 10**6 if stats["need"] else 0
                prog.update(task, advance=1, info=f"{ex.name} | runs with ADL {stats['adl']} | socialized "
                                                  f"{stats['social']} | worst fund need {worst:,.0f}")
            res = S.run_sweep(base, grid, scenarios, probability, ex, progress)
    finally:
        ex.close()
    folder = Path(out) if out else ROOT / "reports" / "risk" / f"sweep-{time.strftime('%Y%m%d-%H%M%S')}"
    page = report.write_sweep(res, folder, f"Risk lab sweep: {path}, {accounts:,} accounts, {scenarios} seeds")
    for e in res["points"]:
        fn = e["fund_needed"]
        lo, hi = fn["ci95"]
        label = ", ".join(f"{k}={v}" for k, v in e["params"].items()) or "base"
        f = lambda v: "-" if v is None else f"{v / 10**6:,.0f}"  # noqa: E731
        upper = f(hi) if hi is not None else "above the largest need drawn: run more scenarios"
        click.echo(f"{label}: fund for P(no loss to winners or LPs) >= {probability}: {f(fn['value'])} tokens "
                   f"(95% interval {f(lo)} .. {upper}, {len(fn['per_seed'])} scenarios)")
    err.print(f"{res['tasks']} runs in {res['wall_seconds']:.1f} s on {res['executor']}; report: {page}")


def main(argv=None):
    try:
        cli.main(args=argv, prog_name="python -m risk", standalone_mode=False)
    except LabError as e:
        click.echo(f"risk: {e}", err=True)
        sys.exit(2)
    except ValidationError as e:
        x = e.errors()[0]
        where = ".".join(str(p) for p in x["loc"])
        click.echo(f"risk: {where + ': ' if where else ''}{x['msg'].removeprefix('Value error, ')}", err=True)
        sys.exit(2)
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("risk: interrupted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        click.echo(f"risk: {e.format_message()}", err=True)
        sys.exit(2)
