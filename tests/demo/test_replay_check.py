"""The demo's model-replay check can fail: a model that differs from the
contracts by one basis point of fee is caught, event by event and in state."""

from ape import chain

from scripts.replay import Replayer
from scripts.twin import mirror_world
from tests.conftest import USDC, WAD


def _trade(protocol, trader, owner):
    protocol.token.mint(trader, 20_000 * USDC, sender=trader)
    protocol.token.approve(protocol.engine, 2**256 - 1, sender=trader)
    protocol.engine.deposit(20_000 * USDC, sender=trader)
    protocol.engine.open_position(0, WAD // 10, 1_000 * USDC, 81_000 * WAD, sender=trader)
    protocol.feeds[0].set_answer(79_000 * 10**8, sender=owner)
    protocol.engine.close_position(0, -(WAD // 20), 0, sender=trader)


def test_replay__faithful_model__no_mismatch(protocol, owner, trader):
    start = chain.blocks.head.number
    r = Replayer(protocol, mirror_world(protocol, owner), start)
    _trade(protocol, trader, owner)
    r.catch_up()
    assert r.stats.txs == 6
    assert r.mismatches == []
    assert r.compare_state([owner.address, trader.address]) == []


def test_replay__model_with_another_trading_fee__reports_events_and_state(protocol, owner, trader):
    start = chain.blocks.head.number
    w = mirror_world(protocol, owner)
    w.e.params[0].trading_fee += 10**14  # one basis point more than the chain charges
    r = Replayer(protocol, w, start)
    _trade(protocol, trader, owner)
    r.catch_up()
    assert any("PositionOpened" in m.what and "events differ" in m.what for m in r.mismatches)
    diffs = r.compare_state([owner.address, trader.address])
    assert any(d.startswith(f"('free', '{trader.address}')") for d in diffs)
