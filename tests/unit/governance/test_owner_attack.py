"""Issue 15's owner attack, replayed against a deployment with the sepolia
governance (a 172,800 s timelock; docs/trust.md), chain and model side by
side:

    1. the owner raises mmf so that a healthy 5x position would be
       liquidatable at an unchanged price, then liquidates it as keeper;
    2. sets the fund's floor to 0 and withdraws from the fund.

Now every owner step waits the timelock's delay, which dwarfs the time a
trader needs to close (request, the next round, execute: measured here),
and the raised mmf ramps in at most 1 bp of notional an hour
(positions._ramp_mmf), so the position stays healthy for ~81 days more."""

import ape
import pytest

from model import perp_engine as PE
from model import positions as P
from scripts import config as cfg
from scripts.deploy import deploy_protocol
from scripts.governance import ZERO32, schedule
from scripts.twin import Twin, mirror_world
from tests.conftest import lp_deposit
from tests.unit.perp_engine.helpers import USDC, WAD, expect_ok, expect_order_ok, expect_revert, params

BPS = 10**14
HOUR = 3600


@pytest.fixture
def public(owner, trader, other_trader, keeper, lp, stranger):
    entry = cfg.load("local")
    entry["governance"] = cfg.load("sepolia")["governance"]
    p = deploy_protocol(owner, config=entry)
    w = mirror_world(p, owner)
    w.v.escrow = p.vault.ESCROW()
    t = Twin(p, w, [owner, trader, other_trader, keeper, lp, stranger])
    t.fund(lp, 10_000_000 * USDC)
    lp_deposit(t, lp, 5_000_000 * USDC)
    for a in (trader, other_trader, keeper):
        t.fund(a, 1_000_000 * USDC)
    # funding off (through the timelock, two days): equity then moves with the price alone
    expect_ok(t, owner, "set_market_params", 0, params(t, 0, funding_k=0, max_funding_rate=0))
    return t


def first_liquidatable_second(w, account, mid, lo, hi):
    """The first block time in (lo, hi] at which the model's
    PerpEngine.is_liquidatable holds (equity < ramped maintenance)."""
    saved = w.now
    try:
        def liq(t):
            w.now = t
            return PE.is_liquidatable(w, account, mid)
        assert not liq(lo) and liq(hi)
        while hi - lo > 1:
            mid_t = (lo + hi) // 2
            lo, hi = (lo, mid_t) if liq(mid_t) else (mid_t, hi)
        return hi
    finally:
        w.now = saved


def test_owner_attack__delayed_past_the_exit_and_ramped(public, owner, trader, other_trader, keeper, stranger):
    twin, e, tl, fund = public, public.p.engine, public.p.timelock, public.p.insurance_fund
    delay = int(tl.get_minimum_delay())
    assert delay == 172_800
    # Two healthy 5x longs: 1 BTC at 80,000 with 16,000 USDC of margin.
    for who in (trader, other_trader):
        expect_ok(twin, who, "deposit", 100_000 * USDC)
        expect_order_ok(twin, who, 0, WAD, 16_000 * USDC, 80_000 * WAD, keeper)

    # The owner proposes mmf 0.5% -> 25% (imf 30%): 20% margin would be liquidatable at once.
    attack = params(twin, 0, imf=3_000 * BPS, mmf=2_500 * BPS)
    op = schedule(tl, e, e.set_market_params.encode_input(0, attack), owner)
    assert op.ready_at - twin.now >= delay
    with ape.reverts("timelock_controller: operation is not ready"):
        tl.execute(op.target, 0, op.calldata, ZERO32, op.salt, sender=stranger)

    # Seeing CallScheduled, other_trader closes: request, the next round, execution.
    ok, reason, oid = twin.request(other_trader, 0, -WAD, 0, 0)
    assert ok, reason
    requested = twin.now
    twin.restamp(0, keeper)
    assert twin.execute(keeper, oid) == ("executed", None)
    exit_seconds = twin.now - requested
    assert e.get_position(other_trader, 0).size == 0
    assert exit_seconds == 2 and exit_seconds * 80_000 < delay  # 2 s against 172,800 s

    # trader stays. The change lands (the twin waits the delay out), and ramps.
    before = twin.now
    expect_ok(twin, owner, "set_market_params", 0, attack)
    changed = twin.now
    assert changed - before >= delay
    assert tuple(e.mmf_ramp(0)) == twin.w.e.mmf_ramp[0] == (50 * BPS, changed, changed + 2_450 * HOUR)
    # the keeper's liquidation at an unchanged price fails: the position is healthy
    twin.restamp(0, keeper)
    assert not e.is_liquidatable(trader, 0)
    expect_revert(twin, keeper, "liquidate", trader, 0, [], reason="position healthy")
    # The ramp's speed: at most 1 bp of notional an hour, on chain as in the model.
    now_mmf = e.effective_mmf(0)
    assert now_mmf == P._mmf(twin.w, 0) and now_mmf - 50 * BPS <= (twin.now - changed) * BPS // HOUR + 1

    # The first second the position is liquidatable, from the model: ~1,940 hours (81 days) later.
    t_star = first_liquidatable_second(twin.w, trader.address, 0, twin.now, changed + 2_450 * HOUR)
    healthy_for = t_star - changed
    # equity 16,000 = 20% of 80,000: the ramp from 0.5% reaches 20% after 1,950 bp at 1 bp an hour
    assert healthy_for == 1_950 * HOUR + 1  # 81 days, 40 times the delay, 3.5 million times the exit
    assert healthy_for > 40 * delay and healthy_for > 3_000_000 * exit_seconds
    # on chain: healthy one second before, liquidatable at it (the keeper takes it only then)
    twin.now = t_star - 3
    twin.restamp(0, keeper)
    expect_revert(twin, keeper, "liquidate", trader, 0, [], reason="position healthy")
    expect_ok(twin, keeper, "liquidate", trader, 0, [])
    twin.assert_same()

    # 2. the fund: floor to 0 and a withdrawal wait the same delay
    for call in (fund.set_floor.encode_input(0), fund.withdraw_surplus.encode_input(owner, 1)):
        op = schedule(tl, fund, call, owner)
        with ape.reverts("timelock_controller: operation is not ready"):
            tl.execute(op.target, 0, op.calldata, ZERO32, op.salt, sender=owner)
