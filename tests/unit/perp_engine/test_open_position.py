"""PerpEngine.open_position: new positions, increases, and every check in the
order the contract makes them. Devnet BTC-PERP: 80,000, imf 1%, fee 5 bps
(30% of it to the insurance fund), min margin 10 USDC, cap 1,000 BTC a side."""

import pytest

from tests.unit.perp_engine.helpers import (
    MAX_UINT, SCALE, USDC, WAD, btc, ceil_div, events, expect_ok, expect_revert, mint_tokens,
    params, position)

PRICE = 80_000 * WAD


def fee_of(size, price, fee=5 * 10**14):
    """The trading fee, rounded up twice (notional, then fraction), independently of model/."""
    return ceil_div(ceil_div(abs(size) * price, SCALE) * fee, WAD)


def requirement(size, price, imf=10**16):
    return ceil_div(ceil_div(abs(size) * price, SCALE) * imf, WAD)


@pytest.fixture
def funded(twin, trader, other_trader):
    expect_ok(twin, trader, "deposit", 10_000 * USDC)
    expect_ok(twin, other_trader, "deposit", 10_000 * USDC)
    return twin


# ---------------------------------------------------------------- success


@pytest.mark.parametrize("side", [1, -1])
def test_open_position__new__stores_the_position_and_splits_the_fee(funded, trader, side):
    twin, e, tok = funded, funded.p.engine, funded.p.token
    vault0, fund0 = tok.balanceOf(twin.p.vault), tok.balanceOf(twin.p.insurance_fund)
    expect_ok(twin, trader, "open_position", 0, side * WAD, 1_000 * USDC, PRICE if side > 0 else 0)
    fee = fee_of(WAD, PRICE)
    assert fee == 40 * USDC
    assert position(twin, trader) == (side * WAD, PRICE, 1_000 * USDC, 0, 0, 0)
    assert e.free_collateral(trader) == 10_000 * USDC - 1_000 * USDC - fee
    assert tok.balanceOf(twin.p.insurance_fund) - fund0 == fee * 3 // 10
    assert tok.balanceOf(twin.p.vault) - vault0 == fee - fee * 3 // 10
    assert e.open_interest(0) == ((WAD, 0) if side > 0 else (0, WAD))
    assert e.position_count(0, side > 0) == 1 and e.position_at(0, side > 0, 0) == trader.address
    assert events(twin, "PositionOpened")[-1] == dict(
        account=trader.address, market_id=0, size_delta=side * WAD, price=PRICE, margin_added=1_000 * USDC,
        fee=fee, funding_paid=0, size=side * WAD, entry_price=PRICE)
    twin.assert_same()


