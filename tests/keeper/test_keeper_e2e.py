"""The keeper end to end: `python -m bots.keeper` as a separate process
against the test's anvil, mining on a one-second interval, while a scripted
price path moves the oracles. Everything asserted is read back from the
chain: events, receipts and views at the price-update block.
"""

import time

from eth_abi import decode
from eth_utils import to_checksum_address

from bots import devnet as D
from bots import rpc as R
from bots.devnet import USDC, WAD, Spec
from scripts.governance import governed
from tests.keeper.conftest import liquidatable_at, position_at, view

BTC, ETH = 0, 1
TENTH = WAD // 10

SELECTORS = {
    R.selector("liquidate(address,uint256,address[])").hex(): "liquidate",
    R.selector("deleverage(uint256,address[])").hex(): "deleverage",
    R.selector("execute_tp_sl(address,uint256)").hex(): "tp_sl",
    R.selector("execute_order(uint256)").hex(): "order",
}


def _t(label):
    return D.trader_address(label)


def _price(usd):
    return usd * WAD


def _events(node, engine, topic0, from_block, to_block="latest"):
    """[(account, market_id, block, log_index, data)] of an (account, market)-indexed event."""
    return [
        (to_checksum_address("0x" + lg["topics"][1][-40:]), int(lg["topics"][2], 16), int(lg["blockNumber"], 16),
         int(lg["logIndex"], 16), lg["data"])
        for lg in node.logs(engine, topic0, from_block, to_block)
    ]


def _due_at(node, protocol, book, block, market_id, price):
    """What the keeper owes after a price update mined in `block`: every open
    position of the moved market that is liquidatable there, and every one
    whose TP or SL is crossed (and is not liquidatable)."""
    engine = protocol.engine.address
    due = {}
    for trader, mid in book:
        if mid != market_id:
            continue
        size, _, _, _, tp, sl = position_at(node, engine, trader, mid, block)
        if size == 0:
            continue
        if liquidatable_at(node, engine, trader, mid, block):
            due[(trader, mid)] = "liquidate"
        elif size > 0 and ((tp and price >= tp) or (sl and price <= sl)):
            due[(trader, mid)] = "tp_sl"
        elif size < 0 and ((tp and price <= tp) or (sl and price >= sl)):
            due[(trader, mid)] = "tp_sl"
    return due


def _keeper_txs(node, keeper, from_block, to_block):
    """[(kind, block, status)] of every transaction the keeper sent."""
    out = []
    sender = keeper.address.lower()
    blocks = node.rpc.batch([("eth_getBlockByNumber", [hex(n), True]) for n in range(from_block, to_block + 1)])
    txs = [(tx, int(b["number"], 16)) for b in blocks for tx in b["transactions"] if tx["from"].lower() == sender]
    receipts = node.receipts([tx["hash"] for tx, _ in txs])
    for (tx, n), rc in zip(txs, receipts):
        out.append((SELECTORS.get(tx["input"][2:10], "other"), n, int(rc["status"], 16)))
    return out


def _book():
    """The traders of the price-path scenario (market 0 BTC at 80,000, market 1 ETH at 3,000)."""
    specs = []
    specs += [Spec(_t(f"long100x-{i}"), BTC, TENTH, 80 * USDC) for i in range(4)]  # liq ~79,598
    specs += [Spec(_t(f"long50x-{i}"), BTC, TENTH, 160 * USDC) for i in range(8)]  # liq ~78,793
    specs += [Spec(_t(f"long25x-{i}"), BTC, TENTH, 320 * USDC) for i in range(8)]  # liq ~77,186
    specs += [Spec(_t(f"long10x-{i}"), BTC, TENTH, 800 * USDC) for i in range(6)]  # bankrupt below 72,000
    specs += [Spec(_t(f"long-tp-{i}"), BTC, TENTH, 800 * USDC, take_profit=_price(83_000)) for i in range(4)]
    specs += [Spec(_t(f"long-sl-{i}"), BTC, TENTH, 800 * USDC, stop_loss=_price(79_000)) for i in range(4)]
    specs += [Spec(_t("whale"), BTC, 4 * WAD, 32_000 * USDC)]  # 10x, 4 BTC: bad debt ~4,000 at 71,000
    specs += [Spec(_t(f"short20x-{i}"), BTC, -TENTH, 400 * USDC) for i in range(4)]  # liq ~83,582
    specs += [Spec(_t(f"short-tp-{i}"), BTC, -TENTH, 1_600 * USDC, take_profit=_price(78_000)) for i in range(4)]
    specs += [Spec(_t(f"short-sl-{i}"), BTC, -TENTH, 1_600 * USDC, stop_loss=_price(82_000)) for i in range(4)]
    # ADL targets: 5x shorts, each margin different so every score differs.
    specs += [Spec(_t(f"short5x-{i}"), BTC, -TENTH, (1_600 + 10 * i) * USDC) for i in range(40)]
    specs += [Spec(_t(f"eth-long50x-{i}"), ETH, WAD, 60 * USDC) for i in range(4)]  # liq ~2,955
    specs += [Spec(_t(f"eth-short5x-{i}"), ETH, -WAD, 600 * USDC) for i in range(4)]
    return specs


