"""Planted bugs: the differential machine must catch each one within a
ci-sized run (the "ci" profile's examples and steps, generation only, no
shrinking), in process on revm. A machine that passes with a planted bug is a
machine that cannot find that class of bug.

    (a) a rounding direction flipped in the model (upnl rounds up)
    (b) a fee split skipped in a contract (the insurance fund's share of the
        trading fee is never transferred), compiled from a modified copy
    (c) an ADL that takes the wrong target: in the model, the keeper's
        ranking swaps its top two; in a contract, the completeness scan looks
        at the bankrupt's own side, so a skipped rank goes through
    (d) longs pay twice the funding they owe, in the model (the surplus
        lands in the vault, so token conservation holds): the funding
        property after every call, or the chain, disagrees
    (e) shorts are paid the borrowing fee instead of paying it, the same
        change in contract and model (so they agree): only the funding
        property, which writes each side's index itself, can see it
"""

import re
import shutil
from collections import Counter

import pytest
from hypothesis import Phase, settings

from model import adl as model_adl
from model import funding as model_funding
from model import margin as model_margin
from model.fixed_point import div_ceil
from tests.stateful.backends import CONTRACTS, RevmBackend
from tests.stateful.machine import ROLES, Session, run

pytestmark = pytest.mark.in_process


def ci_sized():
    """The ci profile's budget, generation only: the first failure ends it."""
    ci = settings.get_profile("ci")
    return settings(ci, phases=[Phase.generate], database=None, print_blob=False)


def assert_caught(session, pattern, capsys, name):
    stats = Counter()
    with pytest.raises(AssertionError) as caught:
        run(session, ci_sized(), stats)
    message = str(caught.value)
    with capsys.disabled():
        print(f"\n[planted/{name}] caught after {stats['examples']} examples, {stats['steps']} steps "
              f"({stats['seconds']:.1f} s): {message.splitlines()[0][:140]}")
    assert re.search(pattern, message), f"the machine failed, but not on the planted bug:\n{message[:2000]}"


def variant(tmp_path, path, old, new):
    """A copy of contracts/ with one edit; the edit must apply exactly once."""
    root = tmp_path / "contracts"
    shutil.copytree(CONTRACTS, root)
    source = (root / path).read_text()
    assert source.count(old) == 1, f"{path} no longer holds the line this planted bug edits: {old!r}"
    (root / path).write_text(source.replace(old, new))
    return root


def test_planted__model_upnl_rounds_up__caught(revm_session, monkeypatch, capsys):
    def upnl_rounding_up(size, entry, price, scale):
        return div_ceil(size * (price - entry), scale)

    monkeypatch.setattr(model_margin, "upnl", upnl_rounding_up)
    assert_caught(revm_session, r"model and chain differ|chain (ok|reverted).*model", capsys, "upnl rounds up")


def test_planted__contract_skips_insurance_fee_share__caught(tmp_path, capsys):
    root = variant(
        tmp_path, "positions.vy",
        "        assert extcall COLLATERAL.transfer(self.insurance_fund.address, fund_amount, "
        "default_return_value=True), \"collateral: transfer failed\"\n",
        "        pass  # planted bug: the insurance fund's share is never sent\n",
    )
    session = Session(RevmBackend(ROLES, contracts_dir=root))
    assert_caught(session, r"\('bal', '(fund|engine)'\)|engine holds", capsys, "fee split skipped")


def test_planted__model_ranking_swaps_top_two__caught(revm_session, monkeypatch, capsys):
    real = model_adl._ranking

    def swapped(*args, **kwargs):
        out = real(*args, **kwargs)
        return [out[1], out[0], *out[2:]] if len(out) >= 2 else out

    monkeypatch.setattr(model_adl, "_ranking", swapped)
    # Either the chain refuses the model's (swapped) list, or the machine's
    # deliberately "unsorted" list, built by swapping the model's top two
    # back, is the true ranking and the chain accepts it, or the equal-score
    # edge rule sees the model rank the higher address first: all are this bug.
    assert_caught(revm_session, r"ADL ranking was refused|a unsorted ADL list was accepted|"
                  r"equal ADL scores .*: the model ranks", capsys, "ranking swaps top two")


def test_planted__contract_scans_wrong_side_for_skipped_ranks__caught(tmp_path, capsys):
    root = variant(
        tmp_path, "adl.vy",
        "    key: uint256 = mid * 2 + convert(job.bankrupt_size > 0, uint256)\n",
        "    key: uint256 = mid * 2 + convert(job.bankrupt_size < 0, uint256)  # planted bug\n",
    )
    session = Session(RevmBackend(ROLES, contracts_dir=root))
    assert_caught(session, r"model and chain differ|chain (ok|reverted).*model|list was accepted", capsys,
                  "ADL scan on the wrong side")


def test_planted__model_longs_pay_double_funding__caught(revm_session, monkeypatch, capsys):
    real = model_funding.owed

    def longs_pay_double(size, index_now, index_at, scale):
        owed = real(size, index_now, index_at, scale)
        return 2 * owed if size > 0 else owed

    monkeypatch.setattr(model_funding, "owed", longs_pay_double)
    assert_caught(revm_session, r"funding after|model and chain differ|chain (ok|reverted).*model", capsys,
                  "longs pay double funding")


def test_planted__parallel_deep_run__failure_names_seed_and_shrunk_steps(revm_session, monkeypatch):
    """make fuzz-deep's forked workers: a planted bug comes back from the
    worker with the seed that replays it and hypothesis's shrunk steps."""
    from tests.stateful.parallel import run_parallel

    monkeypatch.setattr(model_margin, "upnl", lambda size, entry, price, scale: div_ceil(size * (price - entry), scale))
    stats, failures = run_parallel(revm_session, ci_sized(), 10_000, 2, seed0=11)
    assert failures, f"{stats['steps']} steps on two workers missed the planted bug"
    text = failures[0]
    assert re.search(r"worker seed 1[12] \(replay: BACKSTOP_SEED=1[12] BACKSTOP_WORKERS=1 make fuzz-deep\)", text), text
    assert "state = BackstopMachine_revm()" in text and "model and chain differ" in text, text[:3000]


def test_planted__shorts_paid_the_borrowing_fee_in_contract_and_model__caught(tmp_path, monkeypatch, capsys):
    root = variant(
        tmp_path, "funding.vy",
        "    if size < 0:\n        return index - borrow\n",
        "    if size < 0:\n        return index + borrow  # planted bug\n",
    )
    monkeypatch.setattr(model_funding, "side_index", lambda size, index, borrow: index + borrow)
    session = Session(RevmBackend(ROLES, contracts_dir=root))
    assert_caught(session, r"funding after", capsys, "shorts paid the borrowing fee (contract and model)")
