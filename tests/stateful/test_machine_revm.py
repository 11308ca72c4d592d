"""The differential machine in process: revm (pyrevm) on the same bytecode
ape deploys, for deep runs.

    make fuzz-deep        HYPOTHESIS_PROFILE=deep: DEEP_STEPS steps
                          (100,000 unless BACKSTOP_DEEP_STEPS says more),
                          every label reached, steps per second printed
    make test             the ci profile: a short run that proves the
                          in-process backend agrees with the model (the
                          planted-bug tests rely on it)
"""

import pytest
from collections import Counter
from hypothesis import settings

from tests.stateful.conftest import DEEP_STEPS, PROFILE, report
from tests.stateful.machine import LABELS, run

pytestmark = pytest.mark.in_process


def test_machine__revm__model_and_chain_agree_after_every_step(revm_session, capsys):
    stats = Counter()
    if PROFILE == "deep":
        while stats["steps"] < DEEP_STEPS:
            run(revm_session, settings(), stats)
    else:
        run(revm_session, settings(settings(), max_examples=60), stats)
    report(capsys, "revm", stats)
    assert stats["steps"] >= (DEEP_STEPS if PROFILE == "deep" else 60)
    if PROFILE == "deep":
        missing = [label for label in LABELS if stats[label] == 0]
        assert not missing, f"never reached in {stats['steps']} steps: {missing}"