def test_keeper__price_path_with_a_crash__liquidates_each_position_once_within_two_blocks(
        protocol, node, run_keeper, keeper):
    engine = protocol.engine.address
    pricer = _t("oracle-updater")
    D.provide_liquidity(node, protocol, _t("lp"), 20_000_000 * USDC)
    specs = _book()
    D.open_positions(node, protocol, specs)
    book = [(s.trader, s.market_id) for s in specs]
    start = node.head()
    k = run_keeper()

    path = [
        (BTC, 81_000, False),
        (BTC, 82_100, False),  # short stop-losses at 82,000
        (BTC, 83_100, False),  # long take-profits at 83,000
        (BTC, 83_700, False),  # 20x shorts
        (ETH, 2_945, False),  # 50x ETH longs
        (BTC, 80_000, False),
        (BTC, 79_400, False),  # 100x longs
        (BTC, 78_700, True),  # 50x longs and long stop-losses; the keeper is SIGKILLed mid-batch
        (BTC, 77_000, False),  # 25x longs, short take-profits
        (BTC, 71_000, False),  # gap through the 10x longs' bankruptcy: fund drained, ADL
    ]
    steps = []
    with node.interval_mining(1):
        for mid, usd, crash in path:
            sent_before = k.text().count(" sent ")
            block = D.set_price(node, protocol, mid, usd, pricer)
            due = _due_at(node, protocol, book, block, mid, _price(usd))
            steps.append((block, due, crash))
            if crash:
                k.wait_for(" sent ", timeout=10, count=sent_before + 1)
                k.kill()
                # Hold the blocks while the keeper restarts: what the dead
                # one sent is still pending, and must not be sent again.
                node.interval(0)
                k = run_keeper()
                time.sleep(1)
                node.interval(1)
                node.wait_for_block(node.head() + 3)
            else:
                node.wait_for_block(block + 3)
        node.wait_for_block(node.head() + 2)
    end = node.head()

    liquidations = _events(node, engine, D.LIQUIDATED, start, end)
    executions = _events(node, engine, D.TP_SL_EXECUTED, start, end)
    liquidated = {}
    for a, mid, blk, _, _ in liquidations:
        liquidated.setdefault((a, mid), []).append(blk)
    executed = {}
    for a, mid, blk, _, _ in executions:
        executed.setdefault((a, mid), []).append(blk)

    # Every position due was handled: within two blocks of its price
    # update, except across the crash, where only "eventually" can hold.
    for block, due, crash in steps:
        for pos, kind in due.items():
            seen = (liquidated if kind == "liquidate" else executed).get(pos)
            assert seen, f"{kind} of {pos} due at block {block} never happened"
            if not crash:
                assert block < seen[0] <= block + 2, f"{kind} of {pos}: price at {block}, mined at {seen[0]}"
    due_liq = {p for _, due, _ in steps for p, kind in due.items() if kind == "liquidate"}
    due_tp = {p for _, due, _ in steps for p, kind in due.items() if kind == "tp_sl"}
    assert set(liquidated) == due_liq and set(executed) == due_tp
    assert len(due_liq) == 4 + 4 + 4 + 8 + 8 + 6 + 1 and len(due_tp) == 4 + 4 + 4 + 4

    # Once each, and every keeper transaction succeeded: nothing was sent
    # twice, not even across the SIGKILL.
    assert all(len(b) == 1 for b in liquidated.values()), {p: b for p, b in liquidated.items() if len(b) > 1}
    assert all(len(b) == 1 for b in executed.values())
    txs = _keeper_txs(node, keeper, start, end)
    assert [t for t in txs if t[2] != 1] == []
    assert {kind for kind, _, _ in txs} == {"liquidate", "tp_sl", "deleverage"}
    assert sum(1 for kind, _, _ in txs if kind == "liquidate") == len(liquidations)
    assert sum(1 for kind, _, _ in txs if kind == "tp_sl") == len(executions)

    # The restart found the crashed run's state: last block and in-flight.
    restart = [line for line in k.text().splitlines() if "restart: last processed block" in line]
    assert len(restart) == 1 and int(restart[0].split(", ")[1].split()[0]) >= 1

    # ADL: the gap emptied the insurance fund, then deleveraged shorts; the
    # whale needed more than one call's 20 targets, and the keeper finished it.
    adl_block = steps[-1][0]
    drawn = node.logs(engine, D.FUND_DRAWN, adl_block, end)
    adls = node.logs(engine, D.AUTO_DELEVERAGED, adl_block, end)
    assert adls and drawn
    first_adl = min((int(x["blockNumber"], 16), int(x["logIndex"], 16)) for x in adls)
    before = [x for x in drawn if (int(x["blockNumber"], 16), int(x["logIndex"], 16)) < first_adl]
    _, remaining = decode(["uint256", "uint256"], bytes.fromhex(before[-1]["data"][2:]))
    assert remaining == 0
    assert node.logs(engine, D.DELEVERAGE_PENDING, adl_block, end)
    assert any(kind == "deleverage" for kind, _, _ in txs)
    pending = view(node, engine, "adl_pending(uint256)", ["uint256"], [BTC], [f"({','.join(R.ADL_PENDING)})"], end)[0]
    assert pending[0] == 0


