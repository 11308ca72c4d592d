"""Where the deep run's time goes: the differential machine on revm, deep
profile, one process, about --steps steps under cProfile, split into

  hypothesis       everything inside run_state_machine_as_test that is not
                   the machine's own code (drawing, the engine, bookkeeping)
  EVM calls        RevmBackend.send: encoding and revm executing the call
  state reads      SlotReader.read: storage slots (and the views read as calls)
  model calls      World.call: the model executing the same call
  model state      model_state: the model's side of the comparison
  compare          diff and check_invariants
  funding check    tests/stateful/funding_check.py
  machine, other   the rest of the machine's rules, invariants and checks
                   (its own planning, the model views the checks evaluate,
                   the exit pass's bookkeeping)

and an unprofiled run of the same size for the real steps per second.
cProfile slows Python-heavy work more than revm's native code, so the shares
are of profiled time; the text says so.

    python -m bench.profile_fuzz                 # 5,000 steps, seed 1
    python -m bench.profile_fuzz --steps 20000 --seed 7 --json bench/profile_fuzz.json
"""

import cProfile
import json
import os
import pstats
import sys
import time
from collections import Counter
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

os.environ.setdefault("HYPOTHESIS_PROFILE", "deep")
console = Console()

EXAMPLES_PER_RUN = 50  # one run() call (about 5,000 steps); runs repeat with new seeds until --steps


def _run(session, steps, seed, profiler=None):
    from hypothesis import settings

    from tests.stateful.machine import run

    s = settings(settings.get_profile("deep"), max_examples=EXAMPLES_PER_RUN, database=None)
    stats = Counter()
    k = 0
    t0 = time.perf_counter()
    while stats["steps"] < steps:
        if profiler:
            profiler.enable()
        try:
            run(session, s, stats, seed=seed + k)
        finally:
            if profiler:
                profiler.disable()
        k += 1
    return stats, time.perf_counter() - t0


class Timers:
    """Wall time of the leaf parts in the unprofiled run: each wrapped
    function's time, the outermost wrapped call only (no double counting)."""

    def __init__(self):
        self.seconds = Counter()
        self.depth = 0
        self.undo = []

    def wrap(self, owner, attr, label):
        real = getattr(owner, attr)

        def timed(*args, **kwargs):
            if self.depth:
                return real(*args, **kwargs)
            self.depth += 1
            t0 = time.perf_counter()
            try:
                return real(*args, **kwargs)
            finally:
                self.seconds[label] += time.perf_counter() - t0
                self.depth -= 1

        setattr(owner, attr, timed)
        self.undo.append((owner, attr, real))

    def install(self):
        from model.protocol import World
        from tests.stateful import backends, machine

        self.wrap(backends.RevmBackend, "send", "EVM calls (RevmBackend.send)")
        self.wrap(backends.SlotReader, "read", "state reads (SlotReader.read)")
        self.wrap(World, "call", "model calls (World.call)")
        self.wrap(machine, "model_state", "model state (model_state)")
        self.wrap(machine, "diff", "compare (diff, check_invariants)")
        self.wrap(machine, "check_invariants", "compare (diff, check_invariants)")
        self.wrap(machine, "check_funding", "funding check")
        self.wrap(machine, "funding_before", "funding check")

    def remove(self):
        for owner, attr, real in reversed(self.undo):
            setattr(owner, attr, real)


def _is(key, path_end, name=None):
    return key[0].replace("\\", "/").endswith(path_end) and (name is None or key[2] == name)


def breakdown(st):
    """{category: seconds} from a pstats.Stats, categories as the module says."""
    raw = st.stats  # {(file, line, name): (cc, nc, tt, ct, {caller: (cc, nc, tt, ct)})}

    def cum(path_end, name):
        return sum(v[3] for k, v in raw.items() if _is(k, path_end, name))

    total = cum("tests/stateful/machine.py", "run")
    in_hypothesis = cum("hypothesis/stateful.py", "run_state_machine_as_test")
    # the machine's own code, entered from hypothesis (rules, invariants,
    # preconditions, __init__, teardown)
    machine = 0.0
    for k, v in raw.items():
        if _is(k, "tests/stateful/machine.py"):
            machine += sum(c[3] for caller, c in v[4].items() if "/hypothesis/" in caller[0].replace("\\", "/"))
    parts = {
        "EVM calls (RevmBackend.send)": cum("tests/stateful/backends.py", "send"),
        "state reads (SlotReader.read)": cum("tests/stateful/backends.py", "read"),
        "model calls (World.call)": cum("model/protocol.py", "call"),
        "model state (model_state)": cum("tests/stateful/machine.py", "model_state"),
        "compare (diff, check_invariants)": cum("tests/stateful/machine.py", "diff")
        + cum("tests/stateful/machine.py", "check_invariants"),
        "funding check": cum("tests/stateful/funding_check.py", "check_funding")
        + cum("tests/stateful/funding_check.py", "funding_before"),
    }
    parts["machine, other"] = machine - sum(parts.values())
    exits = cum("tests/stateful/machine.py", "_everyone_exits")
    return {"hypothesis": in_hypothesis - machine, **parts,
            "outside hypothesis (run() setup)": total - in_hypothesis}, total, exits


