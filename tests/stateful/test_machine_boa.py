"""The differential machine in process: titanoboa (py-evm) on the same .vy
sources, for deep runs.

    make fuzz-deep        HYPOTHESIS_PROFILE=deep: at least 20,000 steps,
                          every label reached
    make test             the ci profile: a short run that proves the
                          in-process backend agrees with the model (the
                          planted-bug tests rely on it)
"""

import pytest
from collections import Counter
from hypothesis import settings

from tests.stateful.conftest import DEEP_MIN_STEPS, PROFILE, report
from tests.stateful.machine import LABELS, run

pytestmark = pytest.mark.boa


def test_machine__in_process__model_and_chain_agree_after_every_step(boa_session, capsys):
    stats = Counter()
    if PROFILE == "deep":
        while stats["steps"] < DEEP_MIN_STEPS:
            run(boa_session, settings(), stats)
    else:
        run(boa_session, settings(settings(), max_examples=10), stats)
    report(capsys, "boa", stats)
    if PROFILE == "deep":
        missing = [label for label in LABELS if stats[label] == 0]
        assert not missing, f"never reached in {stats['steps']} steps: {missing}"