def test_keeper__seed_scenarios__take_profit_at_84000_and_stop_at_78000_beat_liquidation(protocol, node, run_keeper):
    """Long 1 BTC from 80,000 with TP 84,000; long 1 BTC from 80,000 whose
    liquidation price is 75,000 with SL 78,000, beside the same position
    without a stop."""
    engine = protocol.engine.address
    pricer = _t("oracle-updater")
    tp_trader, sl_trader, no_stop = _t("seed-tp"), _t("seed-sl"), _t("seed-no-stop")
    D.provide_liquidity(node, protocol, _t("lp"), 5_000_000 * USDC)
    opened = D.open_positions(node, protocol, [
        Spec(tp_trader, BTC, WAD, 8_000 * USDC, take_profit=_price(84_000)),
        Spec(sl_trader, BTC, WAD, 5_375 * USDC, stop_loss=_price(78_000)),
        Spec(no_stop, BTC, WAD, 5_375 * USDC),
    ])
    # At its opening block, before any funding accrues: blocks are mined at
    # wall-clock times, so a later block may be a second later, and with only
    # longs open the funding rate is not zero.
    assert protocol.engine.liquidation_price(sl_trader, BTC, block_id=opened[(sl_trader, BTC)]) == _price(75_000)
    start = node.head()
    run_keeper()
    blocks = {}
    with node.interval_mining(1):
        for usd in (82_000, 84_000, 80_000, 77_900, 74_900):
            blocks[usd] = D.set_price(node, protocol, BTC, usd, pricer)
            node.wait_for_block(blocks[usd] + 3)
    end = node.head()

    closed = {a: (blk, data) for a, _, blk, _, data in _events(node, engine, R.topic(
        "PositionClosed(address,uint256,int256,uint256,int256,uint256,int256,uint256)"), start, end)}
    executed = {a: blk for a, _, blk, _, _ in _events(node, engine, D.TP_SL_EXECUTED, start, end)}
    liquidated = {a: blk for a, _, blk, _, _ in _events(node, engine, D.LIQUIDATED, start, end)}

    # TP: executed once the oracle reached 84,000, paying the profit less fees.
    assert blocks[84_000] < executed[tp_trader] <= blocks[84_000] + 2
    size_closed, price, pnl, fee, funding_paid, payout = decode(
        ["int256", "uint256", "int256", "uint256", "int256", "uint256"], bytes.fromhex(closed[tp_trader][1][2:]))
    assert (size_closed, price, pnl) == (WAD, _price(84_000), 4_000 * USDC)
    assert fee == 84_000 * USDC * 5 // 10_000
    execution_fee = protocol.params[BTC].execution_fee
    assert payout == 8_000 * USDC - funding_paid + pnl - fee - execution_fee

    # SL: the stop fires at 77,900, before the liquidation price is reached;
    # the same position without a stop is liquidated at 74,900.
    assert blocks[77_900] < executed[sl_trader] <= blocks[77_900] + 2
    assert sl_trader not in liquidated
    assert blocks[74_900] < liquidated[no_stop] <= blocks[74_900] + 2
    kept_with_stop = protocol.engine.free_collateral(sl_trader)
    kept_without = protocol.engine.free_collateral(no_stop)
    assert kept_with_stop > kept_without + 3_000 * USDC


