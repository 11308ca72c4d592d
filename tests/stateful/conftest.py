"""Hypothesis profiles and the two backends of the differential machine.

HYPOTHESIS_PROFILE selects the profile; unset means "ci":
    ci    the anvil run inside `make test` (a few minutes), the ci-sized
          planted-bug runs, and short in-process runs
    deep  `make fuzz-deep`: revm in process, DEEP_STEPS steps (100,000;
          BACKSTOP_DEEP_STEPS overrides, never below 20,000)

Backends (tests/stateful/backends.py):
    anvil   ape's anvil, deployed by scripts/deploy.py: the one that counts
    revm    pyrevm in process, the same bytecode: deep runs, planted bugs
    boa     titanoboa's py-evm in process: a third EVM, a short run in CI
"""

import os

import pytest
from hypothesis import HealthCheck, settings

from tests.stateful.machine import ANVIL_ROLES, ROLES, Session

_COMMON = dict(
    deadline=None,
    print_blob=True,  # a failure prints its @reproduce_failure line
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
                           HealthCheck.large_base_example],
)
settings.register_profile("ci", max_examples=130, stateful_step_count=50, **_COMMON)
settings.register_profile("deep", max_examples=300, stateful_step_count=100, **_COMMON)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
settings.load_profile(PROFILE)

# The deep run's total, across as many hypothesis runs as it takes.
DEEP_MIN_STEPS = 20_000
DEEP_STEPS = max(int(os.environ.get("BACKSTOP_DEEP_STEPS", 100_000)), DEEP_MIN_STEPS)


def pytest_configure(config):
    config.addinivalue_line("markers", "in_process: runs the contracts in process (revm or titanoboa), no devnet")


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
