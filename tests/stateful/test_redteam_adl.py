"""Red team, ADL jobs (redteam2; docs/redteam-protocol.md, findings A1-A3).

The scene of tests/stateful/test_adl_jobs.py (revm and the model in
lockstep): BTC at 80,000, fees and funding off; B1 (2 BTC long, 2,000
margin) liquidated at 78,000 with the top 20 crowd shorts leaves a job of
400 on 0.4 BTC at 78,000 (the haircut rate: 1,000 per BTC). The whale is a
10 BTC short at 80,000 (100,000 margin), +20,000 at 78,000.
"""

import pytest

from tests.stateful.machine import USDC, WAD
from tests.stateful.test_adl_jobs import BTC, built, scene  # noqa: F401  (fixtures)

pytestmark = pytest.mark.in_process


def test_a1_control__the_whale_closing_while_the_job_pends__pays_the_whole_job(scene):
    """Regression (the escape pays): the whale closing its 10 BTC at 77,000
    pays the job's 400 (0.4 BTC at 1,000 per BTC) out of its payout."""
    s = scene
    s.first_job()
    s.set_price(77_000)
    assert s.order(s.whale, 10 * WAD, 0) is None
    (f,) = s.events("AutoDeleveraged")
    assert (f["target"], f["haircut"]) == (s.whale, 400 * USDC)
    assert s.tw.w.e.adl_jobs.get(BTC, []) == []  # the job ended
    s.tw.compare()


def test_a1_whale_averages_its_entry_to_the_job_price__refused_and_still_pays_the_job(scene):
    """Finding A1, fixed (decision 93). Attack: after a further drop to
    77,000, the whale adds 21 BTC short (its entry would become (800,000 +
    21 x 77,000) / 31 = 77,967.7 < 78,000), so it would no longer be 'in
    profit at the job's price': neither a deleverage target nor charged by
    the escape, and would close all 31 BTC keeping its full 30,000 of
    profit, the 400 it owed the job left to the crowd or the LPs. Now a
    position that is a target of a pending job cannot increase: the order
    is cancelled 'adl: target while pending' (its escrow refunded), and
    closing its 10 BTC pays the job's 400."""
    s = scene
    s.first_job()
    s.set_price(77_000)
    free = s.tw.w.e.free.get(s.whale, 0)
    assert s.order(s.whale, -21 * WAD, 20_000 * USDC) == "adl: target while pending"
    assert s.tw.w.e.positions[(s.whale, BTC)].size == -10 * WAD
    assert s.tw.w.e.free.get(s.whale, 0) == free  # the escrow came back whole
    assert s.order(s.whale, 10 * WAD, 0) is None
    paid = sum(f["haircut"] for f in s.events("AutoDeleveraged") if f["target"] == s.whale)
    assert paid == 400 * USDC
    s.tw.compare()


def _full_queue(s):
    s.first_job()
    s.ok(s.keeper, "liquidate", s.b2, BTC, [])
    s.ok(s.keeper, "liquidate", s.small[0], BTC, [])
    s.ok(s.keeper, "liquidate", s.small[1], BTC, [])
    assert len(s.tw.w.e.adl_jobs[BTC]) == 4


def test_a2_queue_full__a_bankrupt_liquidation_still_closes_the_position(scene):
    """Finding A2, fixed (decision 92): behind a full queue of 4 jobs, small[2]
    (0.1 BTC long, 100 margin, entry 80,000) at 78,000 is liquidated at once
    and its deficit, frozen at 100, is socialized; before the fix it reverted
    'adl: queue full' while its debt grew by 100 per 1,000 of price (200 at
    77,000, 300 at 76,000) until someone ran a deleverage."""
    s = scene
    _full_queue(s)
    s.ok(s.keeper, "liquidate", s.small[2], BTC, [])
    (liq,) = s.events("PositionLiquidated")
    assert liq["bad_debt"] == 100 * USDC
    assert [f["amount"] for f in s.events("BadDebtSocialized")] == [100 * USDC]
    assert (s.small[2], BTC) not in s.tw.w.e.positions
    s.tw.compare()


def test_g2_pause__a_trader_near_liquidation_can_still_top_up_and_close(scene):
    """Regression (the pauser cannot trap): paused, small[0] (0.1 BTC long,
    100 margin, entry 80,000) at 79,200 holds equity 20 against a
    maintenance of 39.6 (0.5 %): liquidatable. It adds 500 of its free collateral
    (works paused), is healthy again (equity 520), and closes in full
    (works paused) with 520; a new open is refused while paused."""
    s = scene
    s.set_price(79_200)
    w = s.tw.w
    a = s.small[0]
    s.ok(s.owner, "pause")
    refused = s.order(s.long, WAD // 10, 1_000 * USDC)
    assert refused is not None and "paused" in str(refused), refused  # an increase is refused
    from model import perp_engine as PE

    assert PE.is_liquidatable(w, a, BTC)
    s.ok(a, "add_margin", BTC, 500 * USDC)
    assert not PE.is_liquidatable(w, a, BTC)
    assert w.e.positions[(a, BTC)].margin == 600 * USDC
    assert s.tw.act(s.keeper, "liquidate", a, BTC, []) == "position healthy"
    free0 = w.e.free[a]
    assert s.order(a, -WAD // 10, 0) is None
    assert (a, BTC) not in w.e.positions
    assert w.e.free[a] - free0 == 520 * USDC
    s.tw.compare()