def test_keeper__200_positions_liquidatable_at_once__each_within_two_blocks_in_one_batch(
        protocol, node, keeper, keeper_account, tmp_path):
    result = D.blocks_to_liquidation(protocol, 200, node_uri=node.uri, keeper_account=keeper_account, work_dir=tmp_path)
    print(f"blocks to liquidation, 200 positions: {result['histogram']}")
    assert result["missed"] == 0
    assert result["max"] <= 2, result["histogram"]
    assert sum(result["histogram"].values()) == 200
    # Batched: 200 transactions, none sent twice while an earlier one waited
    # for its block, none failed.
    txs = _keeper_txs(node, keeper, result["price_block"], node.head())
    assert [kind for kind, _, _ in txs] == ["liquidate"] * 200
    assert all(status == 1 for _, _, status in txs)


def test_keeper__dry_run__simulates_and_sends_nothing(protocol, node, run_keeper, keeper):
    engine = protocol.engine.address
    D.provide_liquidity(node, protocol, _t("lp"), 1_000_000 * USDC)
    traders = [_t(f"dry-{i}") for i in range(3)]
    D.open_positions(node, protocol, [Spec(t, BTC, TENTH, 160 * USDC) for t in traders])
    nonce = node.rpc.request("eth_getTransactionCount", [keeper.address, "latest"])
    k = run_keeper("--dry-run")
    block = D.set_price(node, protocol, BTC, 78_500, _t("oracle-updater"))
    k.wait_for("dry run: would send liquidate", count=3, timeout=20)
    node.rpc.request("evm_mine", [])  # more blocks for the keeper to (not) act on
    node.rpc.request("evm_mine", [])
    k.wait_for(f"block {node.head()}: 3 due", timeout=20)
    assert node.rpc.request("eth_getTransactionCount", [keeper.address, "latest"]) == nonce
    assert all(liquidatable_at(node, engine, t, BTC, node.head()) for t in traders)
    assert " sent " not in k.text()


def test_keeper__blocks_too_small_for_the_batch__sends_each_liquidation_once(protocol, node, run_keeper, keeper):
    """With room for about four liquidations a block, a batch of 20 stays in
    flight for several blocks: the keeper must wait for it, not resend."""
    engine = protocol.engine.address
    D.provide_liquidity(node, protocol, _t("lp"), 1_000_000 * USDC)
    traders = [_t(f"full-{i}") for i in range(20)]
    D.open_positions(node, protocol, [Spec(t, BTC, TENTH, 160 * USDC) for t in traders])
    run_keeper()
    start = node.head()
    gas_limit = int(node.rpc.request("eth_getBlockByNumber", ["latest", False])["gasLimit"], 16)
    # Room for about four liquidations a block (~137k gas each, bench/gas-snapshot.json).
    node.rpc.request("evm_setBlockGasLimit", [hex(600_000)])
    try:
        with node.interval_mining(1):
            block = D.set_price(node, protocol, BTC, 78_500, _t("oracle-updater"))
            deadline = block + 15
            while len(D.liquidation_blocks(node, engine, block)) < 20 and node.head() < deadline:
                node.wait_for_block(node.head() + 1)
            node.wait_for_block(node.head() + 2)
    finally:
        node.rpc.request("evm_setBlockGasLimit", [hex(gas_limit)])
    end = node.head()
    got = D.liquidation_blocks(node, engine, block, end)
    assert sorted(a for a, _ in got) == sorted(traders) and all(len(b) == 1 for b in got.values())
    assert len({b[0] for b in got.values()}) >= 4  # really spread over blocks
    txs = _keeper_txs(node, keeper, start, end)
    assert [kind for kind, _, _ in txs] == ["liquidate"] * 20
    assert all(status == 1 for _, _, status in txs)


def test_keeper__orders__each_executed_in_the_first_block_after_the_later_round(protocol, node, keeper, keeper_account,
                                                                                 tmp_path):
    """40 traders request a long while the keeper runs (1 s blocks); none is
    executed before a round later than its request; every one is executed
    in the block right after that round, by the keeper."""
    result = D.blocks_to_execution(protocol, 40, node_uri=node.uri, keeper_account=keeper_account, work_dir=tmp_path)
    assert result["before_round"] == 0
    assert result["round_block"] > max(result["request_blocks"])
    assert result["histogram"] == {1: 40} and result["missed"] == 0 and result["cancelled"] == {}
    txs = _keeper_txs(node, keeper, result["round_block"], node.head())
    assert [kind for kind, _, _ in txs] == ["order"] * 40
    assert all(status == 1 and blk == result["round_block"] + 1 for _, blk, status in txs)


