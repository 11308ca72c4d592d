"""The differential machine on titanoboa's py-evm: a third EVM
implementation (after anvil's and revm's) running the same .vy sources.
py-evm takes about 7 ms a transaction, so this is a short run in
`make test`; the deep runs use revm (test_machine_revm.py)."""

import pytest
from collections import Counter
from hypothesis import settings

from tests.stateful.conftest import report
from tests.stateful.machine import run

pytestmark = pytest.mark.in_process


def test_machine__py_evm__model_and_chain_agree_after_every_step(boa_session, capsys):
    stats = Counter()
    run(boa_session, settings(settings(), max_examples=3), stats)
    report(capsys, "boa", stats)
    assert stats["steps"] >= 6
