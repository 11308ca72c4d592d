"""The four findings of the solvency review (issue 13), replayed against the
real contracts and the model side by side, each now failing for the
attacker; plus the payout cap's own surface (set_max_profit) and the promise
that ordinary winners are paid in full. docs/solvency.md states the bound
each test plays. Default devnet parameters: BTC at 80,000, max_profit 50% of
entry notional, 5 bps trading fee, mmf 0.5%, funding off in every test (so
values do not move between a read and the next block).
"""

from ape import chain

from tests.unit.perp_exits.helpers import (
    BTC, USDC, WAD, assert_events_agree, close, no_funding, ok, open_position, order, position, price, reverts, step,
    cancelled,
)
from tests.unit.vault.lp import redeem_everything
from tests.unit.perp_engine.helpers import no_fallback

MAX_UINT = 2**256 - 1


def _lp_down_to_the_reserve(twin, lp):
    """The LP withdraws everything free cash allows (a redemption of all
    its shares, through the vault's epochs: paid up to free cash): the
    vault's cash is then exactly the reserve (the solvency invariant's
    edge)."""
    v = twin.p.vault
    redeem_everything(twin, lp)
    assert v.cash() == twin.p.engine.traders_reserve()


def _mint(twin, to, amount):
    twin._next_time()
    twin.p.token.mint(to, amount, sender=twin.accounts[0])
    twin.w.mint(str(to), amount)


# ---------------------------------------------------------------- finding 1


def test_capture_at_the_floor__the_open_past_capacity_and_the_floor_deposit_are_refused(
        twin, owner, trader, other_trader, lp):
    """Finding 1: when traders' unrealised profit exceeded the vault's cash,
    totalAssets floored at 0 and a 1-USDC deposit minted 99.9999% of the
    shares; after the price reverted the depositor redeemed 101,401 USDC and
    the honest LP's 100,000 was worth 0.10. Now: (a) no open may take the
    vault past its capacity, so profit beyond cash cannot be built; (b) at
    the floor itself (cash == reserve, every cap reached) deposits are
    refused, and the LP keeps every share's value when the price returns."""
    v, e = twin.p.vault, twin.p.engine
    no_funding(twin, owner)
    open_position(twin, trader, 10 * WAD, 20_000 * USDC)  # 800,000 of notional: reserve 400,000
    _lp_down_to_the_reserve(twin, lp)
    assert v.cash() == 400_000 * USDC
    # (a) one more BTC would need 40,000 more of reserve than the vault holds
    ok(twin, other_trader, "deposit", 10_000 * USDC)
    cancelled(twin, other_trader, WAD, 2_000 * USDC, 90_000 * WAD, "vault: capacity")
    assert position(twin, other_trader)[0] == 0
    # (b) the price doubles: the long's profit, 800,000, is twice its cap
    price(twin, owner, 160_000)
    assert e.traders_claim() == 800_000 * USDC and e.traders_gain() == 400_000 * USDC
    assert v.totalAssets() == 0 and v.entry_assets() == 0
    assert not v.deposits_open()
    shares_before = v.totalSupply()
    for amount in (1 * USDC, 1_000_000 * USDC):
        reverts(twin, other_trader, "vault.requestDeposit", amount, other_trader, other_trader,
                reason="vault: valuation at floor")
    assert v.totalSupply() == shares_before and v.pendingDepositRequest(0, other_trader) == 0
    # the price returns: the LP's shares are worth the whole vault again
    price(twin, owner, 80_000)
    lp_value = v.convertToAssets(v.balanceOf(lp))
    assert lp_value >= v.cash() * 999_999 // 1_000_000  # all but the virtual shares' sliver
    assert v.deposits_open()
    step(twin)


# ---------------------------------------------------------------- finding 2


def _bankrupt_long_against_a_winning_short(twin, owner, trader, other_trader, lp):
    """A 50x long B (10 BTC, 16,000 margin) and a short S (10 BTC, 100,000
    margin), both at 80,000; the LP takes everything free cash allows (cash =
    reserve = 800,000); the price halves: B owes 400,000 on 16,000 of margin
    (bad debt 384,000), S is up 400,000, exactly its cap."""
    no_funding(twin, owner)
    open_position(twin, trader, 10 * WAD, 16_000 * USDC)
    open_position(twin, other_trader, -10 * WAD, 100_000 * USDC)
    _lp_down_to_the_reserve(twin, lp)
    assert twin.p.vault.cash() == 800_000 * USDC
    price(twin, owner, 40_000)
    e = twin.p.engine
    assert e.equity(trader, BTC) == -384_000 * USDC
    assert e.equity(other_trader, BTC) == 500_000 * USDC


