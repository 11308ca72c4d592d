"""The ADL and keeper findings of the review (issue 14), replayed against the
real contracts and the model side by side: the shield, the unpaid keeper,
the dust side-blocker, the bankrupt account trading while its ADL is
pending, and the penalty dodge (a decision, pinned). docs/liquidation.md
states each bound. Funding is off in every test; BTC at 80,000. The
devnet deploys with the keeper's floor off; the tests that need it set a
floor of 1 USDC and a minimum notional of 2,000 USDC (5 bps of it pays the
floor), as `_floor_on` does.
"""

from tests.unit.perp_exits.helpers import (
    BTC, USDC, WAD, assert_events_agree, balance, cancelled, close, free, no_funding, ok, open_position,
    position, price, reverts, step,
)


def _floor_on(twin, owner):
    ok(twin, owner, "set_keeper_reward", 1 * USDC, 2_000 * USDC)
    assert twin.p.engine.min_keeper_reward() == 1 * USDC


def _drain_fund(twin, owner):
    """The insurance fund to 0 (its floor is 0): ADL is next in line."""
    bal = balance(twin, twin.p.insurance_fund)
    if bal:
        ok(twin, owner, "fund.withdraw_surplus", owner, bal)
    assert balance(twin, twin.p.insurance_fund) == 0


def test_adl_shield__a_low_equity_short_ranked_first__the_whale_still_pays(
        twin, owner, trader, other_trader, stranger, keeper):
    """Finding 1. A bankrupt long B (10 BTC at 80,000, 16,000 margin) owes
    24,000 at 76,000. The whale W (short 10 BTC at 80,000, 200,000 margin)
    would cover it. An attacker's 100x shield S (short 10 BTC at 77,000,
    7,700 margin) ranks first (score 1.31 vs W's 0.002), and its haircut is
    capped at its closed part's equity, 17,700. Before, S used up the whole
    bankrupt size: W paid nothing and 6,300 was socialized to LPs. Now S
    consumes only floor(17,700 * 10 / 24,000) = 7.375 BTC of it, and W pays
    the other 6,300 on the remaining 2.625 BTC: nothing is socialized."""
    e = twin.p.engine
    no_funding(twin, owner)
    twin.fund(stranger, 1_000_000 * USDC)
    open_position(twin, trader, 10 * WAD, 16_000 * USDC)  # B
    open_position(twin, other_trader, -10 * WAD, 200_000 * USDC)  # W
    price(twin, owner, 77_000)
    open_position(twin, stranger, -10 * WAD, 7_700 * USDC)  # S, the shield
    price(twin, owner, 76_000)
    _drain_fund(twin, owner)
    assert e.equity(trader, BTC) == -24_000 * USDC
    assert list(e.adl_ranking(trader, BTC)) == [stranger.address, other_trader.address]
    n = len(twin.w.events)
    ok(twin, keeper, "liquidate", trader, BTC, [stranger, other_trader])
    fills = assert_events_agree(twin, "AutoDeleveraged", n)
    s, w = fills
    assert (s["target"], s["size"], s["haircut"]) == (stranger.address.lower(), -10 * WAD, 17_700 * USDC)
    assert (w["target"], w["size"], w["haircut"]) == (other_trader.address.lower(), -2_625 * 10**15, 6_300 * USDC)
    assert assert_events_agree(twin, "BadDebtSocialized", n) == []
    assert position(twin, other_trader)[0] == -7_375 * 10**15
    step(twin)


def test_keeper_floor__bankrupt_liquidation_and_deleverage__the_caller_is_paid(
        twin, owner, trader, other_trader, keeper, crowd):
    """Finding 2. A bankrupt liquidation paid its caller 0 (no penalty from
    negative equity), and so did every deleverage. Now each pays at least
    the floor, 1 USDC: from the fund while it has it, else from the vault's
    free cash, which then joins the deficit ADL collects."""
    e = twin.p.engine
    no_funding(twin, owner)
    _floor_on(twin, owner)
    open_position(twin, trader, WAD, 1_000 * USDC)  # bankrupt below 79,000
    for who in crowd[:2]:
        twin.fund(who, 100_000 * USDC, spenders=[e])
        open_position(twin, who, -WAD, 10_000 * USDC)
    price(twin, owner, 78_000)  # the long owes 1,000 more than its margin
    # the fund pays the floor first, then what it can of the debt
    fund0 = balance(twin, twin.p.insurance_fund)
    assert 0 < fund0 < 1_000 * USDC  # its share of the opening fees
    before = free(twin, keeper)
    n = len(twin.w.events)
    ok(twin, keeper, "liquidate", trader, BTC, list(e.adl_ranking(trader, BTC)))
    (paid,) = assert_events_agree(twin, "KeeperPaid", n)
    assert (paid["from_fund"], paid["from_vault"]) == (1 * USDC, 0)
    assert free(twin, keeper) - before == 1 * USDC
    (drawn,) = assert_events_agree(twin, "InsuranceFundDrawn", n)
    assert drawn["amount"] == fund0 - 1 * USDC  # the rest of the fund covers debt
    step(twin)


