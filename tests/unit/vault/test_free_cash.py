"""LiquidityVault.withdraw and redeem against free cash: LPs cannot take the
cash that open positions could claim now (traders_claim)."""

import pytest

from tests.unit.perp_engine.helpers import (
    USDC, WAD, btc, expect_ok, expect_order_ok, expect_order_refused, expect_revert, params, position)


@pytest.fixture
def long_100_btc(twin, owner, trader, keeper):
    """A 100 BTC long at 80,000 (an order the keeper executed), without
    funding: the claim (and so free cash) must not move between reading it
    and the next block."""
    expect_ok(twin, owner, "set_market_params", 0, params(twin, 0, funding_k=0, max_funding_rate=0))
    expect_ok(twin, trader, "deposit", 1_000_000 * USDC)
    expect_order_ok(twin, trader, 0, 100 * WAD, 100_000 * USDC, 80_000 * WAD, keeper)
    return twin


def test_withdraw__traders_in_profit__capped_at_free_cash_and_the_winner_is_paid(
        long_100_btc, owner, trader, keeper, lp):
    twin, v, e, tok = long_100_btc, long_100_btc.p.vault, long_100_btc.p.engine, long_100_btc.p.token
    twin.set_price(0, btc(88_000), owner)  # +800,000 USDC to the long
    claim = e.traders_claim()
    assert claim > 790_000 * USDC
    free = v.free_cash()
    assert free == v.cash() - claim == v.totalAssets()
    assert v.maxWithdraw(lp) <= free
    expect_revert(twin, lp, "vault.withdraw", free + 1, lp, lp, reason="vault: exceeds free cash")
    # Everything the LP can take leaves the claim in the vault...
    expect_ok(twin, lp, "vault.redeem", v.maxRedeem(lp), lp, lp)
    assert v.cash() >= claim
    # ...and the trader is paid in full (a close order, executed by the keeper).
    free_before = e.free_collateral(trader)
    expect_order_ok(twin, trader, 0, -100 * WAD, 0, 0, keeper)
    assert position(twin, trader)[0] == 0
    # margin 100,000 + 800,000 of profit - 4,400 fee (5 bps of 8,800,000) - 1 execution fee
    assert e.free_collateral(trader) - free_before == 100_000 * USDC + 800_000 * USDC - 4_400 * USDC - 1 * USDC
    assert tok.balanceOf(e) == sum(e.free_collateral(a) for a in twin.accounts)  # no position or order left
    twin.assert_same()


def test_redeem__traders_in_loss__capped_at_cash(long_100_btc, owner, lp):
    twin, v, e = long_100_btc, long_100_btc.p.vault, long_100_btc.p.engine
    twin.set_price(0, btc(79_600), owner)  # -40,000 USDC to the long: the vault's, not yet in cash
    assert e.traders_claim() < -39_000 * USDC
    assert v.totalAssets() > v.cash() == v.free_cash()
    shares = v.balanceOf(lp)
    assert v.convertToAssets(shares) > v.free_cash()
    expect_revert(twin, lp, "vault.redeem", shares, lp, lp, reason="vault: exceeds free cash")
    expect_revert(twin, lp, "vault.withdraw", v.free_cash() + 1, lp, lp, reason="vault: exceeds free cash")
    assert v.maxRedeem(lp) < shares
    expect_ok(twin, lp, "vault.redeem", v.maxRedeem(lp), lp, lp)
    assert v.free_cash() < v.convertToAssets(1_000_000)  # what is left is less than a few shares' worth
    twin.assert_same()


def test_close__profit_beyond_the_vault_cash__cancelled_insufficient_cash_until_lps_deposit(
        twin, owner, trader, keeper, lp):
    """The known limitation (docs/decisions.md): LPs may take everything
    above the reserve at today's price; if the price moves on, a winner's
    profit can exceed the cash. Its close order is then cancelled with
    "vault: insufficient cash" (the position untouched, the execution fee
    lost), and a new one goes through once the vault has the cash again."""
    v = twin.p.vault
    # no funding: maxRedeem, read a block before the redeem runs, must still hold
    expect_ok(twin, owner, "set_market_params", 0, params(twin, 0, funding_k=0, max_funding_rate=0))
    expect_ok(twin, trader, "deposit", 100_000 * USDC)
    expect_order_ok(twin, trader, 0, 10 * WAD, 20_000 * USDC, 80_000 * WAD, keeper)
    expect_ok(twin, lp, "vault.redeem", v.maxRedeem(lp), lp, lp)  # the reserve is 0 at the entry price
    twin.set_price(0, btc(88_000), owner)  # +80,000 to the long
    assert v.cash() < 80_000 * USDC == twin.p.engine.traders_reserve()
    expect_order_refused(twin, trader, 0, -10 * WAD, 0, 0, keeper, reason="vault: insufficient cash",
                         at="execution")
    expect_ok(twin, lp, "vault.deposit", 100_000 * USDC, lp)
    expect_order_ok(twin, trader, 0, -10 * WAD, 0, 0, keeper)
    assert position(twin, trader)[0] == 0
    twin.assert_same()


def test_redeem__netted_claims__cannot_strand_a_winner(twin, owner, trader, other_trader, keeper, lp):
    v = twin.p.vault
    for who, size in ((trader, 10 * WAD), (other_trader, -10 * WAD)):
        expect_ok(twin, who, "deposit", 100_000 * USDC)
        expect_order_ok(twin, who, 0, size, 20_000 * USDC, 80_000 * WAD, keeper)
    twin.set_price(0, btc(81_000), owner)  # the long wins 10,000, the short loses 10,000: claim ~ 0
    assert twin.p.engine.traders_reserve() >= 10_000 * USDC
    expect_ok(twin, lp, "vault.redeem", v.maxRedeem(lp), lp, lp)
    ok, reason = twin.order(trader, 0, -10 * WAD, 0, 0, keeper)
    assert ok, reason
    assert position(twin, trader)[0] == 0
    twin.assert_same()


@pytest.mark.xfail(strict=True, reason=(
    "Known limitation, reported: traders_reserve floors each side's aggregate PnL at zero, "
    "but within a side a winner (long from 70,000) and a loser (long from 90,000) still "
    "net to nothing at 80,000. An LP can take the cash and the winner's close reverts "
    "'vault: insufficient cash' (its close order is cancelled) until the loser closes (PROPERTIES #20)."))
def test_redeem__same_side_netted_claims__cannot_strand_a_winner(twin, owner, trader, other_trader, keeper, lp):
    v = twin.p.vault
    expect_ok(twin, trader, "deposit", 500_000 * USDC)
    expect_ok(twin, other_trader, "deposit", 500_000 * USDC)
    twin.set_price(0, btc(70_000), owner)
    expect_order_ok(twin, trader, 0, 10 * WAD, 50_000 * USDC, 70_000 * WAD, keeper)
    twin.set_price(0, btc(90_000), owner)
    expect_order_ok(twin, other_trader, 0, 10 * WAD, 200_000 * USDC, 90_000 * WAD, keeper)
    twin.set_price(0, btc(80_000), owner)  # +100,000 and -100,000 on the long side
    expect_ok(twin, lp, "vault.redeem", v.maxRedeem(lp) * 999 // 1_000, lp, lp)
    ok, reason = twin.order(trader, 0, -10 * WAD, 0, 0, keeper)  # today: cancelled "vault: insufficient cash"
    assert ok, reason
