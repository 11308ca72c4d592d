"""The differential machine on the real devnet: ape's anvil, in `make test`.

Runs under the HYPOTHESIS_PROFILE profile ("ci" when unset), then checks that
the run really reached liquidation, bad debt, ADL (partial, full, pending) and
socialized loss, and TP/SL execution.
"""

import pytest
from hypothesis import settings

from tests.stateful.conftest import report
from tests.stateful.machine import LABELS, run


@pytest.fixture(scope="module")
def anvil_run(anvil_session):
    """One ci run shared by the tests below; a failure is kept, not raised."""
    stats, error = None, None
    try:
        stats = run(anvil_session, settings())
    except Exception as exc:  # reported by the first test, with hypothesis's reproduction
        error = exc
    return stats, error


def test_machine__anvil__model_and_chain_agree_after_every_step(anvil_run, capsys):
    stats, error = anvil_run
    if error is not None:
        raise error
    report(capsys, "anvil", stats)
    assert stats["steps"] >= settings().max_examples


def test_machine__anvil_ci_run__reaches_every_labelled_path(anvil_run):
    stats, error = anvil_run
    assert error is None, "the machine failed: see the test above"
    missing = [label for label in LABELS if stats[label] == 0]
    assert not missing, f"never reached in this run: {missing} ({dict(stats)})"
