"""The demo's model-replay check can fail: a model that differs from the
contracts by one basis point of fee is caught, event by event and in state."""

from ape import chain

from scripts.lp import deposit_through_epoch
from scripts.replay import Replayer
from scripts.twin import mirror_world
from tests.conftest import USDC, WAD


def _fund_vault(protocol, lp):
    """LP capital before the replay starts: the vault backs every position's
    payout cap (an order it cannot back is cancelled "vault: capacity")."""
    protocol.token.mint(lp, 1_000_000 * USDC, sender=lp)
    protocol.token.approve(protocol.vault, 1_000_000 * USDC, sender=lp)
    deposit_through_epoch(protocol.vault, protocol.feeds, lp, 1_000_000 * USDC)  # request, rounds, settle, claim


def _order(protocol, trader, owner, size, margin, acceptable):
    """request_order from the trader, a later round (a second later) at the same answer,
    execute_order by the owner; returns the order id."""
    protocol.engine.request_order(0, size, margin, acceptable, sender=trader)
    oid = protocol.engine.order_count()
    # anvil may stamp blocks mined in the same second alike: a second later
    chain.provider.make_request("evm_increaseTime", [1])
    protocol.feeds[0].set_answer(protocol.feeds[0].latestRoundData()[1], sender=owner)
    protocol.engine.execute_order(oid, sender=owner)
    return oid


def _trade(protocol, trader, owner):
    protocol.token.mint(trader, 20_000 * USDC, sender=trader)
    protocol.token.approve(protocol.engine, 2**256 - 1, sender=trader)
    protocol.engine.deposit(20_000 * USDC, sender=trader)
    _order(protocol, trader, owner, WAD // 10, 1_000 * USDC, 81_000 * WAD)  # opens
    protocol.feeds[0].set_answer(79_000 * 10**8, sender=owner)
    _order(protocol, trader, owner, -(WAD // 20), 0, 0)  # closes half
    _order(protocol, trader, owner, WAD // 10, 1_000 * USDC, 78_000 * WAD)  # cancelled: 79,000 is above 78,000


def test_replay__faithful_model__no_mismatch(protocol, owner, trader, lp):
    _fund_vault(protocol, lp)
    start = chain.blocks.head.number
    r = Replayer(protocol, mirror_world(protocol, owner), start)
    _trade(protocol, trader, owner)
    r.catch_up()
    assert r.stats.txs == 3 + 3 * 3 + 1
    assert r.mismatches == []
    assert r.order_outcomes == {1: ("executed", 80_000 * WAD), 2: ("executed", 79_000 * WAD),
                                3: ("cancelled", "position: price above acceptable")}
    assert r.compare_state([owner.address, trader.address]) == []


def test_replay__model_with_another_trading_fee__reports_events_and_state(protocol, owner, trader, lp):
    _fund_vault(protocol, lp)
    start = chain.blocks.head.number
    w = mirror_world(protocol, owner)
    w.e.params[0].trading_fee += 10**14  # one basis point more than the chain charges
    r = Replayer(protocol, w, start)
    _trade(protocol, trader, owner)
    r.catch_up()
    assert any("PositionOpened" in m.what and "events differ" in m.what for m in r.mismatches)
    assert any("engine.execute_order" in m.what for m in r.mismatches)
    diffs = r.compare_state([owner.address, trader.address])
    assert any(d.startswith(f"('free', '{trader.address}')") for d in diffs)


def test_replay__model_cancelling_where_the_chain_executed__reports_the_outcome(protocol, owner, trader, lp):
    """A model whose initial-margin fraction is ten times the chain's cancels
    the open ("margin: below initial") that the chain executed: the replay
    names both outcomes."""
    _fund_vault(protocol, lp)
    start = chain.blocks.head.number
    w = mirror_world(protocol, owner)
    w.e.params[0].imf *= 10
    r = Replayer(protocol, w, start)
    protocol.token.mint(trader, 20_000 * USDC, sender=trader)
    protocol.token.approve(protocol.engine, 2**256 - 1, sender=trader)
    protocol.engine.deposit(20_000 * USDC, sender=trader)
    oid = _order(protocol, trader, owner, WAD // 10, 200 * USDC, 81_000 * WAD)  # 40x: fine at 1% imf, not at 10%
    r.catch_up()
    outcome = [m.what for m in r.mismatches if "outcome differs" in m.what]
    assert outcome == [f"engine.execute_order({oid},): outcome differs: chain executed at {80_000 * WAD}, model "
                       f"cancelled ('margin: below initial')"]