def test_keeper_floor__fund_empty__the_vault_advances_it_and_adl_repays_it(
        twin, owner, trader, keeper, crowd):
    e = twin.p.engine
    no_funding(twin, owner)
    _floor_on(twin, owner)
    open_position(twin, trader, WAD, 1_000 * USDC)
    twin.fund(crowd[0], 100_000 * USDC, spenders=[e])
    open_position(twin, crowd[0], -WAD, 10_000 * USDC)
    price(twin, owner, 78_000)
    _drain_fund(twin, owner)
    cash0 = twin.p.vault.cash()
    n = len(twin.w.events)
    ok(twin, keeper, "liquidate", trader, BTC, [crowd[0]])
    (paid,) = assert_events_agree(twin, "KeeperPaid", n)
    assert (paid["from_fund"], paid["from_vault"]) == (0, 1 * USDC)
    # the deficit ADL collects is the 1,000 of bad debt plus the advance,
    # at the job's rate: the short's full-size fill repays both
    (fill,) = assert_events_agree(twin, "AutoDeleveraged", n)
    assert (fill["size"], fill["haircut"]) == (-WAD, 1_000 * USDC + 1 * USDC)
    assert assert_events_agree(twin, "BadDebtSocialized", n) == []
    # the vault: + the long's 1,000 margin, - the 1 advanced, + the 1,001
    # haircut, - the short's 2,000 of PnL
    assert twin.p.vault.cash() - cash0 == 1_000 * USDC - 1 * USDC + 1_001 * USDC - 2_000 * USDC
    assert twin.p.vault.cash() >= e.traders_reserve()
    step(twin)


def test_side_blocking__dust_positions__refused_at_the_minimum_notional(twin, owner, trader, keeper):
    """Finding 3. 1,000 positions of 1 wei of BTC with 10 USDC of margin
    filled a side for 0.001 USDC of fees. Now a position's entry notional
    is at least min_notional (2,000 USDC on the devnet, 10,000 on Sepolia):
    blocking one side takes 1,000 positions, 2,000,000 USDC of notional
    exposed to the price (20,000,000 on Sepolia) and 1,000 USDC of trading
    fees (5,000) that nobody refunds. A reduce may not leave dust either."""
    no_funding(twin, owner)
    _floor_on(twin, owner)
    ok(twin, trader, "deposit", 100_000 * USDC)
    cancelled(twin, trader, 1, 10 * USDC, 90_000 * WAD, "position: notional below minimum")
    # 2,000 USDC at 80,000 is 0.025 BTC: one unit of size less is refused
    cancelled(twin, trader, 25 * 10**15 - 1, 100 * USDC, 90_000 * WAD, "position: notional below minimum")
    open_position(twin, trader, 25 * 10**15, 100 * USDC, funded=True)
    assert position(twin, trader)[0] == 25 * 10**15
    cancelled(twin, trader, -1, 0, 0, "position: dust remainder")
    close(twin, trader, -25 * 10**15)
    assert twin.p.engine.position_count(BTC, True) == 0
    step(twin)


def test_pending_adl__the_bankrupt_account__cannot_open_in_that_market(
        twin, owner, trader, keeper, crowd):
    """Finding 4 (part). While the market's ADL job for its bankruptcy is
    pending, the bankrupt account's open is cancelled
    `adl: bankrupt while pending`; once the job ends it may trade again."""
    e = twin.p.engine
    no_funding(twin, owner)
    open_position(twin, trader, 21 * WAD, 21_000 * USDC)
    for who in crowd[:21]:
        twin.fund(who, 100_000 * USDC, spenders=[e])
        open_position(twin, who, -WAD, 10_000 * USDC)
    price(twin, owner, 78_000)  # the long owes 21,000 more than its margin
    _drain_fund(twin, owner)
    ranking = list(e.adl_ranking(trader, BTC))
    assert len(ranking) == 20  # the list is full and one winner is left: the job stays pending
    ok(twin, keeper, "liquidate", trader, BTC, ranking)
    assert e.adl_pending(BTC).remaining > 0 and e.adl_pending(BTC).bankrupt == trader.address
    ok(twin, trader, "deposit", 10_000 * USDC)
    cancelled(twin, trader, -WAD // 10, 1_000 * USDC, 0, "adl: bankrupt while pending")
    rest = [a for a in crowd[:21] if position(twin, a)[0] != 0]
    assert len(rest) == 1
    ok(twin, keeper, "deleverage", BTC, rest)
    assert e.adl_pending(BTC).remaining == 0
    open_position(twin, trader, -WAD // 10, 1_000 * USDC, funded=True)
    step(twin)


def test_penalty_dodge__liquidatable_then_topped_up__closes_without_the_penalty(twin, owner, trader, keeper):
    """Finding 5, a decision (docs/liquidation.md): a liquidatable position
    may still add margin and close, as on most venues. Topping up is the
    controlled way out; the penalty is for positions left to the keeper. The
    keeper treats a liquidation that then reverts `position healthy` or
    `position: none` as a lost race (bots/keeper.py)."""
    e = twin.p.engine
    no_funding(twin, owner)
    open_position(twin, trader, WAD, 1_000 * USDC)
    price(twin, owner, 79_300)  # equity 300 < maintenance 396.5
    assert e.is_liquidatable(trader, BTC)
    ok(twin, trader, "add_margin", BTC, 200 * USDC)
    assert not e.is_liquidatable(trader, BTC)
    reverts(twin, keeper, "liquidate", trader, BTC, [], reason="position healthy")
    close(twin, trader, -WAD)
    assert position(twin, trader)[0] == 0
    step(twin)
