"""PerpExits.liquidate with positive equity: the maintenance boundary, the
penalty and keeper reward to the unit, stale prices, pause, a second call in
the same block, and self-liquidation. Every case runs on chain and model
(`twin`), and every step checks model == chain and token conservation.

Position used for the money tests: long 1.234567 BTC at 80,000 with 2,000
USDC margin, funding off, crashed to 78,750:
    upnl     = 1.234567 * (78,750 - 80,000)       = -1,543.208750 USDC
    equity   = 2,000 - 1,543.208750               =    456.791250
    notional = 1.234567 * 78,750                  = 97,222.151250
    maintenance 0.5% = ceil(486.11075625)         =    486.110757  > equity
"""

import pytest
from ape import chain

from model.fixed_point import Revert
from tests.unit.perp_exits.helpers import (
    BPS, BTC, USDC, WAD, assert_events_agree, balance, free, no_funding, ok, open_position, position,
    price, request_reverts, reverts, step,
)

SIZE = 1_234_567 * 10**12
MARGIN = 2_000 * USDC
UPNL = -1_543_208_750
EQUITY = 456_791_250
NOTIONAL = 97_222_151_250


def _open_and_crash(twin, owner, trader, liq_fee_bps=None):
    changes = {} if liq_fee_bps is None else {"liq_fee": liq_fee_bps * BPS}
    no_funding(twin, owner, **changes)
    open_position(twin, trader, SIZE, MARGIN)
    price(twin, owner, 78_750)
    assert twin.p.engine.equity(trader, BTC) == EQUITY
    assert twin.p.engine.is_liquidatable(trader, BTC)
    step(twin)


def test_liquidate__one_unit_above_or_at_maintenance__reverts_position_healthy(
        twin, owner, trader, other_trader, stranger, keeper):
    # Three identical longs (1 BTC at 80,000, 1,000 USDC margin); at 79,300:
    # equity = 1,000 - 700 = 300 USDC; maintenance = 0.5% * 79,300 = 396.5.
    no_funding(twin, owner)
    twin.fund(stranger, 10_000 * USDC)
    for who in (trader, other_trader, stranger):
        open_position(twin, who, WAD, 1_000 * USDC)
    price(twin, owner, 79_300)
    maintenance = 396_500_000
    for who, extra in ((trader, 96_500_001), (other_trader, 96_500_000), (stranger, 96_499_999)):
        assert twin.p.engine.equity(who, BTC) == 300_000_000
        ok(twin, who, "add_margin", BTC, extra)
    step(twin)
    assert twin.p.engine.equity(trader, BTC) == maintenance + 1
    assert twin.p.engine.equity(other_trader, BTC) == maintenance
    assert twin.p.engine.equity(stranger, BTC) == maintenance - 1
    assert [twin.p.engine.is_liquidatable(w, BTC) for w in (trader, other_trader, stranger)] == [False, False, True]

    reverts(twin, keeper, "liquidate", trader, BTC, [], reason="position healthy")
    reverts(twin, keeper, "liquidate", other_trader, BTC, [], reason="position healthy")
    step(twin)
    ok(twin, keeper, "liquidate", stranger, BTC, [])
    assert position(twin, stranger)[0] == 0
    assert position(twin, trader)[0] == WAD and position(twin, other_trader)[0] == WAD
    step(twin)


def test_liquidate__positive_equity__pays_penalty_and_keeper_share_to_the_unit(twin, owner, trader, keeper):
    # liq_fee 0.25%: penalty = ceil(97,222.151250 * 0.0025) = 243.055379 < equity,
    # keeper = floor(20% of it) = 48.611075, fund = 194.444304,
    # account keeps 456.791250 - 243.055379 = 213.735871, vault earns 1,543.208750.
    _open_and_crash(twin, owner, trader, liq_fee_bps=25)
    fund, vault = twin.p.insurance_fund, twin.p.vault
    before = (free(twin, trader), free(twin, keeper), balance(twin, fund), balance(twin, vault))
    n = len(twin.w.events)
    ok(twin, keeper, "liquidate", trader, BTC, [])
    after = (free(twin, trader), free(twin, keeper), balance(twin, fund), balance(twin, vault))
    assert [a - b for a, b in zip(after, before)] == [213_735_871, 48_611_075, 194_444_304, 1_543_208_750]
    (event,) = assert_events_agree(twin, "PositionLiquidated", n)
    assert event["size"] == SIZE and event["price"] == 78_750 * WAD
    assert (event["penalty"], event["keeper_reward"], event["bad_debt"]) == (243_055_379, 48_611_075, 0)
    assert assert_events_agree(twin, "InsuranceFundDrawn", n) == []
    assert position(twin, trader) == (0, 0, 0, 0, 0, 0)
    step(twin)


