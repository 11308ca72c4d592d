"""`make mutants`: apply each mutant of tests/mutants/catalog.py, one at a
time, to a copy of the repository in a temporary directory (never to the
working tree), and run on it

  - the model tests (`pytest tests/model`), and
  - the differential machine's ci run on revm
    (`tests/stateful/test_machine_revm.py`, HYPOTHESIS_PROFILE=ci) once per
    seed (BACKSTOP_SEED; 1, 2 and 3 by default),

then print the kill table and write it as JSON (bench/mutants.json).

The copy is taken once, when the run starts: `git archive HEAD` by default
(`--source worktree` copies the working tree instead, uncommitted edits
included), and each mutant's edits are located in it by their exact old
text, so code that moved makes a mutant "not applicable", never silently
skipped. The unmutated copy runs first (the baseline); if it fails, no kill
would mean anything and the run stops. The harness itself (tests/mutants/)
is copied from this checkout into the copy, so it need not be committed.

    python -m tests.mutants.run                      # everything, one at a time
    python -m tests.mutants.run -j 2                 # two mutants side by side
    python -m tests.mutants.run --only tie-break --only staleness --seeds 1,2,3
    python -m tests.mutants.run --check              # applicability only, no runs

A seed's run is the ci profile without shrinking and without the example
database (tests/mutants/plugin.py): the same examples are generated, a
failure is reported as soon as it happens, and no seed replays another's
failure.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from queue import Queue

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tests.mutants.catalog import MUTANTS

ROOT = Path(__file__).resolve().parents[2]
HARNESS = Path(__file__).resolve().parent
PYTHON = ROOT / ".venv" / "bin" / "python"
MACHINE = "tests/stateful/test_machine_revm.py"
MODEL_TESTS = "tests/model"
LINKS = (".venv", "node_modules", ".vvm")  # read-only tooling, shared with the checkout
console = Console(width=None if sys.stdout.isatty() else 170)


class Refused(Exception):
    """Bad input or a state the run cannot start from: one line, exit 2."""


# ---------------------------------------------------------------- the copy


def snapshot(dest, source):
    """The repository as of now into `dest`: HEAD (`git archive`) or the
    working tree (tracked and untracked, not ignored, files); the current
    tests/mutants/ on top; .venv, node_modules and .vvm linked."""
    dest.mkdir(parents=True)
    if source == "head":
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", "HEAD"], capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    else:
        names = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-co", "--exclude-standard", "-z"],
                               capture_output=True, check=True).stdout.decode().split("\0")
        for name in filter(None, names):
            src = ROOT / name
            if src.is_file():
                (dest / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dest / name)
    shutil.rmtree(dest / "tests" / "mutants", ignore_errors=True)
    shutil.copytree(HARNESS, dest / "tests" / "mutants", ignore=shutil.ignore_patterns("__pycache__"))
    for name in LINKS:
        if (ROOT / name).exists():
            (dest / name).symlink_to(ROOT / name)


def applicability(tree, mutant):
    """[(edit, count of its old text in the file)], each edit checked
    against the file with the mutant's earlier edits applied."""
    texts, out = {}, []
    for e in mutant.edits:
        path = tree / e.file
        if e.file not in texts:
            texts[e.file] = path.read_text() if path.is_file() else None
        text = texts[e.file]
        n = 0 if text is None else text.count(e.old)
        out.append((e, n))
        if n == 1:
            texts[e.file] = text.replace(e.old, e.new)
    return out


def apply(tree, mutant):
    """Apply every edit, or none: (True, "") or (False, why)."""
    checked = applicability(tree, mutant)
    bad = [(e, n) for e, n in checked if n != 1]
    if bad:
        e, n = bad[0]
        why = "old text not found" if n == 0 else f"old text found {n} times"
        return False, f"{e.file}: {why}: {e.old.splitlines()[0].strip()[:60]!r}"
    for e in mutant.edits:
        path = tree / e.file
        path.write_text(path.read_text().replace(e.old, e.new))
    return True, ""


# ---------------------------------------------------------------- running