def test_keeper__orders__failed_check_cancelled_by_execution_expired_one_logged_and_left(
        protocol, node, run_keeper, keeper, owner):
    """Three traders, one order each (one pending order per account and
    market). The first is requested under a 60 s expiry, which the owner
    then puts back to the default: that order keeps its own 60 s deadline
    (set_order_expiry applies to later orders only), and the keeper, which
    reads each order's deadline, logs it expired and leaves it to its
    requester instead of sending an execution that reverts. The two orders
    requested under the default expiry are executed in the first block after
    the later round: one fills, the other is cancelled with the failed
    check's reason; the keeper is paid the execution fee for both."""
    engine = protocol.engine.address
    fee = protocol.params[BTC].execution_fee
    default_expiry = protocol.engine.order_expiry()
    assert default_expiry > 120
    D.provide_liquidity(node, protocol, _t("lp"), 1_000_000 * USDC)
    fills, too_tight, late = _t("order-fills"), _t("order-too-tight"), _t("order-late")
    specs = [Spec(t, BTC, TENTH, 400 * USDC) for t in (fills, too_tight, late)]
    node.set_balances([s.trader for s in specs])
    node.send_as([tx for s in specs for tx in D.funding_txs(protocol, s)])
    free_before = protocol.engine.free_collateral(keeper)
    k = run_keeper()

    # An order nobody can execute before it expires: its deadline is 60 s
    # after the request, and no round comes for 61 s.
    governed(protocol.timelock, protocol.engine, "set_order_expiry", 60, sender=owner)
    late_free = protocol.engine.free_collateral(late)
    (late_id,), late_at, _ = D.request_orders(node, protocol, [specs[2]], fund=False)
    late_escrow = late_free - protocol.engine.free_collateral(late)
    governed(protocol.timelock, protocol.engine, "set_order_expiry", default_expiry, sender=owner)
    assert protocol.engine.get_order(late_id).expires_at == late_at + 60  # not moved by the new expiry
    node.rpc.request("evm_increaseTime", [61])
    # A buy that accepts 81,000 and one that accepts only 79,000, at 80,000.
    ids = []
    for s, bound in ((specs[0], 81_000 * WAD), (specs[1], 79_000 * WAD)):
        (oid,), requested_at, _ = D.request_orders(node, protocol, [s], price_bound=bound, fund=False)
        assert protocol.engine.get_order(oid).expires_at == requested_at + default_expiry
        ids.append(oid)
    fills_id, tight_id = ids
    with node.interval_mining(1):
        round_block = D.later_round(node, protocol, [BTC], _t("oracle-updater"), requested_at)
        while not {fills_id, tight_id} <= set(D.order_blocks(node, engine, round_block)) and node.head() < round_block + 10:
            node.wait_for_block(node.head() + 1)
        node.wait_for_block(node.head() + 2)
    k.wait_for(f"order {late_id} ", timeout=10)
    end = node.head()

    got = D.order_blocks(node, engine, round_block, end)
    assert got[fills_id] == (round_block + 1, "executed", 80_000 * WAD)
    assert got[tight_id] == (round_block + 1, "cancelled", "position: price above acceptable")
    assert late_id not in got  # expired: the keeper leaves the cancel to the requester
    assert f"order {late_id} ({late} market=0) expired unexecuted at {late_at + 60}" in k.text()
    assert "unexpected revert" not in k.text() and f"execute_order {late_id} " not in k.text()
    assert protocol.engine.get_order(late_id).account == late
    txs = _keeper_txs(node, keeper, round_block, end)
    assert sorted((kind, blk, status) for kind, blk, status in txs) == [("order", round_block + 1, 1)] * 2
    # Paid the execution fee for both outcomes, executed and cancelled.
    assert protocol.engine.free_collateral(keeper) == free_before + 2 * fee
    assert late_at + 60 < node.block_timestamp(round_block) < late_at + default_expiry
    # The expired order still holds its requester's slot in the market
    # until he cancels it (full refund, execution fee included).
    assert protocol.engine.pending_order(late, BTC) == late_id
    assert late_escrow == protocol.engine.get_order(late_id).escrow > 400 * USDC + fee  # margin, execution and trading fees
    (rc,) = node.send_as([(late, engine, R.calldata("cancel_order(uint256)", ["uint256"], [late_id]))])
    assert D.order_outcomes([rc]) == {late_id: ("cancelled", "order: expired")}
    assert protocol.engine.pending_order(late, BTC) == 0
    assert protocol.engine.free_collateral(late) == late_free