def test_liquidate__equity_below_penalty__penalty_capped_and_account_gets_nothing(twin, owner, trader, keeper):
    # Default liq_fee 0.5% = mmf: ceil(486.11075625) = 486.110757 > equity, so
    # penalty = equity = 456.791250; keeper = 91.358250; fund = 365.433000.
    _open_and_crash(twin, owner, trader)
    fund = twin.p.insurance_fund
    before = (free(twin, trader), free(twin, keeper), balance(twin, fund))
    n = len(twin.w.events)
    ok(twin, keeper, "liquidate", trader, BTC, [])
    after = (free(twin, trader), free(twin, keeper), balance(twin, fund))
    assert [a - b for a, b in zip(after, before)] == [0, 91_358_250, 365_433_000]
    (event,) = assert_events_agree(twin, "PositionLiquidated", n)
    assert (event["penalty"], event["keeper_reward"], event["bad_debt"]) == (EQUITY, 91_358_250, 0)
    step(twin)


def test_liquidate__by_the_account_itself__is_not_profitable(twin, owner, trader):
    # Self-liquidating returns 213.735871 + 48.611075 = 262.346946 of the
    # 456.791250 equity: the fund's 194.444304 is lost, nothing is gained.
    _open_and_crash(twin, owner, trader, liq_fee_bps=25)
    before = free(twin, trader)
    ok(twin, trader, "liquidate", trader, BTC, [])
    gained = free(twin, trader) - before
    assert gained == 262_346_946
    assert gained < EQUITY
    step(twin)


def test_liquidate__stale_price__reverts_and_a_fresh_one_liquidates(twin, owner, trader, other_trader, keeper):
    no_funding(twin, owner)
    open_position(twin, trader, WAD, 1_000 * USDC)
    open_position(twin, other_trader, WAD, 1_000 * USDC)
    price(twin, owner, 79_000)
    # max_price_age 3600: an answer exactly 3600 s old is still fresh.
    twin.advance(3_599)
    ok(twin, keeper, "liquidate", trader, BTC, [])
    reverts(twin, keeper, "liquidate", other_trader, BTC, [], reason="stale price")
    assert twin.p.engine.is_liquidatable(other_trader, BTC)
    step(twin)
    price(twin, owner, 79_000)
    ok(twin, keeper, "liquidate", other_trader, BTC, [])
    step(twin)


def test_liquidate__while_paused__still_liquidates(twin, owner, trader, keeper):
    _open_and_crash(twin, owner, trader, liq_fee_bps=25)
    ok(twin, keeper, "deposit", 2_000 * USDC)  # funds enough: the pause alone refuses the open
    ok(twin, owner, "pause")
    request_reverts(twin, keeper, WAD, 1_000 * USDC, 78_750 * WAD, "pausable: contract is paused")
    before = free(twin, keeper)
    ok(twin, keeper, "liquidate", trader, BTC, [])
    assert free(twin, keeper) - before == 48_611_075
    step(twin)


def test_liquidate__second_call_in_the_same_block__reverts_and_gains_nothing(twin, owner, trader, keeper, stranger):
    _open_and_crash(twin, owner, trader, liq_fee_bps=25)
    engine, web3 = twin.p.engine, chain.provider.web3
    keeper_before, stranger_before = free(twin, keeper), free(twin, stranger)
    t = twin._next_time()
    chain.provider.make_request("evm_setAutomine", [False])
    try:
        hashes = []
        for who in (keeper, stranger):
            txn = engine.liquidate.as_transaction(trader, BTC, [], sender=who, gas_limit=5_000_000)
            hashes.append(web3.eth.send_raw_transaction(who.sign_transaction(txn).serialize_transaction()))
        chain.provider.make_request("evm_mine", [t])
    finally:
        chain.provider.make_request("evm_setAutomine", [True])
    first, second = (web3.eth.get_transaction_receipt(h) for h in hashes)
    assert first.blockNumber == second.blockNumber
    assert (first.status, second.status) == (1, 0)
    # The model runs the same two calls at the same timestamp.
    twin.w.call(keeper.address, "liquidate", trader.address, BTC, [], now=t)
    with pytest.raises(Revert) as exc:
        twin.w.call(stranger.address, "liquidate", trader.address, BTC, [], now=t)
    assert exc.value.reason == "position: none"
    assert free(twin, keeper) - keeper_before == 48_611_075
    assert free(twin, stranger) - stranger_before == 0
    step(twin)
    reverts(twin, stranger, "liquidate", trader, BTC, [], reason="position: none")


def test_liquidate__no_position_or_unknown_market__reverts(twin, owner, trader, keeper):
    reverts(twin, keeper, "liquidate", trader, BTC, [], reason="position: none")
    reverts(twin, keeper, "liquidate", trader, 2, [], reason="market: unknown")
    step(twin)
