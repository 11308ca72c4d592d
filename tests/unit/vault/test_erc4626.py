"""LiquidityVault's ERC-4626 verbs: deposit and redeem round down, mint and
withdraw round up (the vault never gives more than it takes), with
snekmate's virtual-share formula written out here:
    shares = assets * (supply + 10**3) / (total_assets + 1)."""

import pytest

from tests.unit.perp_engine.helpers import (
    MAX_UINT, USDC, WAD, ZERO, ceil_div, expect_ok, expect_order_ok, expect_revert)

OFFSET = 10**3


@pytest.fixture
def priced(twin, owner, trader, keeper):
    """A vault whose share price is no longer a round number: fees from a
    round trip of 3 BTC (two orders, the price unchanged) went to the vault."""
    expect_ok(twin, trader, "deposit", 100_000 * USDC)
    expect_order_ok(twin, trader, 0, 3 * WAD + 7, 10_000 * USDC, 80_000 * WAD, keeper)
    expect_order_ok(twin, trader, 0, -3 * WAD - 7, 0, 0, keeper)
    v = twin.p.vault
    assert v.totalAssets() * OFFSET != v.totalSupply()
    return twin


def book(v):
    return v.totalSupply(), v.totalAssets()


def test_deposit__mints_shares_rounded_down(priced, other_trader):
    twin, v = priced, priced.p.vault
    supply, assets = book(v)
    amount = 1_234_567
    expected = amount * (supply + OFFSET) // (assets + 1)
    assert v.previewDeposit(amount) == expected == v.convertToShares(amount)
    expect_ok(twin, other_trader, "vault.deposit", amount, other_trader)
    assert v.balanceOf(other_trader) == expected
    assert v.totalAssets() == assets + amount
    twin.assert_same()


def test_mint__pulls_assets_rounded_up(priced, other_trader):
    twin, v, tok = priced, priced.p.vault, priced.p.token
    supply, assets = book(v)
    shares = 987_654_321
    expected = ceil_div(shares * (assets + 1), supply + OFFSET)
    assert v.previewMint(shares) == expected
    wallet = tok.balanceOf(other_trader)
    expect_ok(twin, other_trader, "vault.mint", shares, other_trader)
    assert wallet - tok.balanceOf(other_trader) == expected
    assert v.balanceOf(other_trader) == shares
    twin.assert_same()


def test_withdraw__burns_shares_rounded_up(priced, lp):
    twin, v, tok = priced, priced.p.vault, priced.p.token
    supply, assets = book(v)
    amount = 7_654_321
    expected = ceil_div(amount * (supply + OFFSET), assets + 1)
    assert v.previewWithdraw(amount) == expected
    shares, wallet = v.balanceOf(lp), tok.balanceOf(lp)
    expect_ok(twin, lp, "vault.withdraw", amount, lp, lp)
    assert shares - v.balanceOf(lp) == expected
    assert tok.balanceOf(lp) - wallet == amount
    twin.assert_same()


def test_redeem__pays_assets_rounded_down(priced, lp):
    twin, v, tok = priced, priced.p.vault, priced.p.token
    supply, assets = book(v)
    shares = 123_456_789_123
    expected = shares * (assets + 1) // (supply + OFFSET)
    assert v.previewRedeem(shares) == expected == v.convertToAssets(shares)
    wallet = tok.balanceOf(lp)
    expect_ok(twin, lp, "vault.redeem", shares, lp, lp)
    assert tok.balanceOf(lp) - wallet == expected
    twin.assert_same()


def test_round_trips__never_return_more_than_was_paid(priced, other_trader):
    twin, v, tok = priced, priced.p.vault, priced.p.token
    start = tok.balanceOf(other_trader)
    for amount in (999, 10**6 + 1):  # (one unit buys shares worth nothing: the next test)
        expect_ok(twin, other_trader, "vault.deposit", amount, other_trader)
        expect_ok(twin, other_trader, "vault.redeem", v.balanceOf(other_trader), other_trader, other_trader)
        assert tok.balanceOf(other_trader) <= start
    # mint then withdraw: the shares cost at least what they are worth
    expect_ok(twin, other_trader, "vault.mint", 10**9 + 3, other_trader)
    expect_ok(twin, other_trader, "vault.withdraw", v.maxWithdraw(other_trader), other_trader, other_trader)
    assert tok.balanceOf(other_trader) <= start
    twin.assert_same()


def test_one_unit__deposit_mints_shares_one_share_redeems_nothing(priced, other_trader):
    twin, v = priced, priced.p.vault
    expect_ok(twin, other_trader, "vault.deposit", 1, other_trader)
    assert 0 < v.balanceOf(other_trader) < OFFSET  # a unit is worth a little under 1,000 shares now
    expect_revert(twin, other_trader, "vault.redeem", 1, other_trader, other_trader, reason="vault: zero amount")
    expect_ok(twin, other_trader, "vault.mint", 1, other_trader)  # costs a whole unit
    expect_ok(twin, other_trader, "vault.withdraw", 1, other_trader, other_trader)  # burns a unit's worth of shares
    twin.assert_same()


def test_max_redeem__shares_worth_nothing__is_zero_not_an_amount_that_reverts(priced, other_trader):
    """ERC-4626: maxRedeem must not name an amount redeem refuses. A holder
    of less than a unit's worth of shares can redeem nothing."""
    twin, v = priced, priced.p.vault
    expect_ok(twin, other_trader, "vault.deposit", 1, other_trader)
    shares = v.balanceOf(other_trader)
    assert 0 < shares and v.previewRedeem(shares) == 0
    assert v.maxRedeem(other_trader) == 0
    expect_revert(twin, other_trader, "vault.redeem", shares, other_trader, other_trader, reason="vault: zero amount")
    expect_ok(twin, other_trader, "vault.deposit", 5, other_trader)  # now worth a few units
    got = v.maxRedeem(other_trader)
    assert got == v.balanceOf(other_trader) and v.previewRedeem(got) > 0
    expect_ok(twin, other_trader, "vault.redeem", got, other_trader, other_trader)
    twin.assert_same()


def test_zero__reverts(twin, lp):
    for verb, args in (("vault.deposit", (0, lp)), ("vault.mint", (0, lp)),
                       ("vault.withdraw", (0, lp, lp)), ("vault.redeem", (0, lp, lp))):
        expect_revert(twin, lp, verb, *args, reason="vault: zero amount")


def test_deposit__to_the_zero_address__reverts(twin, lp):
    expect_revert(twin, lp, "vault.deposit", 10 * USDC, ZERO, reason="erc20: mint to the zero address")


def test_withdraw__for_another_owner_without_allowance__reverts(twin, lp, stranger):
    expect_revert(twin, stranger, "vault.withdraw", 10 * USDC, stranger, lp, reason="erc20: insufficient allowance")
    expect_revert(twin, stranger, "vault.redeem", 10**9, stranger, lp, reason="erc20: insufficient allowance")


def test_redeem_or_deposit__more_than_held__reverts(twin, lp, trader):
    expect_ok(twin, trader, "vault.deposit", 100 * USDC, trader)
    shares = twin.p.vault.balanceOf(trader)
    expect_revert(twin, trader, "vault.redeem", shares + 1, trader, trader, reason="erc20: burn amount exceeds balance")
    expect_revert(twin, trader, "vault.deposit", MAX_UINT, trader, reason="math: mul_div overflow")


def test_pay__not_the_engine__reverts(twin, owner, stranger):
    for who in (stranger, owner):
        expect_revert(twin, who, "vault.pay", 1, reason="vault: only engine")
