"""The keeper's operating rules, in process on the test's node: the gas-price
cap and the profitability check hold what only earns and never what
solvency needs (bankrupt liquidations); failed sends count toward the
circuit breaker; the JSON-RPC client fails over to a fallback endpoint."""

import logging
import time

import pytest
from ape import chain

from bots import devnet as D
from bots import rpc as R
from bots.devnet import USDC, WAD, Spec
from bots.keeper import Action, CircuitBreaker, Keeper, Signer
from scripts.governance import governed

BTC = 0
TENTH = WAD // 10
GWEI = 10**9


def _t(label):
    return D.trader_address(label)


@pytest.fixture
def due(protocol, node):
    """Two liquidations due at 78,500: a 50x long with equity left (it pays
    the keeper) and a 100x long past bankruptcy (bad debt, no reward)."""
    D.provide_liquidity(node, protocol, _t("lp"), 1_000_000 * USDC)
    earning, bankrupt = _t("ops-50x"), _t("ops-100x")
    D.open_positions(node, protocol, [Spec(earning, BTC, TENTH, 160 * USDC), Spec(bankrupt, BTC, TENTH, 80 * USDC)])
    D.set_price(node, protocol, BTC, 78_500, _t("oracle"))
    return earning, bankrupt


def _keeper(protocol, node, keeper, **kw):
    k = Keeper(R.Rpc(node.uri), protocol.engine.address, Signer(keeper, chain.chain_id), **kw)
    k.mirror.load(node.head())
    k.last_block = node.head()
    k._sync_nonce()
    k._observe(node.head())
    return k


def _pending_nonce(node, who):
    return int(node.rpc.request("eth_getTransactionCount", [who, "pending"]), 16)


def test_keeper__base_fee_above_the_cap__holds_the_earning_liquidation_sends_the_bankrupt_one(protocol, node, keeper,
                                                                                              due):
    earning, bankrupt = due
    k = _keeper(protocol, node, keeper, max_fee=5 * GWEI)
    actions = k.plan()
    assert {(a.account, a.always) for a in actions} == {(earning, False), (bankrupt, True)}
    assert [a.reward > 0 for a in actions if a.account == earning] == [True]
    k.base_fee = 6 * GWEI  # above the cap: only solvency work goes
    k.execute(actions, node.head())
    assert [e["desc"].split()[1] for e in k.in_flight.values()] == [bankrupt]
    assert k.in_flight[f"liquidate:{bankrupt}:0"]["max_fee"] == 2 * 6 * GWEI + k.tip  # not capped
    assert k.metrics.actions.labels("liquidate", "held_gas_cap")._value.get() == 1
    assert _pending_nonce(node, keeper.address) == k.nonce


def test_keeper__reward_below_gas_cost__held_unless_bankrupt_and_sent_when_the_check_is_off(protocol, node, keeper,
                                                                                           owner, due):
    earning, bankrupt = due
    # A native coin worth a million tokens: ~200k gas at 1 gwei costs 200 tokens, the reward is about 2.
    k = _keeper(protocol, node, keeper, native_price=1_000_000 * USDC)
    k.base_fee, k.tip = GWEI, 0
    actions = k.plan()
    k.simulate(actions, node.head())  # sets each action's gas
    assert all(a.gas_used > 100_000 for a in actions)
    sent = k._worth_sending(actions)
    assert [a.account for a in sent] == [bankrupt]
    assert k.metrics.actions.labels("liquidate", "held_unprofitable")._value.get() == 1
    k.min_profit_bps = 0  # --min-profit-ratio 0
    assert {a.account for a in k._worth_sending(actions)} == {earning, bankrupt}
    # The ETH-PERP feed prices the native coin when no price is given: 3,000 tokens.
    k.native_price, k.native_market = None, 1
    assert k.native_units() == 3_000 * USDC
    # The engine's keeper floor (set_keeper_reward) is part of the reward:
    # the mirror reads it, so the bankrupt liquidation, which pays nothing
    # of its own, is worth the floor's 5 tokens (sepolia's setting).
    governed(protocol.timelock, protocol.engine, "set_keeper_reward", 5 * USDC, 10_000 * USDC, sender=owner)
    k = _keeper(protocol, node, keeper)
    assert k.mirror.w.e.min_keeper_reward == 5 * USDC
    assert {a.account: a.reward for a in k.plan()}[bankrupt] == 5 * USDC


