"""PerpEngine.deposit and withdraw: free collateral in and out, exact to the unit."""

from tests.unit.perp_engine.helpers import (
    MAX_UINT, USDC, WAD, execution_fee, expect_ok, expect_order_ok, expect_revert, mint_tokens)


def test_deposit__credits_free_collateral_and_moves_the_tokens(twin, trader):
    e, tok = twin.p.engine, twin.p.token
    wallet, held = tok.balanceOf(trader), tok.balanceOf(e)
    expect_ok(twin, trader, "deposit", 1)
    expect_ok(twin, trader, "deposit", 1_234 * USDC)
    assert e.free_collateral(trader) == 1_234 * USDC + 1
    assert tok.balanceOf(trader) == wallet - 1_234 * USDC - 1
    assert tok.balanceOf(e) == held + 1_234 * USDC + 1
    assert twin.w.events[-1] == ("Deposited", {"account": trader.address, "amount": 1_234 * USDC})
    twin.assert_same()


def test_deposit__zero__reverts(twin, trader):
    expect_revert(twin, trader, "deposit", 0, reason="collateral: zero amount")


def test_deposit__without_allowance__reverts_with_the_token_reason(twin, stranger):
    mint_tokens(twin, stranger, 100 * USDC, stranger)
    expect_revert(twin, stranger, "deposit", 100 * USDC, reason="erc20: insufficient allowance")


def test_deposit__more_than_the_wallet__reverts_with_the_token_reason(twin, trader):
    for amount in (1_000_000 * USDC + 1, 2**255, MAX_UINT):
        expect_revert(twin, trader, "deposit", amount, reason="erc20: transfer amount exceeds balance")


def test_withdraw__returns_free_collateral_to_the_wallet(twin, trader):
    e, tok = twin.p.engine, twin.p.token
    expect_ok(twin, trader, "deposit", 500 * USDC)
    wallet = tok.balanceOf(trader)
    expect_ok(twin, trader, "withdraw", 200 * USDC)
    expect_ok(twin, trader, "withdraw", 300 * USDC)
    assert e.free_collateral(trader) == 0
    assert tok.balanceOf(trader) == wallet + 500 * USDC
    assert twin.w.events[-1] == ("Withdrawn", {"account": trader.address, "amount": 300 * USDC})
    twin.assert_same()


def test_withdraw__zero__reverts(twin, trader):
    expect_ok(twin, trader, "deposit", 500 * USDC)
    expect_revert(twin, trader, "withdraw", 0, reason="collateral: zero amount")


def test_withdraw__more_than_free__reverts(twin, trader):
    expect_ok(twin, trader, "deposit", 500 * USDC)
    for amount in (500 * USDC + 1, 2**255, MAX_UINT):
        expect_revert(twin, trader, "withdraw", amount, reason="collateral: insufficient")


def test_withdraw__margin_locked_in_a_position_is_not_free(twin, trader, keeper):
    e = twin.p.engine
    expect_ok(twin, trader, "deposit", 1_000 * USDC)
    expect_order_ok(twin, trader, 0, WAD // 10, 500 * USDC, 80_000 * WAD, keeper)
    free = e.free_collateral(trader)
    assert execution_fee(twin) == 1 * USDC
    assert free == 1_000 * USDC - 500 * USDC - 4 * USDC - 1 * USDC  # 5 bps of 8,000 USDC, and the keeper's fee
    expect_revert(twin, trader, "withdraw", free + 1, reason="collateral: insufficient")
    expect_ok(twin, trader, "withdraw", free)
    twin.assert_same()


def test_withdraw__another_accounts_collateral__reverts(twin, trader, stranger):
    expect_ok(twin, trader, "deposit", 500 * USDC)
    expect_revert(twin, stranger, "withdraw", 1, reason="collateral: insufficient")
