"""InsuranceFund: only the engine draws on it (cover); the owner sets a floor
and withdraws only the surplus above it; two-step ownership."""

import pytest

from tests.unit.perp_engine.helpers import (
    USDC, WAD, ZERO, assert_roles_same, btc, events, expect_ok, expect_order_ok, expect_revert, mint_tokens,
    params)


@pytest.fixture
def seeded(twin, owner):
    mint_tokens(twin, twin.p.insurance_fund, 1_000 * USDC, owner)
    return twin


def test_cover__not_the_engine__reverts(seeded, stranger, owner):
    for who in (stranger, owner):
        expect_revert(seeded, who, "fund.cover", who, 1, reason="fund: only engine")
    assert seeded.p.insurance_fund.fund_balance() == 1_000 * USDC


def test_cover__bad_debt_liquidation__the_engine_draws_exactly_the_debt(seeded, owner, trader, keeper):
    twin, f, v, tok = seeded, seeded.p.insurance_fund, seeded.p.vault, seeded.p.token
    expect_ok(twin, owner, "fund.set_floor", 1_000 * USDC)  # the floor binds the owner, not the engine
    expect_ok(twin, owner, "set_market_params", 0, params(twin, 0, funding_k=0, max_funding_rate=0))
    expect_ok(twin, trader, "deposit", 1_000 * USDC)
    expect_order_ok(twin, trader, 0, WAD, 800 * USDC, 80_000 * WAD, keeper)
    twin.set_price(0, btc(79_000), owner)  # equity 800 - 1,000 = -200
    vault_before, fund_before = tok.balanceOf(v), f.fund_balance()
    assert fund_before == 1_000 * USDC + 12 * USDC  # 30% of the 40 USDC opening fee
    expect_ok(twin, keeper, "liquidate", trader, 0, [])
    (liq,) = events(twin, "PositionLiquidated")
    assert liq["bad_debt"] == 200 * USDC
    assert f.fund_balance() == fund_before - 200 * USDC
    assert events(twin, "InsuranceFundDrawn") == [dict(amount=200 * USDC, remaining=fund_before - 200 * USDC)]
    # The vault took the margin (800) and the fund's 200: the long's whole 1,000 loss.
    assert tok.balanceOf(v) - vault_before == 1_000 * USDC
    twin.assert_same()


def test_set_floor__owner__sets_it(seeded, owner):
    expect_ok(seeded, owner, "fund.set_floor", 400 * USDC)
    assert seeded.p.insurance_fund.balance_floor() == 400 * USDC
    assert_roles_same(seeded)


def test_set_floor__stranger__reverts_not_owner(seeded, stranger):
    expect_revert(seeded, stranger, "fund.set_floor", 1, reason="ownable: caller is not the owner")
    assert_roles_same(seeded)


def test_withdraw_surplus__exactly_the_surplus__accepted_one_unit_more_reverts(seeded, owner, stranger):
    twin, f, tok = seeded, seeded.p.insurance_fund, seeded.p.token
    expect_ok(twin, owner, "fund.set_floor", 400 * USDC)
    expect_revert(twin, owner, "fund.withdraw_surplus", stranger, 600 * USDC + 1, reason="fund: below floor")
    expect_ok(twin, owner, "fund.withdraw_surplus", stranger, 600 * USDC)
    assert f.fund_balance() == 400 * USDC and tok.balanceOf(stranger) == 600 * USDC
    expect_revert(twin, owner, "fund.withdraw_surplus", stranger, 1, reason="fund: below floor")
    expect_ok(twin, owner, "fund.set_floor", 0)
    expect_ok(twin, owner, "fund.withdraw_surplus", owner, 400 * USDC)
    assert f.fund_balance() == 0
    twin.assert_same()


def test_withdraw_surplus__more_than_the_balance__reverts(seeded, owner):
    for amount in (1_000 * USDC + 1, 2**256 - 1):
        expect_revert(seeded, owner, "fund.withdraw_surplus", owner, amount, reason="fund: below floor")


def test_withdraw_surplus__floor_above_balance__nothing_withdrawable(seeded, owner):
    expect_ok(seeded, owner, "fund.set_floor", 2_000 * USDC)
    expect_revert(seeded, owner, "fund.withdraw_surplus", owner, 1, reason="fund: below floor")


def test_withdraw_surplus__zero__reverts(seeded, owner):
    expect_revert(seeded, owner, "fund.withdraw_surplus", owner, 0, reason="fund: zero amount")


def test_withdraw_surplus__stranger__reverts_not_owner(seeded, stranger):
    expect_revert(seeded, stranger, "fund.withdraw_surplus", stranger, 1, reason="ownable: caller is not the owner")


def test_ownership__two_steps__moves_floor_and_surplus_rights(seeded, owner, pauser, stranger):
    twin, f = seeded, seeded.p.insurance_fund
    expect_revert(twin, stranger, "fund.transfer_ownership", stranger, reason="ownable: caller is not the owner")
    expect_ok(twin, owner, "fund.transfer_ownership", pauser)
    assert f.pending_owner() == pauser.address and f.owner() == twin.p.timelock.address
    expect_revert(twin, stranger, "fund.accept_ownership", reason="ownable_2step: caller is not the new owner")
    expect_revert(twin, pauser, "fund.set_floor", 1, reason="ownable: caller is not the owner")
    expect_ok(twin, pauser, "fund.accept_ownership")
    assert f.owner() == pauser.address and f.pending_owner() == ZERO
    expect_revert(twin, owner, "fund.withdraw_surplus", owner, 1, reason="ownable: caller is not the owner")
    expect_ok(twin, pauser, "fund.set_floor", 10 * USDC)
    expect_ok(twin, pauser, "fund.withdraw_surplus", pauser, 990 * USDC)
    # The engine's owner did not change with the fund's.
    assert twin.p.engine.owner() == twin.p.timelock.address
    assert_roles_same(twin)
    twin.assert_same()
