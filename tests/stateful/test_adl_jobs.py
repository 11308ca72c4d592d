"""Pending ADL jobs (issue 14, finding 4; SPEC 10 bullet 4), in process:
revm and the model in lockstep (every call's revert reason and events
agree; the whole state is compared at the end of each test).

BTC at 80,000; funding, trading fees and the execution fee off, so every
figure is exact. Two longs B1 and B2 (2 BTC, 2,000 margin: bankrupt at
79,000) owe 2,000 each at 78,000 (1,000 per BTC, the haircut rate). The
opposite side: 25 crowd shorts of 0.08 BTC (margins 500 + 10 i, so the
scores differ) and a whale short of 10 BTC (100,000 margin, ranked last).
The insurance fund is empty. One call takes 20 targets: B1's liquidation
fills 20 x 0.08 = 1.6 BTC (20 x 80 = 1,600) and leaves a job of 400 on
0.4 BTC, at the job price 78,000.
"""

import copy

import pytest
from eth_utils import keccak, to_checksum_address

from model import adl
from model import positions as P
from tests.stateful.machine import USDC, WAD, Twin

pytestmark = pytest.mark.in_process

BTC = 0
FEED = 10**8  # the mock feed's unit (8 decimals)
CROWD = 25
CROWD_SIZE = 8 * WAD // 100  # 0.08 BTC


def _addr(tag, i):
    return to_checksum_address(keccak(text=f"adl-jobs:{tag}:{i}")[-20:])