def test_keeper__sends_refused_for_lack_of_funds__trip_the_breaker_nothing_mined(protocol, node, keeper, due):
    k = _keeper(protocol, node, keeper, breaker=2)
    node.rpc.request("anvil_setBalance", [keeper.address, "0x1"])  # undone by the test's snapshot
    nonce = _pending_nonce(node, keeper.address)
    actions = k.plan()
    assert len(actions) == 2
    k.tip = GWEI
    with pytest.raises(CircuitBreaker, match="send liquidate .* failed"):
        k.execute(actions, node.head())
    assert k.stats["unexpected"] == 2 and k.stats["sent"] == 0 and k.in_flight == {}
    assert _pending_nonce(node, keeper.address) == nonce == k.nonce


def test_rpc__primary_unreachable__the_fallback_answers_and_stays_current(node):
    switches = []
    rpc = R.Rpc(["http://127.0.0.1:9", node.uri], timeout=2, on_failover=lambda old, new, err: switches.append(new))
    assert int(rpc.request("eth_blockNumber", []), 16) == node.head()
    assert rpc.url == node.uri and switches == [node.uri]
    rpc.request("eth_chainId", [])
    assert switches == [node.uri]  # no switch back and forth
    with pytest.raises(R.RpcError, match="127.0.0.1:9"):
        R.Rpc(["http://127.0.0.1:9", "http://127.0.0.1:10"], timeout=2).request("eth_blockNumber", [])


def test_keeper__reorganised_chain__detected_at_the_next_block_and_reloaded(protocol, node, keeper, due):
    """The block the keeper processed is replaced by another at the same
    height (a snapshot reverted, then a different block mined there: what a
    reorganisation looks like to a client): at the next step its hash
    differs; the keeper drops what was in flight and reloads from the new
    head, which still holds the liquidations due."""
    from bots.keeper import ChainChanged

    k = _keeper(protocol, node, keeper)
    fork = node.rpc.request("evm_snapshot", [])
    node.rpc.request("evm_mine", [])
    k.step(node.head())
    processed, seen = k.last_block, k.mirror.block_hash
    assert len(k.in_flight) == 2  # the two liquidations due, sent
    # anvil answers a send before it mines it: wait until both are in blocks,
    # or they land after the revert below, on top of the replacement block.
    deadline = time.time() + 30
    while int(node.rpc.request("eth_getTransactionCount", [keeper.address, "latest"]), 16) < k.nonce:
        assert time.time() < deadline, "the keeper's liquidations were never mined"
        time.sleep(0.05)
    node.rpc.request("evm_revert", [fork])
    # Another block at the height processed: a later timestamp makes its hash differ.
    stamp = int(node.rpc.request("eth_getBlockByNumber", [hex(processed - 1), False])["timestamp"], 16)
    node.rpc.request("evm_mine", [stamp + 977])
    assert node.head() == processed
    assert node.rpc.request("eth_getBlockByNumber", [hex(processed), False])["hash"] != seen
    node.rpc.request("evm_mine", [])
    with pytest.raises(ChainChanged, match=f"block {processed} is not the one processed"):
        k.step(node.head())
    k._recover(ChainChanged("test"))
    assert k.last_block is None and k.in_flight == {} and k.stats["resets"] == 1
    k.dry_run = True
    k.start()
    assert k.last_block == node.head() and len(k.plan()) == 2


