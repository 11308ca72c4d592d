"""Hypothesis profiles and the two backends of the differential machine.

HYPOTHESIS_PROFILE selects the profile; unset means "ci":
    ci    the anvil run inside `make test` (a few minutes), the ci-sized
          planted-bug runs, and short in-process runs
    deep  `make fuzz-deep [STEPS=N]`: revm in process, DEEP_STEPS steps
          (100,000; BACKSTOP_DEEP_STEPS=N for any N >= 1). Every label
          must fire from DEEP_LABEL_STEPS (20,000) steps on; a shorter run
          is a quick check that reports the labels it did not reach.

BACKSTOP_REPRODUCE replays one failure: paste what hypothesis printed, the
whole `@reproduce_failure('6.170.15', b'AXic...')` or its two arguments,
quotes and all (`'6.170.15', b'AXic...'`; the older `6.170.15 AXic...`
works too). It is checked here, before any test runs: a value that is not
one, or that another hypothesis version printed, stops pytest with one line.

Backends (tests/stateful/backends.py):
    anvil   ape's anvil, deployed by scripts/deploy.py: the one that counts
    revm    pyrevm in process, the same bytecode: deep runs, planted bugs
    boa     titanoboa's py-evm in process: a third EVM, a short run in CI
"""

import os
import re

import hypothesis
import pytest
from hypothesis import HealthCheck, settings

from tests.stateful.machine import ANVIL_ROLES, ROLES, Session

_COMMON = dict(
    deadline=None,
    print_blob=True,  # a failure prints its @reproduce_failure line
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
                           HealthCheck.large_base_example],
)
# ---- the auditors' inputs, checked before anything runs (one line each)

_ERRORS = []  # raised by pytest_configure as a UsageError: pytest prints "ERROR: <line>" and exits 4


def deep_steps(raw):
    """BACKSTOP_DEEP_STEPS (make fuzz-deep STEPS=N) as a positive integer."""
    text = str(raw).strip().replace("_", "").replace(",", "")
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"BACKSTOP_DEEP_STEPS (make fuzz-deep STEPS=N) must be a whole number of steps, "
                         f"at least 1; got {raw!r}")
    return int(text)


_VERSION = r"\d+(?:\.\d+)*"
_BLOB = r"[A-Za-z0-9+/]+={0,2}"


def parse_reproduce(text):
    """(version, blob) from what hypothesis prints for a failure:
    `@reproduce_failure('6.170.15', b'AXic...')`, the same without the `@`,
    its two arguments (`'6.170.15', b'AXic...'`, with or without the comma),
    or bare `6.170.15 AXic...`. ValueError (one line) for anything else."""
    s = text.strip()
    s = re.sub(r"^@?\s*(?:hypothesis\.)?reproduce_failure\s*\(\s*(.*?)\s*\)$", r"\1", s, flags=re.S)
    m = re.fullmatch(rf"""(['"]?)({_VERSION})\1\s*(?:,\s*|\s+)b?(['"]?)({_BLOB})\3\s*,?""", s)
    if not m:
        raise ValueError("BACKSTOP_REPRODUCE must be what hypothesis printed, @reproduce_failure('<version>', "
                         f"b'<blob>') or its two arguments; got {text!r}")
    return m.group(2), m.group(4)


def _reproduce():
    """Put BACKSTOP_REPRODUCE in the form machine.run() reads ("VERSION
    BLOB") for this process and the forked workers, or record why not."""
    raw = os.environ.get("BACKSTOP_REPRODUCE")
    if not raw:
        return
    try:
        version, blob = parse_reproduce(raw)
    except ValueError as e:
        _ERRORS.append(str(e))
        return
    if version != hypothesis.__version__:
        _ERRORS.append(f"BACKSTOP_REPRODUCE was printed by hypothesis {version}; this is {hypothesis.__version__} "
                       f"(a blob replays only on the version that printed it: rerun to get a new one)")
        return
    os.environ["BACKSTOP_REPRODUCE"] = f"{version} {blob}"


_reproduce()

# The deep run's total, across as many hypothesis runs as it takes, and the
# least that must reach every label.
DEEP_DEFAULT_STEPS = 100_000
DEEP_LABEL_STEPS = 20_000
try:
    DEEP_STEPS = deep_steps(os.environ.get("BACKSTOP_DEEP_STEPS", DEEP_DEFAULT_STEPS))
except ValueError as _e:
    _ERRORS.append(str(_e))
    DEEP_STEPS = DEEP_DEFAULT_STEPS
DEEP_LABELS_REQUIRED = DEEP_STEPS >= DEEP_LABEL_STEPS

settings.register_profile("ci", max_examples=130, stateful_step_count=50, **_COMMON)
# A deep hypothesis run is at most 300 examples of up to 100 steps; a quick
# check (few steps) runs fewer examples, so it stops near its N.
settings.register_profile("deep", max_examples=min(300, max(1, -(-DEEP_STEPS // 50))), stateful_step_count=100,
                          **_COMMON)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
settings.load_profile(PROFILE)


def pytest_configure(config):
    config.addinivalue_line("markers", "in_process: runs the contracts in process (revm or titanoboa), no devnet")
    if _ERRORS:
        raise pytest.UsageError(_ERRORS[0])


@pytest.fixture(scope="module")
def anvil_session(accounts):
    """Deployed by scripts/deploy.py on ape's anvil, mirrored, funded."""
    from scripts.deploy import deploy_protocol
    from tests.stateful.backends import AnvilBackend

    roles = {name: accounts[i] for name, i in ANVIL_ROLES.items()}
    protocol = deploy_protocol(roles["owner"])
    session = Session(AnvilBackend(protocol, roles))
    # An exit is ~40 transactions at ~70 a second on anvil: every 4th
    # example keeps the ci run near two minutes; in process, every example.
    session.exit_every = 4
    return session


@pytest.fixture(scope="session")
def boa_session():
    """The same sources compiled by titanoboa, py-evm in process."""
    from tests.stateful.backends import BoaBackend

    return Session(BoaBackend(ROLES))


@pytest.fixture(scope="session")
def revm_session():
    """The same bytecode in revm, in process."""
    from tests.stateful.backends import RevmBackend

    return Session(RevmBackend(ROLES))


def report(capsys, backend, stats):
    """Steps per second and label counts, printed past pytest's capture."""
    steps, secs = stats["steps"], stats["seconds"]
    exit_secs = stats["exit seconds"]
    labels = ", ".join(f"{k} {stats[k]}" for k in sorted(stats)
                       if k not in ("steps", "calls", "seconds", "examples", "workers", "worker_seconds",
                                    "worker_exit_seconds", "exits", "exit calls", "exit seconds"))
    per_worker = ""
    if stats.get("workers"):
        per_worker = (f" ({stats['workers']} workers, each {steps / max(stats['worker_seconds'] - stats['worker_exit_seconds'], 1e-9):.1f} "
                      f"steps/s on average)")
    with capsys.disabled():
        print(f"\n[stateful/{backend}] {stats['examples']} examples, {steps} steps, {stats['calls']} calls in "
              f"{secs - exit_secs:.1f} s: {steps / max(secs - exit_secs, 1e-9):.1f} steps/s, "
              f"{stats['calls'] / max(secs - exit_secs, 1e-9):.1f} calls/s{per_worker}"
              f"\n[stateful/{backend}] exit checks: {stats['exits']} examples, {stats['exit calls']} calls in "
              f"{exit_secs:.1f} s; {steps / max(secs, 1e-9):.1f} steps/s counting them"
              f"\n[stateful/{backend}] labels: {labels}")