def test_liquidation_with_the_vault_at_its_reserve__goes_through_and_the_winner_is_paid(
        twin, owner, trader, other_trader, keeper, lp):
    """Finding 2: with LPs withdrawn to the old reserve and a further move,
    liquidate(B, ranked targets) reverted "vault: insufficient cash", and the
    bankrupt deficit grew from -32,000 to -52,000 with no way to liquidate.
    Now the vault holds every position's cap: B is liquidated at once, S is
    deleveraged at the bankruptcy price and paid from the vault's cash."""
    v, e, fund = twin.p.vault, twin.p.engine, twin.p.insurance_fund
    _bankrupt_long_against_a_winning_short(twin, owner, trader, other_trader, lp)
    fund_balance = twin.p.token.balanceOf(fund)  # the fund's share of the two opening fees
    n = len(twin.w.events)
    cash_before = v.cash()
    ok(twin, keeper, "liquidate", trader, BTC, [other_trader])
    liq = assert_events_agree(twin, "PositionLiquidated", n)
    assert liq[0]["bad_debt"] == 384_000 * USDC
    fills = assert_events_agree(twin, "AutoDeleveraged", n)
    assert sum(f["haircut"] for f in fills) == 384_000 * USDC - fund_balance
    assert not [x for x in twin.w.events[n:] if x[0] == "BadDebtSocialized"]
    assert position(twin, trader)[0] == 0
    # the vault: B's 16,000 of margin in, the fund's cover in, S's closed part
    # paid out at the bankruptcy price; it still covers the reserve
    assert v.cash() >= e.traders_reserve()
    assert v.cash() - cash_before < 400_000 * USDC
    step(twin)


# ---------------------------------------------------------------- finding 3


def test_exit_before_a_socialization__gets_no_value_from_an_uncollectable_loss(
        twin, owner, trader, other_trader, keeper, lp):
    """Finding 3: traders_claim counted B's loss beyond its margin (384,000
    here) as the vault's asset, so an LP who redeemed before the liquidation
    was paid at an inflated value. The redemption valuation now counts no
    loss: it is cash less S's 400,000 gain, not cash less the 0 net claim,
    and a share is worth no more before the liquidation than after it."""
    v, e = twin.p.vault, twin.p.engine
    _bankrupt_long_against_a_winning_short(twin, owner, trader, other_trader, lp)
    assert e.traders_claim() == 0  # -400,000 + 400,000: what the old valuation used
    assert v.totalAssets() == v.cash() - 400_000 * USDC
    assert v.entry_assets() == v.cash()  # a deposit would still pay the full value
    shares = v.balanceOf(lp)
    before = v.convertToAssets(shares)
    assert before == shares * (v.totalAssets() + 1) // (v.totalSupply() + 1_000)  # what an epoch settled now pays
    ok(twin, keeper, "liquidate", trader, BTC, [other_trader])
    after = v.convertToAssets(shares)
    assert before <= after, f"an exit before the liquidation got {before}, after it {after}"
    step(twin)


# ---------------------------------------------------------------- finding 4


