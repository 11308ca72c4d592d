"""The differential machine in process: revm (pyrevm) on the same bytecode
ape deploys, for deep runs.

    make fuzz-deep        HYPOTHESIS_PROFILE=deep: DEEP_STEPS steps
    [STEPS=N]             (100,000; STEPS / BACKSTOP_DEEP_STEPS any N >= 1)
                          on BACKSTOP_WORKERS forked workers (default: one
                          per core), every label reached (from 20,000
                          steps on; a shorter quick check lists the labels
                          it missed), steps per second printed per worker
                          and in all
    make test             the ci profile: a short single-process run that
                          proves the in-process backend agrees with the
                          model (the planted-bug tests rely on it)

A deep failure names its worker's seed; BACKSTOP_SEED=<seed>
BACKSTOP_WORKERS=1 make fuzz-deep replays it in one process.
"""

import os
import random
from collections import Counter

import pytest
from hypothesis import settings

from tests.stateful.conftest import DEEP_LABEL_STEPS, DEEP_LABELS_REQUIRED, DEEP_STEPS, PROFILE, report
from tests.stateful.machine import LABELS, run
from tests.stateful.parallel import run_parallel

pytestmark = pytest.mark.in_process

CI_EXAMPLES = 250  # about 10,000 steps, a few seconds
WORKERS = int(os.environ.get("BACKSTOP_WORKERS", os.cpu_count() or 1))


def test_machine__revm__model_and_chain_agree_after_every_step(revm_session, capsys):
    if PROFILE != "deep":
        stats = run(revm_session, settings(settings(), max_examples=CI_EXAMPLES), Counter())
        report(capsys, "revm", stats)
        assert stats["steps"] >= CI_EXAMPLES
        assert stats["exits"] >= stats["examples"] // 2, dict(stats)  # PROPERTIES 20, in teardown
        missing = [label for label in LABELS if stats[label] == 0]
        for _ in range(4):  # label coverage is random: a rare path gets more rounds, as on anvil
            if not missing:
                break
            run(revm_session, settings(settings(), max_examples=CI_EXAMPLES // 4), stats)
            missing = [label for label in LABELS if stats[label] == 0]
        assert not missing, f"never reached in {stats['steps']} steps: {missing}"
        return
    if WORKERS == 1:
        stats = Counter()
        while stats["steps"] < DEEP_STEPS:
            run(revm_session, settings(), stats)
        report(capsys, "revm", stats)
    else:
        seed0 = int(os.environ.get("BACKSTOP_SEED", random.randrange(2**31)))
        stats, failures = run_parallel(revm_session, settings(), DEEP_STEPS, WORKERS, seed0)
        report(capsys, f"revm x{WORKERS}", stats)
        assert not failures, "\n\n".join(failures)
    assert stats["steps"] >= DEEP_STEPS
    missing = [label for label in LABELS if stats[label] == 0]
    if not DEEP_LABELS_REQUIRED:  # a quick check: too short to promise every label
        with capsys.disabled():
            print(f"[stateful/revm] quick check ({DEEP_STEPS} steps, under {DEEP_LABEL_STEPS:,}): labels not "
                  f"reached: {', '.join(missing) or 'none'}")
        return
    assert not missing, f"never reached in {stats['steps']} steps: {missing}"


def test_partial_comparison__an_unnamed_account_waits_for_the_full_read_a_named_one_does_not(revm_session):
    """The per-step comparison (Twin.compare(full=False)) reads the accounts
    the step's calls named; a change to any other account is caught by the
    next full comparison (every full_every-th step, and each example's end),
    and a divergence in a named account by the partial one."""
    import copy

    from tests.stateful.backends import _slot
    from tests.stateful.machine import USDC, Twin

    s = revm_session
    b = s.backend
    snap = b.snapshot()
    try:
        tw = Twin(b, copy.deepcopy(s.world), s.now, s.minted, s.accounts)
        tw.stored, tw._index = s.stored, s.index
        trader, bystander = s.traders[0], s.traders[5]
        engine = b.addresses["engine"]
        free = b._layout["engine"]["positions"]["_free"]["slot"]

        def plant(account):  # one more unit of free collateral, on chain only
            slot = _slot(free, int(account, 16))
            b.evm.insert_account_storage(engine, slot, b.evm.storage(engine, slot) + 1)

        assert tw.act(trader, "deposit", USDC) is None
        plant(bystander)
        stored, _ = tw.compare(full=False)  # the trader's values and the globals: equal
        assert stored[("free", trader.lower())] == s.stored[("free", trader.lower())] + USDC
        assert stored[("free", bystander.lower())] == s.stored[("free", bystander.lower())]
        with pytest.raises(AssertionError, match=f"'free', '{bystander.lower()}'"):
            tw.compare(full=True)
    finally:
        b.restore(snap)
    snap = b.snapshot()
    try:
        tw = Twin(b, copy.deepcopy(s.world), s.now, s.minted, s.accounts)
        tw.stored, tw._index = s.stored, s.index
        assert tw.act(trader, "deposit", USDC) is None
        plant(trader)
        with pytest.raises(AssertionError, match=f"'free', '{trader.lower()}'"):
            tw.compare(full=False)
    finally:
        b.restore(snap)