def _pytest(tree, args, env_extra, timeout):
    """One pytest process in `tree`: {"killed", "status", "detail", "seconds"}.
    status: passed, failed, error (could not run: a mutant that does not
    compile, say), timeout."""
    env = {**os.environ, "PYTHONPATH": str(tree), "VVM_BINARY_PATH": str(ROOT / ".vvm"),
           "HYPOTHESIS_STORAGE_DIRECTORY": str(tree / ".hypothesis"), **env_extra}
    env["PATH"] = f"{ROOT / 'node_modules' / '.bin'}:{ROOT / '.venv' / 'bin'}:{env.get('PATH', '')}"
    cmd = [str(PYTHON), "-m", "pytest", *args, "-p", "no:ape_test", "-p", "no:cacheprovider",
           "-p", "tests.mutants.plugin", "-q", "-x", "--tb=short"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=tree, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return {"killed": True, "status": "timeout", "detail": f"no result in {timeout} s",
                "seconds": round(time.perf_counter() - t0, 1)}
    except BaseException:  # interrupted: leave no pytest behind (it runs in its own session)
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    secs = round(time.perf_counter() - t0, 1)
    summary = out.strip().splitlines()[-1] if out.strip() else ""
    if proc.returncode == 0:
        return {"killed": False, "status": "passed", "detail": "", "seconds": secs}
    status = "failed" if re.search(r"\d+ failed", summary) else "error"
    detail = _first_error(out, summary)
    if re.search(r"\b(NameError|SyntaxError|ImportError|IndentationError)\b", detail):
        status = "error"  # the edit broke the model's Python, not a property: a bad mutant
    return {"killed": status == "failed", "status": status, "detail": detail, "seconds": secs}


def _first_error(out, summary):
    """The failing test and the first `E` line of its report."""
    test = next((m.group(1) for m in re.finditer(r"^(?:FAILED|ERROR) (\S+)", out, re.M)), "")
    e_line = next((ln[1:].strip() for ln in out.splitlines() if ln.startswith("E ") and ln[1:].strip()), summary)
    test = test.split("::")[-1]
    return (f"{test}: " if test else "") + e_line[:160]


def run_one(tree, seeds, timeout, first_kill):
    """The model tests and the machine per seed, in a copy already mutated."""
    # The model tests' own properties draw at random; one fixed seed keeps
    # the column about the mutant, not about the draw.
    result = {"model": _pytest(tree, [MODEL_TESTS, "--hypothesis-seed=0"], {}, timeout), "machine": {}}
    for seed in seeds:
        r = _pytest(tree, [MACHINE], {"BACKSTOP_SEED": str(seed), "HYPOTHESIS_PROFILE": "ci"}, timeout)
        result["machine"][str(seed)] = r
        if r["status"] == "error" or (first_kill and r["killed"]):
            break
    return result


# ---------------------------------------------------------------- report


def verdict(rec, seeds):
    if rec["status"] != "applied":
        return rec["status"]
    runs = rec["machine"].values()
    if any(r["status"] == "error" for r in runs) or rec["model"]["status"] == "error":
        return "error"
    machine = sum(r["killed"] for r in runs)
    if machine:
        return f"killed by the machine ({machine}/{len(seeds)} seeds)"
    return "killed by the model tests only" if rec["model"]["killed"] else "survived"


def _cell(r):
    if r is None:
        return "[dim]-[/]"
    return {"passed": "[red]survived[/]", "failed": "[green]killed[/]", "timeout": "[green]killed (timeout)[/]",
            "error": "[yellow]error[/]"}[r["status"]]


def summarise(records, seeds):
    applied = [r for r in records if r["status"] == "applied" and verdict(r, seeds) != "error"]
    by_machine = [r for r in applied if any(x["killed"] for x in r["machine"].values())]
    every_seed = [r for r in applied if len(r["machine"]) == len(seeds) and all(x["killed"] for x in r["machine"].values())]
    by_either = [r for r in applied if r in by_machine or r["model"]["killed"]]
    return {
        "mutants": len(records),
        "applicable": len(applied),
        "not_applicable": [r["name"] for r in records if r["status"] != "applied"],
        "errors": [r["name"] for r in records if r["status"] == "applied" and verdict(r, seeds) == "error"],
        "killed_by_machine": len(by_machine),
        "killed_by_machine_every_seed": len(every_seed),
        "killed_by_model_tests": sum(r["model"]["killed"] for r in applied),
        "killed_by_either": len(by_either),
        "survivors": [r["name"] for r in applied if r not in by_either],
        "must_show_caught_by_every_seed": {r["name"]: r in every_seed for r in records if r["must"]},
    }


def print_table(records, seeds, summary):
    table = Table(title="Mutants: the machine's ci run (revm) per seed, and the model tests")
    table.add_column("mutant")
    table.add_column("where")
    table.add_column("model tests")
    for s in seeds:
        table.add_column(f"seed {s}")
    table.add_column("verdict")
    table.add_column("first failure (bench/mutants.json has it whole)", overflow="fold", max_width=70)
    for r in records:
        name = r["name"] + (" *" if r["must"] else "")
        if r["status"] != "applied":
            table.add_row(name, r["where"], "[dim]-[/]", *["[dim]-[/]"] * len(seeds), f"[yellow]{r['status']}[/]",
                          r["why"])
            continue
        first = next((x["detail"] for x in r["machine"].values() if x["killed"] or x["status"] == "error"), "")
        first = (first or r["model"]["detail"])[:110]
        table.add_row(name, r["where"], _cell(r["model"]), *[_cell(r["machine"].get(str(s))) for s in seeds],
                      verdict(r, seeds), first)
    console.print(table)
    console.print("* a change issue 19 requires the machine alone to catch")
    s = summary
    n = max(s["applicable"], 1)
    console.print(
        f"{s['applicable']} of {s['mutants']} mutants applicable; killed by the machine (any seed) "
        f"{s['killed_by_machine']} ({100 * s['killed_by_machine'] / n:.0f}%), by every seed "
        f"{s['killed_by_machine_every_seed']}, by the model tests {s['killed_by_model_tests']}, by either "
        f"{s['killed_by_either']} ({100 * s['killed_by_either'] / n:.0f}%)")
    if s["survivors"]:
        console.print(f"survivors: {', '.join(s['survivors'])}")
    if s["not_applicable"] or s["errors"]:
        console.print(f"not applicable: {', '.join(s['not_applicable']) or 'none'}; errors: {', '.join(s['errors']) or 'none'}")


def markdown(results):
    """The kill table of a results file as markdown (docs/properties.md)."""
    seeds = results["seeds"]
    mark = {"passed": "survived", "failed": "killed", "timeout": "killed (timeout)", "error": "error"}
    lines = [f"| mutant | where | what | model tests | {' | '.join(f'seed {s}' for s in seeds)} |",
             "| --- | --- | --- | --- | " + " | ".join("---" for _ in seeds) + " |"]
    for r in results["mutants"]:
        name = f"`{r['name']}`" + (" *" if r["must"] else "")
        if r["status"] != "applied":
            lines.append(f"| {name} | {r['where']} | {r['what']} | {r['status']} | " + " | ".join("" for _ in seeds) + " |")
            continue
        cells = [mark[r["machine"][str(s)]["status"]] if str(s) in r["machine"] else "-" for s in seeds]
        lines.append(f"| {name} | {r['where']} | {r['what']} | {mark[r['model']['status']]} | {' | '.join(cells)} |")
    return "\n".join(lines)


# ---------------------------------------------------------------- the command


def _seeds(text):
    try:
        seeds = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise Refused(f"--seeds takes integers separated by commas, not {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds) or any(s < 0 for s in seeds):
        raise Refused(f"--seeds needs distinct non-negative integers, got {text!r}")
    return seeds


@click.command()
@click.option("--only", "only", multiple=True, help="run this mutant (repeatable); default: all")
@click.option("--seeds", default="1,2,3", show_default=True, help="BACKSTOP_SEED of each machine run")
@click.option("-j", "--jobs", type=int, default=1, show_default=True, help="mutants run side by side")
@click.option("--source", type=click.Choice(["head", "worktree"]), default="head", show_default=True,
              help="copy HEAD, or the working tree with its uncommitted edits")
@click.option("--json", "json_path", default=None,
              help="where to write the results (default bench/mutants.json for a full run, none with --only)")
@click.option("--timeout", type=int, default=1200, show_default=True, help="seconds per pytest process")
@click.option("--first-kill", is_flag=True, help="stop a mutant's seeds at its first kill")
@click.option("--no-baseline", is_flag=True, help="skip the unmutated run")
@click.option("--check", is_flag=True, help="only report which mutants apply to the copy")
@click.option("--keep", is_flag=True, help="keep the temporary copies")
@click.option("--markdown", "as_markdown", is_flag=True,
              help="print the kill table of the results file (--json, default bench/mutants.json) as markdown; run nothing")
@click.option("--update", is_flag=True,
              help="with --only: replace those mutants' rows in the JSON file (default bench/mutants.json), keep the rest")
def main(only, seeds, jobs, source, json_path, timeout, first_kill, no_baseline, check, keep, update, as_markdown):
    """Apply each mutant to a temporary copy; run the model tests and the machine's ci run per seed."""
    if as_markdown:
        path = Path(json_path or ROOT / "bench" / "mutants.json")
        try:
            table = markdown(json.loads(path.read_text()))
        except (OSError, ValueError, KeyError) as e:
            raise Refused(f"cannot read the results in {path}: {e}") from None
        print(table)
        return
    seeds = _seeds(seeds)
    names = [m.name for m in MUTANTS]
    unknown = [n for n in only if n not in names]
    if unknown:
        raise Refused(f"unknown mutant {unknown[0]!r}; known: {', '.join(names)}")
    if jobs < 1 or timeout < 1:
        raise Refused("--jobs and --timeout must be at least 1")
    if not PYTHON.exists():
        raise Refused(f"{PYTHON} is missing: run `make install` first")
    mutants = [m for m in MUTANTS if not only or m.name in only]
    if json_path is None and (update or not only):
        json_path = str(ROOT / "bench" / "mutants.json")
    previous = None
    if update:
        if not only:
            raise Refused("--update replaces the rows of the mutants named by --only; name at least one")
        try:
            previous = json.loads(Path(json_path).read_text())
        except (OSError, ValueError) as e:
            raise Refused(f"--update needs a readable results file {json_path}: {e}") from None
        if previous.get("seeds") != seeds:
            raise Refused(f"{json_path} was run with seeds {previous.get('seeds')}, not {seeds}; the table would mix them")

    work = Path(tempfile.mkdtemp(prefix="backstop-mutants-"))
    try:
        base = work / "base"
        snapshot(base, source)
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True).stdout.strip()
        console.print(f"copy of {'HEAD ' + commit if source == 'head' else 'the working tree'} in {work}; "
                      f"{len(mutants)} mutants, seeds {seeds}, {jobs} at a time")
        if check:
            for m in mutants:
                bad = [(e, n) for e, n in applicability(base, m) if n != 1]
                console.print(f"{m.name:28} " + ("applies" if not bad else
                              f"[yellow]not applicable[/]: {bad[0][0].file} (old text found {bad[0][1]} times)"))
            return

        slots = Queue()
        for k in range(jobs):
            slots.put(work / f"slot{k}")

        def fresh(slot, mutant=None):
            shutil.rmtree(slot, ignore_errors=True)
            shutil.copytree(base, slot, symlinks=True)
            return apply(slot, mutant) if mutant else (True, "")

        baseline = None
        if not no_baseline:
            slot = slots.get()
            fresh(slot)
            with console.status("baseline: the unmutated copy (model tests and every seed)"):
                baseline = run_one(slot, seeds, timeout, first_kill=False)
            slots.put(slot)
            failed = [k for k, r in [("model tests", baseline["model"]),
                                     *((f"seed {s}", r) for s, r in baseline["machine"].items())] if r["status"] != "passed"]
            if failed:
                what = baseline["model"] if failed[0] == "model tests" else baseline["machine"][failed[0].split()[1]]
                raise Refused(f"the unmutated copy fails ({failed[0]}: {what['detail']}); no kill would mean anything")
            console.print("baseline passes: model tests {}s, machine {}".format(
                baseline["model"]["seconds"], ", ".join(f"seed {s} {r['seconds']}s" for s, r in baseline["machine"].items())))

        records = [None] * len(mutants)
        lock = threading.Lock()

        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console) as progress:
            task = progress.add_task("mutants", total=len(mutants))

            def work_on(i, m):
                slot = slots.get()
                try:
                    rec = {"name": m.name, "what": m.what, "where": m.where, "must": m.must,
                           "edits": [asdict(e) for e in m.edits], "source": source, "commit": commit,
                           "run_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
                    applied, why = fresh(slot, m)
                    if not applied:
                        rec.update(status="not applicable", why=why)
                    else:
                        rec.update(status="applied", why="", **run_one(slot, seeds, timeout, first_kill))
                    with lock:
                        records[i] = rec
                        progress.console.print(f"{m.name}: {verdict(rec, seeds)}")
                        progress.advance(task)
                finally:
                    slots.put(slot)

            with ThreadPoolExecutor(max_workers=jobs) as pool:
                for f in [pool.submit(work_on, i, m) for i, m in enumerate(mutants)]:
                    f.result()

        if previous is not None:
            fresh_rows = {r["name"]: r for r in records}
            old_rows = {r["name"]: r for r in previous["mutants"]}
            records = [fresh_rows.get(m.name) or old_rows[m.name] for m in MUTANTS
                       if m.name in fresh_rows or m.name in old_rows]
            baseline = previous.get("baseline") if baseline is None else baseline
        summary = summarise(records, seeds)
        print_table(records, seeds, summary)
        if json_path:
            out = {"generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                   "source": source, "commit": commit, "seeds": seeds, "jobs": jobs,
                   "updated": sorted(only) if previous is not None else [],
                   "machine": f"{MACHINE} (HYPOTHESIS_PROFILE=ci, no shrinking, no example database)",
                   "model_tests": MODEL_TESTS, "baseline": baseline, "summary": summary, "mutants": records}
            Path(json_path).parent.mkdir(parents=True, exist_ok=True)
            Path(json_path).write_text(json.dumps(out, indent=1) + "\n")
            console.print(f"wrote {json_path}")
    finally:
        if keep:
            console.print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def cli():
    try:
        main.main(standalone_mode=False)
    except (Refused, click.ClickException) as e:
        msg = e.format_message() if isinstance(e, click.ClickException) else str(e)
        print(f"mutants: {msg}", file=sys.stderr)
        sys.exit(2)
    except click.exceptions.Abort:
        print("mutants: interrupted", file=sys.stderr)
        sys.exit(130)
    except subprocess.CalledProcessError as e:
        print(f"mutants: {' '.join(map(str, e.cmd))} failed with exit {e.returncode}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    cli()
