"""LiquidityVault's redemptions against free cash: LPs cannot take the
cash that the reserve (every open position's payout cap) needs, and the
redemption valuation counts no trader loss as an asset (docs/solvency.md).
Redemptions go through the vault's epochs (ERC-7540): an epoch pays its
redemptions up to free cash, the rest of the shares go back to the LP.
Default devnet parameters: max_profit 50% of entry notional."""

import pytest

from tests.unit.perp_engine.helpers import (
    USDC, WAD, btc, expect_ok, expect_order_ok, expect_revert, params, position)
from tests.unit.vault.lp import assert_vault_same, redeem_everything

SCALE = 10**30  # 36 - 6 decimals


@pytest.fixture
def long_100_btc(twin, owner, trader, keeper):
    """A 100 BTC long at 80,000 (an order the keeper executed), without
    funding: the claim (and so free cash) must not move between reading it
    and the next block. Entry notional 8,000,000: reserve 4,000,000."""
    expect_ok(twin, owner, "set_market_params", 0, params(twin, 0, funding_k=0, max_funding_rate=0))
    expect_ok(twin, trader, "deposit", 1_000_000 * USDC)
    expect_order_ok(twin, trader, 0, 100 * WAD, 100_000 * USDC, 80_000 * WAD, keeper)
    return twin


def test_withdraw__traders_in_profit__capped_at_free_cash_and_the_winner_is_paid(
        long_100_btc, owner, trader, keeper, lp):
    twin, v, e, tok = long_100_btc, long_100_btc.p.vault, long_100_btc.p.engine, long_100_btc.p.token
    assert e.traders_reserve() == 4_000_000 * USDC
    twin.set_price(0, btc(88_000), owner)  # +800,000 USDC to the long
    assert e.traders_gain() == 800_000 * USDC
    free = v.free_cash()
    assert free == v.cash() - 4_000_000 * USDC
    assert v.totalAssets() == v.cash() - 800_000 * USDC  # the redemption valuation
    shares = v.balanceOf(lp)
    expect_ok(twin, lp, "vault.requestRedeem", shares, lp, lp)
    twin.restamp(0, keeper)
    twin.restamp(1, keeper)
    expect_ok(twin, keeper, "vault.settle")
    assert v.maxWithdraw(lp) == free  # a request for everything is paid free cash, no more
    expect_revert(twin, lp, "vault.withdraw", free + 1, lp, lp, reason="vault: exceeds claimable")
    # Everything the LP can take leaves the reserve in the vault...
    expect_ok(twin, lp, "vault.redeem", v.maxRedeem(lp), lp, lp)
    assert v.cash() >= e.traders_reserve()
    # the shares free cash did not pay are the LP's again, once it claims them back
    unpaid = v.claimableCancelRedeemRequest(0, lp)
    assert 0 < unpaid < shares and v.balanceOf(lp) == 0
    expect_ok(twin, lp, "vault.claimCancelRedeemRequest", 0, lp, lp)
    assert v.balanceOf(lp) == unpaid
    # ...and the trader is paid in full (a close order, executed by the keeper).
    free_before = e.free_collateral(trader)
    expect_order_ok(twin, trader, 0, -100 * WAD, 0, 0, keeper)
    assert position(twin, trader)[0] == 0
    # margin 100,000 + 800,000 of profit - 4,400 fee (5 bps of 8,800,000) - 1 execution fee
    assert e.free_collateral(trader) - free_before == 100_000 * USDC + 800_000 * USDC - 4_400 * USDC - 1 * USDC
    assert tok.balanceOf(e) == sum(e.free_collateral(a) for a in twin.accounts)  # no position or order left
    twin.assert_same()


def test_redeem__traders_in_loss__the_loss_is_not_an_asset_until_collected(long_100_btc, owner, lp):
    twin, v, e = long_100_btc, long_100_btc.p.vault, long_100_btc.p.engine
    twin.set_price(0, btc(79_600), owner)  # -40,000 USDC to the long: the vault's, not yet in cash
    assert e.traders_claim() == -40_000 * USDC
    # redemptions count no loss; deposits count it (a deposit never buys in below the vault's worth)
    assert e.traders_gain() == 0 and v.totalAssets() == v.cash()
    assert v.entry_assets() == v.cash() + 40_000 * USDC
    assert v.free_cash() == v.cash() - 4_000_000 * USDC
    shares, free, paid = redeem_everything(twin, lp)
    assert paid == free < shares * (v.totalAssets() + 1) // (v.totalSupply() + 1_000)  # not what they are worth
    assert v.free_cash() < v.convertToAssets(1_000_000)  # what is left is less than a few shares' worth
    assert_vault_same(twin, [lp])