@click.command()
@click.option("--steps", type=int, default=5_000, show_default=True, help="machine steps to profile (and to time)")
@click.option("--seed", type=int, default=1, show_default=True, help="first hypothesis seed")
@click.option("--json", "json_path", default=None, help="write the breakdown here")
@click.option("--no-timing", is_flag=True, help="skip the unprofiled run")
def main(steps, seed, json_path, no_timing):
    """Profile the deep revm run and print where its time goes."""
    from tests.stateful import conftest  # noqa: F401 - registers the ci and deep profiles
    from tests.stateful.backends import RevmBackend
    from tests.stateful.machine import ROLES, Session

    with console.status("compiling and deploying on revm"):
        session = Session(RevmBackend(ROLES))
    real = None
    if not no_timing:
        timers = Timers()
        timers.install()
        try:
            with console.status(f"unprofiled: {steps} steps"):
                stats, secs = _run(session, steps, seed)
        finally:
            timers.remove()
        exit_s = stats["exit seconds"]
        real = {"steps": stats["steps"], "seconds": round(secs, 2), "exit_seconds": round(exit_s, 2),
                "steps_per_s": round(stats["steps"] / (secs - exit_s), 1),
                "steps_per_s_with_exits": round(stats["steps"] / secs, 1)}
        real["leaf_seconds"] = {k: round(v, 3) for k, v in timers.seconds.items()}
        real["rest_seconds"] = round(secs - sum(timers.seconds.values()), 3)
        console.print(f"unprofiled: {stats['steps']} steps in {secs:.1f} s: {real['steps_per_s']:.0f} steps/s without "
                      f"the exit passes ({exit_s:.1f} s), as make fuzz-deep counts, {real['steps_per_s_with_exits']:.0f} with them "
                      f"(one process)")
    prof = cProfile.Profile()
    with console.status(f"profiled: {steps} steps"):
        stats, secs = _run(session, steps, seed, prof)
    parts, total, exits = breakdown(pstats.Stats(prof))
    n = stats["steps"]
    table = Table(title=f"Deep revm run, {n} steps, {stats['calls']} calls, profiled ({secs:.1f} s under cProfile)")
    for c in ("where", "profiled s", "profiled share", "unprofiled s", "unprofiled share", "µs per step, unprofiled"):
        table.add_column(c, justify="left" if c == "where" else "right")
    for k, v in sorted(parts.items(), key=lambda kv: -kv[1]):
        u = real["leaf_seconds"].get(k) if real else None
        cells = [f"{u:.2f}", f"{100 * u / real['seconds']:.1f}%", f"{1e6 * u / real['steps']:.0f}"] if u is not None else ["", "", ""]
        table.add_row(k, f"{v:.2f}", f"{100 * v / total:.1f}%", *cells)
    if real:
        r = real["rest_seconds"]
        table.add_row("[i]unprofiled rest: hypothesis + machine, other + setup[/]", "", "", f"{r:.2f}",
                      f"{100 * r / real['seconds']:.1f}%", f"{1e6 * r / real['steps']:.0f}")
    console.print(table)
    console.print(f"the exit passes (teardown: everyone exits) are {exits:.2f} s of the profiled time "
                  f"({100 * exits / total:.1f}%), spread over the rows above")
    if json_path:
        out = {"steps": n, "calls": stats["calls"], "seed": seed, "profiled_seconds": round(total, 2),
               "unprofiled": real, "exit_pass_seconds": round(exits, 3), "seconds": {k: round(v, 3) for k, v in parts.items()},
               "share": {k: round(v / total, 4) for k, v in parts.items()}, "python": sys.version.split()[0]}
        Path(json_path).write_text(json.dumps(out, indent=1) + "\n")
        console.print(f"wrote {json_path}")


if __name__ == "__main__":
    try:
        main.main(standalone_mode=False)
    except click.ClickException as e:
        print(f"profile_fuzz: {e.format_message()}", file=sys.stderr)
        sys.exit(2)
