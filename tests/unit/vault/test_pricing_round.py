"""An epoch is priced at the FIRST round of each market's feed later than
its last request, whenever it is settled (decision 89; red-team finding 1),
in process on revm (tests/unit/vault/redteam_lab.py): a late settle prices
exactly like a prompt one, and engine.first_round_after's walk back stops at
its bound (32 rounds), at a phase's first round and at an unsound round,
using the earliest sound round found."""

import pytest

from tests.unit.vault.in_process import _narrow_twin, _roles_first  # noqa: F401 (fixtures)
from tests.unit.vault.redteam_lab import BTC, USDC, WAD, Lab, restoring

SEED = 1_000_000 * USDC


@pytest.fixture(scope="module")
def base():
    lab = Lab()
    lab.lp_in("lp", SEED)
    assert lab.open("trader", BTC, 10 * WAD, 100_000 * USDC)  # the vault's value moves with BTC
    return lab


@pytest.fixture
def lab(base):
    yield from restoring(base)


def first_after(lab, mid, t):
    return lab.e("first_round_after(uint256,uint256)", mid, t, out=("uint256", "uint256"))


def test_late_settle__prices_exactly_like_a_prompt_one(lab):
    """The same deposit settled at the first round after it, or five rounds
    (and a 10% BTC swing) later by someone else: the same shares."""
    lab.fund("victim", 100_000 * USDC)
    lab.request_deposit("victim", 100_000 * USDC)
    lab.round({BTC: 88_000}, dt=60)
    snap = lab.b.snapshot()
    assert lab.settle("keeper") == 1
    prompt = lab.v("maxMint(address)", lab.a["victim"])
    lab.b.restore(snap)
    for p in (80_000, 96_800, 70_000, 88_880, 90_000):
        lab.round({BTC: p}, dt=60)
    assert lab.settle("stranger") == 1
    late = lab.v("maxMint(address)", lab.a["victim"])
    assert late == prompt > 0


def test_a_request_after_the_round__prices_the_epoch_first_and_joins_the_next(lab):
    """A request in the second of a round later than the open epoch's last
    request closes and prices that epoch (the requester earns its fee) and
    joins the next one: it cannot move the published pricing round."""
    lab.tx("owner", "vault", "set_settle_fee(uint256)", 10 * USDC)
    lab.fund("victim", 100_000 * USDC)
    lab.fund("attacker", 10 * USDC)
    lab.request_deposit("victim", 100_000 * USDC)
    epoch = lab.v("epoch()")
    lab.round({BTC: 88_000}, dt=60)
    before = lab.bal("attacker")
    lab.request_deposit("attacker", 1, dt=0)  # the round's own second
    assert lab.epoch(epoch)[3] != 0  # the victim's epoch is priced
    assert lab.v("epoch()") == epoch + 1 and lab.epoch(epoch + 1)[0] == 1
    assert lab.bal("attacker") - before == 10 * USDC - 1  # the fee, less the one unit requested


def test_walk__stops_at_32_rounds_and_uses_the_earliest_found(lab):
    """40 rounds after a request: the walk goes back 32 rounds, not to the
    first round after the request; with 32 rounds exactly it finds it."""
    t = lab.now
    prices = [80_000 + 100 * i for i in range(1, 41)]
    for p in prices:
        lab.round({BTC: p}, dt=60)
    assert lab.e("MAX_ROUND_WALK()") == 32
    price, updated = first_after(lab, BTC, t)
    assert price == prices[-1 - 32] * WAD and updated == lab.now - 32 * 60
    price, _ = first_after(lab, BTC, lab.now - 33 * 60)  # exactly 32 rounds back is the first after
    assert price == prices[-1 - 32] * WAD
    price, _ = first_after(lab, BTC, lab.now - 10 * 60)
    assert price == prices[-10] * WAD
    assert first_after(lab, BTC, lab.now) == (0, 0)  # no round later than now


def test_walk__stops_at_a_phase_boundary_and_at_an_unsound_round(lab):
    """A new phase (round id 2**64 + 1) starts no walk into the old phase;
    an unsound round in the history (answer 0) stops the walk after it."""
    t = lab.now
    lab.round({BTC: 81_000}, dt=60)
    lab.round({BTC: 82_000}, dt=60)
    rid = lab.view("feed0", "latestRoundData()", out=("uint80", "int256", "uint256", "uint256", "uint80"))[0]
    # the next round is unsound (answer 0), then a sound one
    lab.tx("owner", "feed0", "set_round_data(uint80,int256,uint256,uint256,uint80)", rid + 1, 0, lab.now + 60,
           lab.now + 60, rid + 1, dt=60)
    lab.tx("owner", "feed0", "set_round_data(uint80,int256,uint256,uint256,uint80)", rid + 2, 83_000 * 10**8,
           lab.now + 60, lab.now + 60, rid + 2, dt=60)
    assert first_after(lab, BTC, t) == (83_000 * WAD, lab.now)  # stopped at the unsound round
    phase = (2 << 64) | 1
    lab.tx("owner", "feed0", "set_round_data(uint80,int256,uint256,uint256,uint80)", phase, 84_000 * 10**8,
           lab.now + 60, lab.now + 60, phase, dt=60)
    assert first_after(lab, BTC, t) == (84_000 * WAD, lab.now)  # aggregator round 1: the phase's first


def test_stale_feed__a_request_after_the_round_closes_the_epoch_and_cannot_move_its_round(lab):
    """The epoch's round is published, then the feeds go stale (no round
    for max_price_age): settle waits, but a request made meanwhile closes
    the epoch (unpriced) and joins the next one, so it cannot push the
    pricing round to the next, fresh round (BTC 90,000): once fresh, the
    epoch is priced at the first round after its request, as if settled
    at once."""
    lab.fund("victim", 100_000 * USDC)
    lab.fund("attacker", 10 * USDC)
    lab.request_deposit("victim", 100_000 * USDC)
    epoch = lab.v("epoch()")
    lab.round({BTC: 88_000}, dt=60)
    snap = lab.b.snapshot()
    assert lab.settle("keeper") == 1
    prompt = lab.v("maxMint(address)", lab.a["victim"])
    lab.b.restore(snap)
    lab.advance(3_700)  # past max_price_age: every feed stale
    assert lab.reason("keeper", "vault", "settle()") == "vault: stale price"
    lab.request_deposit("attacker", 1)
    assert lab.v("closing()") == epoch and lab.epoch(epoch)[3] == 0  # closed, not priced
    assert lab.v("epoch()") == epoch + 1 and lab.epoch(epoch + 1)[0] == 1
    lab.round({BTC: 90_000}, dt=60)
    assert lab.settle("keeper") == 2  # the closed epoch, then the dust's
    assert lab.v("maxMint(address)", lab.a["victim"]) == prompt > 0