def test_erc4626_views__a_broken_feed__answer_and_deposits_wait(twin, owner, trader, other_trader, lp):
    """Finding 4: totalAssets, maxWithdraw and maxRedeem reverted on a broken
    feed. Now they answer, valuing open positions at their whole cap (the
    reserve); deposits, which need the value, wait: maxDeposit 0 and
    "vault: no valuation"."""
    no_fallback(twin, owner)
    v, e = twin.p.vault, twin.p.engine
    no_funding(twin, owner)
    open_position(twin, trader, 10 * WAD, 20_000 * USDC)
    price(twin, owner, 0)  # a non-positive answer: "bad price"
    assert v.totalAssets() == v.cash() - e.traders_reserve()
    assert v.convertToAssets(10**9) > 0 and v.convertToShares(USDC) > 0
    assert v.free_cash() == v.cash() - e.traders_reserve()
    assert v.maxWithdraw(lp) == 0 and v.maxRedeem(lp) == 0  # they answer: nothing is claimable
    assert not v.deposits_open()
    reverts(twin, lp, "vault.requestDeposit", USDC, lp, lp, reason="vault: no valuation")
    # exit requests are taken; under issue 12 their epoch waits for a good round
    ok(twin, lp, "vault.requestRedeem", v.balanceOf(lp) // 2, lp, lp)
    reverts(twin, lp, "vault.settle", reason="vault: bad price")
    price(twin, owner, 80_000)
    assert v.deposits_open()
    twin.restamp(1, owner)  # ETH-PERP's feed too: every market's round must be later than the request
    ok(twin, lp, "vault.settle")
    assert v.maxRedeem(lp) > 0
    step(twin)


def test_erc4626_views__cash_past_2_255__answer_saturating(twin, owner, trader, lp):
    """Finding 4: `convert(balanceOf, int256)` reverted once the vault's cash
    reached 2**255. Now every view answers, up to a token supply of
    2**256 - 1 (the deposit valuation, cash plus a trader's unrealised loss,
    saturates there: tests/model/test_vault_valuation.py plays that sum)."""
    v, e = twin.p.vault, twin.p.engine
    no_funding(twin, owner)
    open_position(twin, trader, WAD, 2_000 * USDC)
    price(twin, owner, 79_000)  # the long is down 1,000
    assert e.traders_claim() == -1_000 * USDC
    _mint(twin, v.address, 2**255)
    assert v.totalAssets() == v.cash() > 2**255
    assert v.entry_assets() == v.cash() + 1_000 * USDC
    top = MAX_UINT - twin.p.token.totalSupply()
    _mint(twin, v.address, top)
    assert twin.p.token.totalSupply() == MAX_UINT
    # within 1,000 USDC of the top (every other holder's tokens are the gap)
    assert v.entry_assets() == min(v.cash() + 1_000 * USDC, MAX_UINT)
    assert v.free_cash() > 0 and v.convertToAssets(v.balanceOf(lp)) > 0 and v.convertToShares(USDC) >= 0
    assert v.maxWithdraw(lp) == 0 and v.maxRedeem(lp) == 0 and v.maxDeposit(lp) == 0  # they answer
    twin.assert_same()


# ---------------------------------------------------------------- the cap itself


def test_set_max_profit__owner_bounds_and_capacity(twin, owner, trader, stranger, lp):
    v, e = twin.p.vault, twin.p.engine
    assert e.max_profit() == 5 * 10**17
    reverts(twin, stranger, "set_max_profit", 10**18, reason="ownable: caller is not the owner")
    reverts(twin, owner, "set_max_profit", 25 * 10**16 - 1, reason="params: max profit")
    reverts(twin, owner, "set_max_profit", 10 * 10**18 + 1, reason="params: max profit")
    no_funding(twin, owner)
    open_position(twin, trader, 10 * WAD, 20_000 * USDC)
    _lp_down_to_the_reserve(twin, lp)  # cash 400,000 = 50% of 800,000
    # raising the cap needs cash the vault does not have; lowering frees it
    reverts(twin, owner, "set_max_profit", 5 * 10**17 + 10**15, reason="vault: capacity")
    ok(twin, owner, "set_max_profit", 25 * 10**16)
    assert e.traders_reserve() == 200_000 * USDC and v.free_cash() == v.cash() - 200_000 * USDC
    assert twin.w.events[-1] == ("MaxProfitSet", {"max_profit": 25 * 10**16})
    ok(twin, owner, "set_max_profit", 5 * 10**17)  # back: exactly at capacity again
    step(twin)


def test_ordinary_winners__a_20pct_move_at_2x_10x_50x__paid_in_full(twin, owner, trader, other_trader, keeper):
    """SPEC 10: ordinary winners are paid in full. Three 10 BTC longs at
    80,000 (margins 400,000, 80,000 and 16,000: 2x, 10x, 50x), the price up
    20% to 96,000: each closes with its whole 160,000 of profit, 20% of its
    entry notional and well under the 50% cap."""
    no_funding(twin, owner)
    for who, m in ((trader, 400_000), (other_trader, 80_000), (keeper, 16_000)):
        open_position(twin, who, 10 * WAD, m * USDC)
    price(twin, owner, 96_000)
    for who in (trader, other_trader, keeper):
        n = len(twin.w.events)
        close(twin, who, -10 * WAD)
        (closed,) = assert_events_agree(twin, "PositionClosed", n)
        assert closed["pnl"] == 160_000 * USDC
    step(twin)