def test_close__profit_past_the_cap__pays_the_cap_and_never_reverts(twin, owner, trader, keeper, lp):
    """The vault holds only the reserve, and the price doubles: the long's
    close pays its capped profit, 50% of its 800,000 entry notional, and the
    vault keeps the rest. Before the payout cap this close was cancelled
    "vault: insufficient cash" until LPs came back."""
    v, e = twin.p.vault, twin.p.engine
    expect_ok(twin, owner, "set_market_params", 0, params(twin, 0, funding_k=0, max_funding_rate=0))
    expect_ok(twin, trader, "deposit", 100_000 * USDC)
    expect_order_ok(twin, trader, 0, 10 * WAD, 20_000 * USDC, 80_000 * WAD, keeper)
    redeem_everything(twin, lp)
    assert v.cash() == e.traders_reserve() == 400_000 * USDC  # exactly at capacity
    twin.set_price(0, btc(160_000), owner)  # +800,000 to the long, twice its cap
    assert e.traders_gain() == 400_000 * USDC  # gains count only up to the cap
    before = e.free_collateral(trader)
    expect_order_ok(twin, trader, 0, -10 * WAD, 0, 0, keeper)
    closed = [f for n, f in twin.w.events if n == "PositionClosed"][-1]
    assert closed["pnl"] == 400_000 * USDC
    # margin 20,000 + the cap 400,000 - 800 fee (5 bps of 1,600,000) - 1 execution fee
    assert e.free_collateral(trader) - before == 20_000 * USDC + 400_000 * USDC - 800 * USDC - 1 * USDC
    assert v.cash() >= e.traders_reserve() == 0
    twin.assert_same()


def test_redeem__netted_claims__cannot_strand_a_winner(twin, owner, trader, other_trader, keeper, lp):
    v = twin.p.vault
    for who, size in ((trader, 10 * WAD), (other_trader, -10 * WAD)):
        expect_ok(twin, who, "deposit", 100_000 * USDC)
        expect_order_ok(twin, who, 0, size, 20_000 * USDC, 80_000 * WAD, keeper)
    twin.set_price(0, btc(81_000), owner)  # the long wins 10,000, the short loses 10,000: claim ~ 0
    assert twin.p.engine.traders_reserve() == 800_000 * USDC
    redeem_everything(twin, lp)
    assert v.cash() == 800_000 * USDC
    ok, reason = twin.order(trader, 0, -10 * WAD, 0, 0, keeper)
    assert ok, reason
    assert position(twin, trader)[0] == 0
    twin.assert_same()


def test_redeem__same_side_netted_claims__cannot_strand_a_winner(twin, owner, trader, other_trader, keeper, lp):
    """Once an xfail (the old reserve netted a winner and a loser on one
    side): the reserve is now every position's cap, whatever the price, so
    the LP cannot take the winner's cash."""
    v = twin.p.vault
    expect_ok(twin, trader, "deposit", 500_000 * USDC)
    expect_ok(twin, other_trader, "deposit", 500_000 * USDC)
    twin.set_price(0, btc(70_000), owner)
    expect_order_ok(twin, trader, 0, 10 * WAD, 50_000 * USDC, 70_000 * WAD, keeper)
    twin.set_price(0, btc(90_000), owner)
    expect_order_ok(twin, other_trader, 0, 10 * WAD, 200_000 * USDC, 90_000 * WAD, keeper)
    twin.set_price(0, btc(80_000), owner)  # +100,000 and -100,000 on the long side
    redeem_everything(twin, lp)
    ok, reason = twin.order(trader, 0, -10 * WAD, 0, 0, keeper)
    assert ok, reason
    assert position(twin, trader)[0] == 0
    twin.assert_same()
