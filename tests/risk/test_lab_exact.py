"""The lab's shortcuts change nothing: the journal's snapshots leave the
state the model's own leave, and the keeper that checks only positions
whose watch price was crossed does exactly what a keeper that asks the
model about every position at every tick does."""

import pytest

from model import adl
from model import positions as P
from risk.book import BookSpec
from risk.lab import Run, Scenario, _Watch


def _state(w):
    return (w.e, w.token, w.v, {k: (f.answer, f.updated_at) for k, f in w.feeds.items()})


def test_journal__a_book_with_refused_opens__leaves_the_state_plain_snapshots_leave():
    # a shallow vault: most opens are refused with "vault: capacity" (or
    # pass once earlier ones left room), each one restored by a snapshot
    sc = Scenario(book=BookSpec(accounts=160, lp_deposit=600_000, entry_rounds=3), path="seed", seed=5)
    journaled, plain = Run(sc), Run(sc, journal=False)
    journaled.open_book()
    plain.open_book()
    assert journaled.refusals == plain.refusals
    assert journaled.refusals.get("vault: capacity", 0) > 20, "the book must exercise the refusal path"
    assert 0 < journaled.m.opened == plain.m.opened < 160
    assert type(journaled.w.e.positions) is dict  # the journal is off again
    assert _state(journaled.w) == _state(plain.w)


class _EveryPosition(_Watch):
    """The brute-force keeper: every position of the market, every tick."""

    def liquidation_candidates(self, mid, price):
        found = sorted((a for (a, m) in self.w.e.positions if m == mid), key=P.addr_int)
        self.checks += len(found)
        return found

    def tp_sl_candidates(self, mid, price):
        return sorted((a for (a, m) in self.w.e.positions if m == mid), key=P.addr_int)


def _play(sc, watch_cls, monkeypatch):
    monkeypatch.setattr("risk.lab._Watch", watch_cls)
    r = Run(sc)
    r.open_book()
    r.run_path()
    return r


@pytest.mark.parametrize("path,seed,engine", [
    ("seed", 3, {}),
    ("squeeze", 4, {"max_profit_bps": 2_500}),  # +30%: longs run into the payout cap's zone
    ("jump", 6, {}),
])
def test_watch__skipping_uncrossed_positions__changes_no_outcome(path, seed, engine, monkeypatch):
    book = BookSpec(accounts=300, long_percent=55, per_side=100, insurance_fund=2_000)
    sc = Scenario(book=book, path=path, seed=seed, engine=engine)
    fast = _play(sc, _Watch, monkeypatch)
    slow = _play(sc, _EveryPosition, monkeypatch)
    a, b = fast.result(), slow.result()
    a.pop("checks"), b.pop("checks")
    assert a == b
    assert _state(fast.w) == _state(slow.w)
    assert fast.watch.checks < slow.watch.checks
    if path == "seed":
        assert a["liquidations"] > 50 and a["adl_fills"] > 0 and a["tp_sl_executed"] > 0


def test_inline_ranking__equals_the_models_adl_ranking_mid_crash():
    sc = Scenario(book=BookSpec(accounts=400, per_side=250), path="seed", seed=2)
    r = Run(sc)
    r.open_book()
    r.watch = _Watch(r)
    for mid in range(r.n_markets):
        price = P._price(r.w, mid, False) * 85 // 100  # shorts in profit
        for bankrupt in (1, -1):
            mine = [m for _, _, m in r._scored(mid, bankrupt, price)]
            assert mine == adl._ranking(r.w, mid, bankrupt, price, None)
            assert mine or bankrupt < 0


def test_fund_needed__is_exact_to_the_token():
    """A run with a fund that cannot run dry gives F*; a fund of F* (rounded
    up to whole tokens) sees no ADL and no socialized loss, one token less
    than F* does."""
    from risk.lab import UNIT, run
    from risk.sweep import UNLIMITED_FUND
    book = BookSpec(accounts=200, insurance_fund=UNLIMITED_FUND)
    need = run(Scenario(book=book, path="jump", seed=2, policies=False))["fund_needed"]
    assert need > 1_000 * UNIT
    enough = run(Scenario(book=book.model_copy(update={"insurance_fund": -(-need // UNIT)}), path="jump", seed=2,
                          policies=False))
    assert enough["adl_fills"] == enough["socialized_loss"] == 0 and enough["fund_needed"] == need
    short = run(Scenario(book=book.model_copy(update={"insurance_fund": need // UNIT - 1}), path="jump", seed=2,
                         policies=False))
    assert short["adl_fills"] + short["socialized_loss"] > 0