def test_keeper__lp_epoch__waits_for_a_later_round_on_every_feed_then_settles_and_counts_the_fee(protocol, node, keeper,
                                                                                               owner, caplog):
    """Issue 12's keeper part: an LP's deposit request waits (nothing sent,
    a log line, a metric) until every market's feed has a round later than
    it; a settle forced before then reverts 'vault: no later round' in the
    simulation and is dropped as a wait, not an error; after the round the
    keeper settles the epoch, is paid the settler fee, and counts it."""
    vault, token = protocol.vault, protocol.token
    fee = 10 * USDC  # MAX_SETTLE_FEE_TOKENS: the cap
    governed(protocol.timelock, vault, "set_settle_fee", fee, sender=owner)
    start_balance = token.balanceOf(keeper)
    lp = _t("lp-epoch")
    requested_at = D.request_deposit(node, protocol, lp, 10_000 * USDC)
    # A native coin at 3,000 tokens: settle's ~150k gas at a few gwei costs
    # about 1 token, the fee pays it.
    k = _keeper(protocol, node, keeper, native_price=3_000 * USDC)
    caplog.set_level(logging.INFO, logger="keeper")
    assert k.plan() == []  # the open epoch's request has no later round: not even the close is sent
    assert k.stats["settle_waits"] == 1 and k.metrics.actions.labels("settle", "wait")._value.get() == 1
    assert "LP epoch 1 waits (vault: no later round)" in caplog.text
    assert k.metrics.lp_wait._value.get() >= 1  # seconds since the request, at the next block's time

    node.send_as([(lp, vault.address, R.encode_settle())])  # someone closes it: it waits as the closing epoch
    assert (vault.closing(), vault.epoch()) == (1, 2)
    k.step(node.head())
    assert (k.mirror.w.v.closing, k.mirror.w.v.epoch) == (1, 2) and k.in_flight == {}
    nonce = _pending_nonce(node, keeper.address)
    forced = Action("settle", None, -1, to=vault.address, tag="epoch 1", reward=fee)
    k.execute([forced], node.head())  # sent anyway: the node's simulation reverts, a wait
    assert k.in_flight == {} and k.stats["unexpected"] == 0 and k.stats["races"] == 0
    assert _pending_nonce(node, keeper.address) == nonce == k.nonce  # nothing sent
    assert token.balanceOf(keeper) == start_balance

    D.later_round(node, protocol, range(len(protocol.feeds)), _t("oracle"), requested_at)
    k.step(node.head())  # planned, simulated, worth its gas, sent (and mined: automine)
    assert list(k.in_flight) == ["settle"] and k.in_flight["settle"]["to"] == vault.address
    assert k.in_flight["settle"]["reward"] == fee  # the model's settle: the fee, from the epoch's deposit
    node.rpc.request("evm_mine", [])
    k.step(node.head())
    assert k.in_flight == {} and k.stats["mined"] == 1 and k.stats["unexpected"] == 0
    assert 250_000 < k.stats["gas_used"] < 450_000  # the settle, two markets: docs/keeper.md's figure
    assert vault.get_epoch(1).settled_at > requested_at and vault.closing() == 0
    assert token.balanceOf(keeper) - start_balance == fee == k.stats["rewards_units"]
    assert k.metrics.rewards.labels("settle")._value.get() == fee / USDC
    assert k.metrics.actions.labels("settle", "mined")._value.get() == 1
    assert k.metrics.lp_wait._value.get() == 0 and k.plan() == []  # nothing left to settle
    # A new request, then every feed goes stale: the next epoch waits for a
    # fresh round (not "no later round": staleness is checked first).
    D.request_deposit(node, protocol, lp, 1_000 * USDC)
    node.rpc.request("evm_increaseTime", [max(p.max_price_age for p in k.mirror.w.e.params.values()) + 1])
    node.rpc.request("evm_mine", [])
    k.step(node.head())
    assert "LP epoch 2 waits (vault: stale price)" in caplog.text and k.in_flight == {}
    assert k.metrics.actions.labels("settle", "wait")._value.get() == 2
    # The profitability rule holds it as any earning action: at a native
    # price of 10**9 tokens its gas costs more than the fee.
    forced.gas_used = 100_000
    k.native_price = 10**9 * USDC
    assert k._worth_sending([forced]) == []
    assert k.metrics.actions.labels("settle", "held_unprofitable")._value.get() == 1