@pytest.mark.parametrize("side", [1, -1])
def test_open_position__increase__weighted_entry_rounds_against_the_trader(funded, owner, trader, side):
    twin, e = funded, funded.p.engine
    expect_ok(twin, trader, "open_position", 0, side * WAD, 1_000 * USDC, PRICE if side > 0 else 0)
    twin.set_price(0, btc(80_001), owner)
    idx0 = e.market_state(0)[5]
    expect_ok(twin, trader, "open_position", 0, side * 2 * WAD, 2_000 * USDC, 80_001 * WAD if side > 0 else 0)
    size, entry, margin, idx, _, _ = position(twin, trader)
    total = 80_000 * WAD + 2 * 80_001 * WAD  # size-weighted, per 1e18 of size
    assert total % 3 != 0
    assert size == side * 3 * WAD
    assert entry == (ceil_div(total, 3) if side > 0 else total // 3)  # long up, short down
    # The old part's funding is settled into the margin: alone on its side of
    # the skew, the position pays (the index moves with the skew's sign).
    assert idx == e.market_state(0)[5]
    assert side * (idx - idx0) > 0
    owed = ceil_div(side * WAD * (idx - idx0), SCALE)
    assert owed > 0
    assert margin == 3_000 * USDC - owed
    assert events(twin, "PositionOpened")[-1]["funding_paid"] == owed
    twin.assert_same()


def test_open_position__margin_exactly_initial__accepted_one_unit_less_reverts(funded, trader):
    twin = funded
    size = 123_456_789_012_345_678
    need = requirement(size, PRICE)
    assert need == 98_765_432
    expect_revert(twin, trader, "open_position", 0, size, need - 1, PRICE, reason="margin: below initial")
    expect_ok(twin, trader, "open_position", 0, size, need, PRICE)
    assert position(twin, trader)[2] == need
    expect_revert(twin, trader, "open_position", 0, -size, need - 1, 0, reason="position: opposite direction")
    twin.assert_same()


def test_open_position__short_at_exactly_initial__accepted_one_unit_less_reverts(funded, other_trader):
    twin = funded
    size = -3 * WAD - 7
    need = requirement(size, PRICE)
    expect_revert(twin, other_trader, "open_position", 0, size, need - 1, 0, reason="margin: below initial")
    expect_ok(twin, other_trader, "open_position", 0, size, need, 0)
    twin.assert_same()


def test_open_position__increase_after_a_loss__counts_the_loss_against_initial(funded, owner, trader):
    twin = funded
    expect_ok(twin, trader, "open_position", 0, WAD, 1_000 * USDC, PRICE)
    twin.set_price(0, btc(79_800), owner)  # -200 USDC
    # 2 BTC at 79,800 need 1,596; equity = 1,000 - 200(ish) + added.
    expect_revert(twin, trader, "open_position", 0, WAD, 700 * USDC, 79_800 * WAD, reason="margin: below initial")
    expect_ok(twin, trader, "open_position", 0, WAD, 800 * USDC, 79_800 * WAD)
    twin.assert_same()


# ---------------------------------------------------------------- slippage


def test_open_position__long_above_acceptable__reverts_at_price_accepted(funded, trader):
    expect_revert(funded, trader, "open_position", 0, WAD, 1_000 * USDC, PRICE - 1,
                  reason="position: price above acceptable")
    expect_ok(funded, trader, "open_position", 0, WAD, 1_000 * USDC, PRICE)
    funded.assert_same()


def test_open_position__short_below_acceptable__reverts_at_price_accepted(funded, trader):
    expect_revert(funded, trader, "open_position", 0, -WAD, 1_000 * USDC, PRICE + 1,
                  reason="position: price below acceptable")
    expect_ok(funded, trader, "open_position", 0, -WAD, 1_000 * USDC, PRICE)
    funded.assert_same()


# ---------------------------------------------------------------- bad inputs


def test_open_position__unknown_market__reverts(funded, trader):
    for mid in (2, MAX_UINT):
        expect_revert(funded, trader, "open_position", mid, WAD, 1_000 * USDC, PRICE, reason="market: unknown")


def test_open_position__zero_size__reverts(funded, trader):
    expect_revert(funded, trader, "open_position", 0, 0, 1_000 * USDC, PRICE, reason="position: zero size")


def test_open_position__size_at_or_past_2_120__reverts_too_large(funded, trader):
    for size in (2**255 - 1, -(2**255), 2**120, -(2**120)):
        expect_revert(funded, trader, "open_position", 0, size, 1_000 * USDC, MAX_UINT if size > 0 else 0,
                      reason="position: size too large")


def test_open_position__size_just_under_2_120__passes_the_size_check(funded, trader):
    # The next check in line (the fee on that notional) is what stops it.
    for size in (2**120 - 1, -(2**120) + 1):
        expect_revert(funded, trader, "open_position", 0, size, 1_000 * USDC, MAX_UINT if size > 0 else 0,
                      reason="collateral: insufficient")


def test_open_position__increase_to_2_120__reverts_too_large(twin, owner, trader):
    expect_ok(twin, owner, "set_market_params", 0, params(twin, 0, max_open_interest=2**120))
    twin.set_price(0, 1, owner)  # 1e-8 USD: a 2**119 position is cheap
    mint_tokens(twin, trader, 10**20, trader)
    expect_ok(twin, trader, "deposit", 10**20)
    half = 2**119
    expect_ok(twin, trader, "open_position", 0, half, 10**15, MAX_UINT)
    expect_revert(twin, trader, "open_position", 0, half, 10**15, MAX_UINT, reason="position: size too large")
    expect_ok(twin, trader, "open_position", 0, half - 1, 10**15, MAX_UINT)
    assert position(twin, trader)[0] == 2**120 - 1
    twin.assert_same()


def test_open_position__margin_beyond_free__reverts_insufficient(funded, trader):
    for margin in (MAX_UINT, 10_000 * USDC + 1):
        expect_revert(funded, trader, "open_position", 0, WAD, margin, PRICE, reason="collateral: insufficient")


def test_open_position__margin_plus_fee_beyond_free__reverts_insufficient(funded, trader):
    fee = fee_of(WAD, PRICE)
    expect_revert(funded, trader, "open_position", 0, WAD, 10_000 * USDC - fee + 1, PRICE,
                  reason="collateral: insufficient")
    expect_ok(funded, trader, "open_position", 0, WAD, 10_000 * USDC - fee, PRICE)
    assert funded.p.engine.free_collateral(trader) == 0
    funded.assert_same()


def test_open_position__margin_below_minimum__reverts_at_minimum_accepted(funded, trader):
    size = WAD // 1_000  # 80 USDC notional: 0.80 initial margin, far below the 10 USDC minimum
    for margin in (0, 1, 10 * USDC - 1):  # zero margin: the same reason, nothing changed
        expect_revert(funded, trader, "open_position", 0, size, margin, PRICE,
                      reason="position: margin below minimum")
    expect_ok(funded, trader, "open_position", 0, size, 10 * USDC, PRICE)
    funded.assert_same()


def test_open_position__open_interest_cap__exactly_the_cap_accepted_one_unit_past_reverts(
        funded, owner, trader, other_trader):
    twin, e = funded, funded.p.engine
    cap = "market: open interest cap"
    expect_ok(twin, owner, "set_market_params", 0, params(twin, 0, max_open_interest=2 * WAD))
    expect_revert(twin, trader, "open_position", 0, 2 * WAD + 1, 2_000 * USDC, PRICE, reason=cap)
    expect_ok(twin, trader, "open_position", 0, 2 * WAD, 2_000 * USDC, PRICE)
    expect_revert(twin, other_trader, "open_position", 0, 1, 2_000 * USDC, PRICE, reason=cap)
    # The cap is per side: shorts have their own.
    expect_revert(twin, other_trader, "open_position", 0, -2 * WAD - 1, 2_000 * USDC, 0, reason=cap)
    expect_ok(twin, other_trader, "open_position", 0, -2 * WAD, 2_000 * USDC, 0)
    assert e.open_interest(0) == (2 * WAD, 2 * WAD)
    twin.assert_same()


def test_open_position__funding_beyond_margin__reverts(funded, owner, trader):
    twin = funded
    expect_ok(twin, trader, "open_position", 0, WAD, 800 * USDC, PRICE)
    twin.advance(5 * 86_400)  # all long: about 192 USDC a day of funding
    twin.set_price(0, btc(80_000), owner)
    expect_revert(twin, trader, "open_position", 0, WAD, 5_000 * USDC, PRICE, reason="position: funding exceeds margin")