class World:
    """The scene above, built on a fresh copy of the session's world."""

    def __init__(self, s):
        b = s.backend
        self.b, self.owner, self.keeper = b, b.accounts["owner"], b.accounts["keeper"]
        self.tw = tw = Twin(b, copy.deepcopy(s.world), s.now, s.minted, s.accounts)
        engine = b.addresses["engine"]
        p = list(tw.w.e.params[BTC].as_tuple())
        p[5], p[6], p[7], p[8], p[12] = 0, 0, 0, 0, 0  # trading fee, insurance share, funding, execution fee
        self.ok(self.owner, "set_market_params", BTC, tuple(p))
        self.crowd = [_addr("crowd", i) for i in range(CROWD)]
        self.whale, self.b1, self.b2 = _addr("whale", 0), _addr("bankrupt", 1), _addr("bankrupt", 2)
        self.small = [_addr("small", i) for i in range(3)]
        self.long = _addr("long", 0)
        for a in [*self.crowd, self.whale, self.b1, self.b2, *self.small, self.long]:
            self.ok(a, "token.mint", a, 200_000 * USDC)
            self.ok(a, "token.approve", engine, 2**256 - 1)
            self.ok(a, "deposit", 200_000 * USDC)
        for i, a in enumerate(self.crowd):
            self.order(a, -CROWD_SIZE, (500 + 10 * i) * USDC)
        self.order(self.whale, -10 * WAD, 100_000 * USDC)
        for a in (self.b1, self.b2):
            self.order(a, 2 * WAD, 2_000 * USDC)
        for a in self.small:
            self.order(a, WAD // 10, 100 * USDC)  # 0.1 BTC at 80x: owes 100 at 78,000
        self.order(self.long, WAD // 10, 5_000 * USDC)  # healthy at 78,000
        fund = tw.w.token.balance_of(b.addresses["fund"])
        if fund:
            self.ok(self.owner, "fund.withdraw_surplus", self.owner, fund)
        self.set_price(78_000)

    def ok(self, sender, verb, *args):
        reason = self.tw.act(sender, verb, *args)
        assert reason is None, f"{verb}{args}: {reason}"

    def order(self, who, size, margin_delta):
        """An order executed at the feed's answer after a later round."""
        acceptable = 2**127 if size > 0 else 0
        status, got = self.tw.order(who, BTC, size, margin_delta, acceptable, self.keeper, self.owner)
        return None if status == "executed" else got

    def set_price(self, usd):
        self.ok(self.owner, "feed0.set_answer", usd * FEED)

    def events(self, name):
        return [f for n, f in self.tw.call_events if n == name]

    def job(self, i=0):
        jobs = self.tw.w.e.adl_jobs.get(BTC, [])
        return jobs[i] if i < len(jobs) else P.AdlPending()

    def first_job(self):
        """B1 liquidated with the top 20: the job that stays pending."""
        targets = adl._ranking(self.tw.w, BTC, 2 * WAD, 78_000 * WAD)
        assert targets == sorted(self.crowd, key=lambda a: self._rank(a))[:20]
        self.ok(self.keeper, "liquidate", self.b1, BTC, targets)
        fills = self.events("AutoDeleveraged")
        assert [f["haircut"] for f in fills] == [80 * USDC] * 20
        job = self.job()
        assert (job.remaining, job.size_left, job.price) == (400 * USDC, 4 * WAD // 10, 78_000 * WAD)

    def _rank(self, a):
        return self.crowd.index(a)  # the lower the margin, the higher the score


@pytest.fixture(scope="module")
def built(revm_session):
    """The scene, built once (about 300 calls); each test runs on a copy."""
    outer = revm_session.backend.snapshot()
    try:
        yield World(revm_session), revm_session.accounts
    finally:
        revm_session.backend.restore(outer)


@pytest.fixture
def scene(built):
    s, accounts = built
    tw = s.tw
    saved = (copy.deepcopy(tw.w), tw.now, tw.minted)
    snap = s.b.snapshot()
    try:
        yield s
    finally:
        s.b.restore(snap)
        s.tw = Twin(s.b, saved[0], saved[1], saved[2], accounts)


def test_second_bankruptcy__while_a_job_pends__is_liquidated_and_its_job_queues(scene):
    """Before: B2's liquidation reverted 'adl: pending deleverage' until B1's
    job ended. Now it is liquidated at once; its job (2,000 on 2 BTC at
    78,000) waits behind B1's, and B2 cannot open while it does."""
    s = scene
    s.first_job()
    s.ok(s.keeper, "liquidate", s.b2, BTC, [s.whale])  # the list is not used: the job queues
    assert s.events("AutoDeleveraged") == []
    (liq,) = s.events("PositionLiquidated")
    assert liq["bad_debt"] == 2_000 * USDC
    assert [f["remaining"] for f in s.events("DeleveragePending")] == [2_000 * USDC]
    assert (s.b2, BTC) not in s.tw.w.e.positions
    j1, j2 = s.job(0), s.job(1)
    assert j1.bankrupt == s.b1 and j1.remaining == 400 * USDC
    assert (j2.bankrupt, j2.remaining, j2.bad_debt, j2.size_left, j2.price) == (
        s.b2, 2_000 * USDC, 2_000 * USDC, 2 * WAD, 78_000 * WAD)
    # the bankrupt account of a queued job cannot open there
    s.ok(s.b2, "request_order", BTC, -WAD // 10, 1_000 * USDC, 0)
    s.tw.restamp(BTC, s.owner)
    s.ok(s.keeper, "execute_order", s.tw.w.e.order_count)
    assert s.tw.outcome() == ("cancelled", "adl: bankrupt while pending")
    # a fourth job fits; a fifth bankruptcy is still liquidated (decision 92):
    # with the queue full, its deficit (100) is socialized at once
    s.ok(s.keeper, "liquidate", s.small[0], BTC, [])
    s.ok(s.keeper, "liquidate", s.small[1], BTC, [])
    assert len(s.tw.w.e.adl_jobs[BTC]) == P.MAX_ADL_JOBS == 4
    s.ok(s.keeper, "liquidate", s.small[2], BTC, [])
    assert (s.small[2], BTC) not in s.tw.w.e.positions
    assert [f["amount"] for f in s.events("BadDebtSocialized")] == [100 * USDC]
    assert len(s.tw.w.e.adl_jobs[BTC]) == 4
    # a deleverage ends the oldest job (the last five crowd shorts, 5 x 80): a place frees
    s.ok(s.keeper, "deleverage", BTC, adl.job_ranking(s.tw.w, BTC))
    assert [f["haircut"] for f in s.events("AutoDeleveraged")] == [80 * USDC] * 5
    assert s.events("BadDebtSocialized") == []
    assert s.job(0).bankrupt == s.b2 and len(s.tw.w.e.adl_jobs[BTC]) == 3
    assert [j.bankrupt for j in s.tw.w.e.adl_jobs[BTC]] == [s.b2, s.small[0], s.small[1]]
    s.tw.compare()


def test_job_price__fixed_at_creation__a_move_where_nothing_is_in_profit_socializes_nothing(scene):
    """Before, a deleverage at a price where no opposite position was in
    profit socialized the rest. The oracle goes to 80,500: every short
    (entry 80,000) is losing there. B1's job still ranks and fills at
    78,000: the five crowd shorts left pay 80 each (400), nothing is
    socialized; each closed part's PnL is the lower of its PnL at the job's
    price (+160) and at the oracle (-40). B2's job (queued at 78,000) then
    takes 2 BTC of the whale: 2,000."""
    s = scene
    s.first_job()
    s.ok(s.keeper, "liquidate", s.b2, BTC, [])
    s.set_price(80_500)
    w = s.tw.w
    last5 = s.crowd[20:]
    margins = {a: w.e.positions[(a, BTC)].margin for a in last5}
    free0 = {a: w.e.free.get(a, 0) for a in last5}
    assert adl._ranking(w, BTC, 2 * WAD, 80_500 * WAD) == []  # nobody is in profit at the oracle
    assert adl.job_ranking(w, BTC) == [*last5, s.whale]
    s.ok(s.keeper, "deleverage", BTC, adl.job_ranking(w, BTC))
    fills = s.events("AutoDeleveraged")
    assert [(f["target"], f["size"], f["haircut"]) for f in fills] == [(a, -CROWD_SIZE, 80 * USDC)
                                                                        for a in last5]
    assert s.events("BadDebtSocialized") == []
    for a in last5:  # margin - 40 (the loss at the oracle) - 80 (the haircut)
        assert w.e.free[a] - free0[a] == margins[a] - 40 * USDC - 80 * USDC
    # B2's job, at its own price
    whale0 = w.e.positions[(s.whale, BTC)].margin
    s.ok(s.keeper, "deleverage", BTC, adl.job_ranking(w, BTC))
    (f,) = s.events("AutoDeleveraged")
    assert (f["target"], f["size"], f["haircut"]) == (s.whale, -2 * WAD, 2_000 * USDC)
    assert s.events("BadDebtSocialized") == [] and BTC not in w.e.adl_jobs
    # the whale's closed fifth: released 20,000 - 1,000 (at 80,500) - 2,000 (the haircut)
    assert w.e.positions[(s.whale, BTC)].margin == whale0 - whale0 // 5
    s.tw.compare()


def test_escape__a_profitable_target_that_closes_while_the_job_pends__pays_its_share_first(scene):
    """Before, the crowd shorts ranked 21-25 could close and leave the job
    to be socialized. Now a close pays the job's haircut on its size first,
    as a deleverage would: crowd[20] (0.08 BTC, +160 at 78,000) is paid
    margin + 160 - 80; the job drops to 320 on 0.32 BTC. A long (the
    bankrupt's side) closing pays nothing."""
    s = scene
    s.first_job()
    w = s.tw.w
    a = s.crowd[20]
    m, free0 = w.e.positions[(a, BTC)].margin, w.e.free.get(a, 0)
    vault0 = w.token.balance_of(s.b.addresses["vault"])
    assert s.order(a, CROWD_SIZE, 0) is None  # a full close at 78,000
    (f,) = s.events("AutoDeleveraged")
    assert (f["bankrupt"], f["target"], f["size"], f["haircut"]) == (s.b1, a, -CROWD_SIZE, 80 * USDC)
    (c,) = s.events("PositionClosed")
    assert c["payout"] == m + 160 * USDC
    assert w.e.free[a] - free0 == m + 160 * USDC - 80 * USDC
    # the vault pays the close's profit (160) and gets the haircut (80)
    assert w.token.balance_of(s.b.addresses["vault"]) - vault0 == -160 * USDC + 80 * USDC
    job = s.job()
    assert (job.remaining, job.size_left) == (320 * USDC, 32 * WAD // 100)
    # the bankrupt's side pays nothing (a long losing 200)
    assert s.order(s.long, -WAD // 10, 0) is None
    assert s.events("AutoDeleveraged") == [] and s.job().remaining == 320 * USDC
    # a partial close pays on the part it closes: half of crowd[21], 40
    assert s.order(s.crowd[21], CROWD_SIZE // 2, 0) is None
    (f,) = s.events("AutoDeleveraged")
    assert (f["size"], f["haircut"]) == (-CROWD_SIZE // 2, 40 * USDC)
    assert s.job().remaining == 280 * USDC
    s.tw.compare()
