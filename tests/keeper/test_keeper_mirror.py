"""The keeper's decisions, in process: its model mirror equals the chain to
the unit, a race is logged and not counted as an error, and a mirror that
disagrees with the chain stops the keeper without sending anything."""

import logging

import pytest
from ape import chain

from bots import devnet as D
from bots import rpc as R
from bots.devnet import USDC, WAD, Spec
from bots.keeper import CircuitBreaker, Keeper, Signer
from bots import mirror as M
from bots.mirror import Mirror
from model import liquidity_vault as LV
from model import perp_engine as PE
from model import positions as P
from tests.keeper.conftest import view

BTC, ETH = 0, 1
TENTH = WAD // 10
ORDER_FIELDS = ("account", "market_id", "size_delta", "margin_delta", "acceptable_price", "requested_at", "reduce_only",
                "trading_fee", "execution_fee", "escrow", "expires_at")


def _t(label):
    return D.trader_address(label)


def _specs():
    specs = []
    for i in range(6):
        specs.append(Spec(_t(f"m-long-{i}"), BTC, TENTH * (i + 1), (100 + 97 * i) * USDC * (i + 1)))
        specs.append(Spec(_t(f"m-short-{i}"), BTC, -TENTH * (i + 2), (150 + 61 * i) * USDC * (i + 2)))
    specs.append(Spec(_t("m-tp"), BTC, TENTH, 400 * USDC, take_profit=90_000 * WAD, stop_loss=79_000 * WAD))
    specs += [Spec(_t(f"m-eth-{i}"), ETH, WAD * (i + 1) * (-1) ** i, 200 * USDC * (i + 1)) for i in range(4)]
    return specs


def _views(node, engine, account, mid, block):
    out = []
    for name, typ in (("equity", "int256"), ("is_liquidatable", "bool"), ("liquidation_price", "uint256"),
                      ("bankruptcy_price", "uint256"), ("adl_score", "uint256"), ("funding_owed", "int256")):
        (v,) = view(node, engine, f"{name}(address,uint256)", ["address", "uint256"], [account, mid], [typ], block)
        out.append(v)
    return tuple(out)


def _model_views(w, account, mid):
    return (PE.equity(w, account, mid), PE.is_liquidatable(w, account, mid), PE.liquidation_price(w, account, mid),
            PE.bankruptcy_price(w, account, mid), PE.adl_score(w, account, mid), PE.funding_owed(w, account, mid))


def _skewed_book(node, protocol):
    D.provide_liquidity(node, protocol, _t("lp"), 5_000_000 * USDC)
    specs = _specs()
    D.open_positions(node, protocol, specs)
    node.rpc.request("evm_increaseTime", [900])  # funding accrues on the skew
    D.set_price(node, protocol, BTC, 78_321, _t("oracle"))
    D.set_price(node, protocol, ETH, 3_107, _t("oracle"))
    node.rpc.request("evm_increaseTime", [5])
    node.rpc.request("evm_mine", [])
    return specs


def test_mirror__after_funding_and_price_moves__equals_every_chain_view(protocol, node):
    engine = protocol.engine.address
    specs = _skewed_book(node, protocol)
    head = node.head()
    mirror = Mirror(R.Rpc(node.uri), engine)
    w = mirror.load(head)

    assert len(w.e.positions) == len(specs)
    for s in specs:
        assert _model_views(w, s.trader, s.market_id) == _views(node, engine, s.trader, s.market_id, head)
    assert any(PE.is_liquidatable(w, s.trader, s.market_id) for s in specs)
    assert not all(PE.is_liquidatable(w, s.trader, s.market_id) for s in specs)
    rankings = []
    for s in specs:
        (ranking,) = view(node, engine, "adl_ranking(address,uint256)", ["address", "uint256"], [s.trader, s.market_id],
                          ["address[]"], head)
        assert PE.adl_ranking(w, s.trader, s.market_id) == [R.addr(a) for a in ranking]
        rankings.append(len(ranking))
    assert max(rankings) >= 5  # the shorts in profit, ranked for a BTC long
    # The vault as the keeper's model of settle() sees it: its epochs, supply
    # and valuations equal the chain's views (the LP's epoch settled and claimed).
    vault = protocol.vault
    assert (w.v.closing, w.v.epoch, w.v.settle_fee, w.v.total_supply) == (
        vault.closing(), vault.epoch(), vault.settle_fee(), vault.totalSupply()) == (0, 2, 0, w.v.total_supply)
    assert w.v.total_supply > 0 and w.v.escrow == vault.ESCROW()
    # The engine-wide figures the valuations and the keeper floor use.
    engine_wide = [(name, getattr(w.e, name), getattr(protocol.engine, name)()) for name in M.ENGINE_WIDE]
    assert all(mirrored == chain for _, mirrored, chain in engine_wide), engine_wide
    assert w.e.total_cost > 0
    assert (LV.total_assets(w), LV.entry_assets(w), LV.free_cash(w)) == (
        vault.totalAssets(), (True, vault.entry_assets()), vault.free_cash())


def test_mirror__events_since_load__bring_it_to_a_fresh_load(protocol, node, keeper):
    engine = protocol.engine.address
    specs = _skewed_book(node, protocol)
    mirror = Mirror(R.Rpc(node.uri), engine)
    start = node.head()
    mirror.load(start)

    longs = [s for s in specs if s.market_id == BTC and s.size > 0][2:]  # the healthy ones
    receipts = node.send_as([
        (longs[0].trader, engine, R.encode_request_order(BTC, -longs[0].size, 0, 0)),  # a close
        (longs[1].trader, engine, R.encode_request_order(BTC, -longs[1].size // 2, 0, 0)),  # a partial close
        (longs[2].trader, engine, R.calldata("add_margin(uint256,uint256)", ["uint256", "uint256"], [BTC, 7 * USDC])),
        (longs[3].trader, engine, R.calldata("set_tp_sl(uint256,uint256,uint256)", ["uint256", "uint256", "uint256"],
                                             [BTC, 95_000 * WAD, 0])),
        (longs[4].trader, engine, R.encode_request_order(BTC, 0, -5 * USDC, 0)),  # margin removal, left pending
    ])
    closes = D.order_ids(receipts[:2])
    (pending,) = D.order_ids(receipts[4:])
    D.later_round(node, protocol, [BTC], _t("oracle"), node.block_timestamp(node.head()))
    D.execute_orders(node, protocol, closes, [_t("executor-0"), _t("executor-1")])
    D.open_positions(node, protocol, [Spec(_t("m-late"), BTC, -TENTH, 500 * USDC)])
    head = node.head()
    changes = mirror.changes(start + 1, head)
    mirror.apply(changes, head)

    fresh = Mirror(R.Rpc(node.uri), engine).load(head)
    assert {c.name for c in changes} >= {"PositionClosed", "MarginChanged", "TpSlSet", "PositionOpened",
                                         "OrderRequested", "OrderExecuted"}
    # The pending margin removal is the one order left, in both, as the chain holds it.
    assert list(mirror.w.e.orders) == list(fresh.e.orders) == [pending]
    o = mirror.w.e.orders[pending]
    assert (o.account, o.market_id, o.size_delta, o.margin_delta, o.reduce_only) == (longs[4].trader, BTC, 0, -5 * USDC, False)
    assert o == fresh.e.orders[pending]
    # Its deadline and escrow as the model derives them (P._load_order, from
    # the account's pending word) equal the chain's get_order, every field.
    on_chain = protocol.engine.get_order(pending)
    for w in (mirror.w, fresh):
        loaded = P._load_order(w, pending)
        assert all(getattr(loaded, f) == getattr(on_chain, f) for f in ORDER_FIELDS), (loaded, on_chain)
        assert P._pending_id(w, longs[4].trader, BTC) == pending
    assert on_chain.expires_at == on_chain.requested_at + protocol.engine.order_expiry()
    assert mirror.w.e.order_count == fresh.e.order_count == max(*closes, pending) + 1  # + m-late's order
    # When the TP/SL was set: the block of its TpSlSet event, from events and from a fresh load alike.
    (tp_sl_block,) = {c.block for c in changes if c.name == "TpSlSet" and c.account == longs[3].trader}
    assert mirror.w.e.tp_sl_at[(longs[3].trader, BTC)] == fresh.e.tp_sl_at[(longs[3].trader, BTC)] \
        == node.block_timestamp(tp_sl_block)
    assert mirror.w.e.positions == fresh.e.positions
    assert {k: sorted(v) for k, v in mirror.w.e.members.items() if v} == {k: sorted(v) for k, v in fresh.e.members.items() if v}
    assert mirror.w.e.state == fresh.e.state and mirror.w.now == fresh.now


@pytest.mark.parametrize("simulate_v1", [True, False], ids=["eth_simulateV1", "per-call fallback"])
def test_keeper__liquidated_first_by_someone_else__logs_a_race_and_sends_nothing(
        protocol, node, keeper, stranger, caplog, simulate_v1):
    engine = protocol.engine.address
    D.provide_liquidity(node, protocol, _t("lp"), 1_000_000 * USDC)
    traders = [_t(f"race-{i}") for i in range(3)]
    D.open_positions(node, protocol, [Spec(t, BTC, TENTH, 160 * USDC) for t in traders])
    D.set_price(node, protocol, BTC, 78_500, _t("oracle"))
    k = Keeper(R.Rpc(node.uri), engine, Signer(keeper, chain.chain_id))
    k._simulate_v1 = simulate_v1
    k.mirror.load(node.head())
    k.last_block = node.head()
    k._sync_nonce()
    nonce = k.nonce
    actions = k.plan()
    assert [a.kind for a in actions] == ["liquidate"] * 3

    for t in traders:  # a competing liquidator gets there first
        protocol.engine.liquidate(t, BTC, [], sender=stranger)
    with caplog.at_level(logging.INFO, logger="keeper"):
        k.execute(actions, node.head())
    assert k.stats["races"] == 3 and k.stats["unexpected"] == 0 and k.stats["sent"] == 0
    assert sum("race: simulated liquidate" in r.message and "position: none" in r.message for r in caplog.records) == 3
    assert int(node.rpc.request("eth_getTransactionCount", [keeper.address, "pending"]), 16) == nonce


class _HalfMarginMirror(Mirror):
    """A mirror that reads every position with half its margin: the model
    then sees liquidations the chain refuses."""

    def _read_positions(self, pairs, block):
        super()._read_positions(pairs, block)
        for key in pairs:
            if key in self.w.e.positions:
                self.w.e.positions[key].margin //= 2


def test_keeper__model_disagreeing_with_the_chain__trips_the_circuit_breaker_without_sending(protocol, node, keeper):
    engine = protocol.engine.address
    D.provide_liquidity(node, protocol, _t("lp"), 1_000_000 * USDC)
    traders = [_t(f"healthy-{i}") for i in range(2)]
    D.open_positions(node, protocol, [Spec(t, BTC, TENTH, 200 * USDC) for t in traders])
    D.set_price(node, protocol, BTC, 79_000, _t("oracle"))  # equity 100: healthy; the mirror sees 0
    k = Keeper(R.Rpc(node.uri), engine, Signer(keeper, chain.chain_id), breaker=2)
    k.mirror = _HalfMarginMirror(k.rpc, engine)
    nonce = int(node.rpc.request("eth_getTransactionCount", [keeper.address, "pending"]), 16)
    with pytest.raises(CircuitBreaker, match="model and chain disagree"):
        k.start()
        for _ in range(10):
            node.rpc.request("evm_mine", [])
            k.step(node.head())
    assert k.stats["sent"] == 0 and k.stats["races"] >= 2
    assert int(node.rpc.request("eth_getTransactionCount", [keeper.address, "pending"]), 16) == nonce


class _Stop(Exception):
    pass


def test_keeper__node_unreachable__backs_off_exponentially_up_to_30s(keeper, monkeypatch, caplog):
    k = Keeper(R.Rpc("http://127.0.0.1:9", timeout=0.5), "0x" + "11" * 20, Signer(keeper, 1), poll=0.1)
    sleeps = []

    def fake_sleep(seconds):
        sleeps.append(seconds)
        if len(sleeps) == 10:
            raise _Stop

    monkeypatch.setattr("bots.keeper.time.sleep", fake_sleep)
    with caplog.at_level(logging.WARNING, logger="keeper"), pytest.raises(_Stop):
        k.run()
    assert sleeps == [0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 30.0, 30.0]
    assert sum("rpc error" in r.message for r in caplog.records) == 10
