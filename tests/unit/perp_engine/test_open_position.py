"""Opening and increasing a position through orders: request_order escrows,
execute_order (the keeper, at a later round) applies it, and every check of
PerpOrders._open in the order the contract makes them, each failing one a
cancellation carrying its reason. Devnet BTC-PERP: 80,000, imf 1%, fee 5 bps
(30% of it to the insurance fund), min margin 10 USDC, cap 1,000 BTC a side,
execution fee 1 USDC."""

import pytest

from tests.conftest import lp_deposit

from tests.unit.perp_engine.helpers import (
    SCALE, USDC, WAD, btc, ceil_div, events, execution_fee, expect_ok, expect_order_ok, expect_order_refused,
    free, mint_tokens, params, position)

PRICE = 80_000 * WAD
EXEC = 1 * USDC  # the devnet execution fee, per order


def fee_of(size, price, fee=5 * 10**14):
    """The trading fee, rounded up twice (notional, then fraction), independently of model/."""
    return ceil_div(ceil_div(abs(size) * price, SCALE) * fee, WAD)


def requirement(size, price, imf=10**16):
    return ceil_div(ceil_div(abs(size) * price, SCALE) * imf, WAD)


@pytest.fixture
def funded(twin, trader, other_trader):
    assert execution_fee(twin) == EXEC
    expect_ok(twin, trader, "deposit", 10_000 * USDC)
    expect_ok(twin, other_trader, "deposit", 10_000 * USDC)
    return twin


# ---------------------------------------------------------------- success


@pytest.mark.parametrize("side", [1, -1])
def test_open_order__new__escrows_then_stores_the_position_and_splits_the_fee(funded, trader, keeper, side):
    twin, e, tok = funded, funded.p.engine, funded.p.token
    vault0, fund0 = tok.balanceOf(twin.p.vault), tok.balanceOf(twin.p.insurance_fund)
    fee = fee_of(WAD, PRICE)
    assert fee == 40 * USDC
    ok, reason, oid = twin.request(trader, 0, side * WAD, 1_000 * USDC, PRICE)
    assert ok, reason
    # At request: margin, the fee at the acceptable price and the execution fee leave free collateral.
    assert free(twin, trader) == 10_000 * USDC - (1_000 * USDC + fee + EXEC)
    o = e.get_order(oid)
    assert (o.account, o.market_id, o.size_delta, o.margin_delta, o.acceptable_price) == (
        trader.address, 0, side * WAD, 1_000 * USDC, PRICE)
    assert (o.reduce_only, o.trading_fee, o.execution_fee, o.escrow) == (False, 5 * 10**14, EXEC, 1_041 * USDC)
    assert position(twin, trader) == (0, 0, 0, 0, 0, 0)  # nothing opens before a later round
    twin.restamp(0, keeper)
    assert twin.execute(keeper, oid) == ("executed", None)
    assert position(twin, trader) == (side * WAD, PRICE, 1_000 * USDC, 0, 0, 0)
    assert free(twin, trader) == 10_000 * USDC - 1_000 * USDC - fee - EXEC  # the fee was exact: no refund
    assert free(twin, keeper) == EXEC
    assert tok.balanceOf(twin.p.insurance_fund) - fund0 == fee * 3 // 10
    assert tok.balanceOf(twin.p.vault) - vault0 == fee - fee * 3 // 10
    assert e.open_interest(0) == ((WAD, 0) if side > 0 else (0, WAD))
    assert e.position_count(0, side > 0) == 1 and e.position_at(0, side > 0, 0) == trader.address
    assert events(twin, "PositionOpened")[-1] == dict(
        account=trader.address, market_id=0, size_delta=side * WAD, price=PRICE, margin_added=1_000 * USDC,
        fee=fee, funding_paid=0, size=side * WAD, entry_price=PRICE)
    assert events(twin, "OrderExecuted")[-1] == dict(order_id=oid, price=PRICE)
    assert int(e.get_order(oid).account, 16) == 0  # executed: deleted
    twin.assert_same()


def test_open_order__long_executes_at_the_later_round__fee_at_that_price_the_rest_refunded(
        funded, owner, trader, keeper):
    twin = funded
    acceptable = 80_100 * WAD
    ok, reason, oid = twin.request(trader, 0, WAD, 1_000 * USDC, acceptable)
    assert ok, reason
    escrowed_fee = fee_of(WAD, acceptable)
    assert escrowed_fee == 40_050_000
    assert free(twin, trader) == 10_000 * USDC - 1_000 * USDC - escrowed_fee - EXEC
    twin.set_price(0, btc(80_050), owner)  # the round after the request: its price is the order's
    assert twin.execute(keeper, oid) == ("executed", None)
    fee = fee_of(WAD, 80_050 * WAD)
    assert fee == 40_025_000
    assert position(twin, trader)[:3] == (WAD, 80_050 * WAD, 1_000 * USDC)
    assert free(twin, trader) == 10_000 * USDC - 1_000 * USDC - fee - EXEC
    twin.assert_same()


def test_open_order__short_executed_above_acceptable__the_fee_excess_comes_out_of_the_margin(
        funded, owner, trader, keeper):
    """A sell may execute above its acceptable price and owe a fee above the
    escrowed one: the excess is taken from the margin moving in."""
    twin = funded
    acceptable = 79_900 * WAD
    ok, reason, oid = twin.request(trader, 0, -WAD, 1_000 * USDC, acceptable)
    assert ok, reason
    escrowed_fee = fee_of(WAD, acceptable)
    assert escrowed_fee == 39_950_000
    twin.set_price(0, btc(80_050), owner)
    assert twin.execute(keeper, oid) == ("executed", None)
    fee = fee_of(WAD, 80_050 * WAD)
    margin_in = 1_000 * USDC + escrowed_fee - fee
    assert margin_in == 999_925_000
    assert position(twin, trader)[:3] == (-WAD, 80_050 * WAD, margin_in)
    assert events(twin, "PositionOpened")[-1]["margin_added"] == margin_in
    assert free(twin, trader) == 10_000 * USDC - 1_000 * USDC - escrowed_fee - EXEC  # nothing refunded
    twin.assert_same()


@pytest.mark.parametrize("side", [1, -1])
def test_open_order__increase__weighted_entry_rounds_against_the_trader(funded, owner, trader, keeper, side):
    twin, e = funded, funded.p.engine
    expect_order_ok(twin, trader, 0, side * WAD, 1_000 * USDC, PRICE, keeper)
    idx0 = position(twin, trader)[3]
    twin.set_price(0, btc(80_001), owner)
    expect_order_ok(twin, trader, 0, side * 2 * WAD, 2_000 * USDC, 80_001 * WAD, keeper)
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


def test_open_order__margin_exactly_initial__accepted_one_unit_less_cancelled(funded, trader, keeper):
    twin = funded
    size = 123_456_789_012_345_678
    need = requirement(size, PRICE)
    assert need == 98_765_432
    expect_order_refused(twin, trader, 0, size, need - 1, PRICE, keeper, reason="margin: below initial",
                         at="execution")
    expect_order_ok(twin, trader, 0, size, need, PRICE, keeper)
    assert position(twin, trader)[2] == need
    # Against the long, a size is a reduce: it takes no margin.
    expect_order_refused(twin, trader, 0, -size, need - 1, 0, keeper, reason="order: margin on reduce",
                         at="request")


def test_open_order__short_at_exactly_initial__accepted_one_unit_less_cancelled(funded, other_trader, keeper):
    twin = funded
    size = -3 * WAD - 7
    need = requirement(size, PRICE)
    expect_order_refused(twin, other_trader, 0, size, need - 1, PRICE, keeper, reason="margin: below initial",
                         at="execution")
    expect_order_ok(twin, other_trader, 0, size, need, PRICE, keeper)
    assert position(twin, other_trader)[:3] == (size, PRICE, need)
    twin.assert_same()


def test_open_order__increase_after_a_loss__counts_the_loss_against_initial(funded, owner, trader, keeper):
    twin = funded
    expect_order_ok(twin, trader, 0, WAD, 1_000 * USDC, PRICE, keeper)
    twin.set_price(0, btc(79_800), owner)  # -200 USDC
    # 2 BTC at 79,800 need 1,596; equity = 1,000 - 200 - (seconds of funding) + added.
    expect_order_refused(twin, trader, 0, WAD, 700 * USDC, 79_800 * WAD, keeper, reason="margin: below initial",
                         at="execution")
    expect_order_ok(twin, trader, 0, WAD, 800 * USDC, 79_800 * WAD, keeper)
    twin.assert_same()


def test_open_order__opposite_while_an_open_is_pending__request_reverts_order_pending(funded, trader, keeper):
    """Both requested with no position used to be two opens, the short
    cancelled 'position: opposite direction' once the long had executed. One
    pending order per account and market makes that unreachable through the
    trader's own orders: the second request reverts 'order: pending' and
    changes nothing. 'position: opposite direction' stays in PerpOrders as a
    defensive check at execution."""
    twin, e = funded, funded.p.engine
    fee = fee_of(WAD, PRICE)
    ok, reason, long_id = twin.request(trader, 0, WAD, 1_000 * USDC, PRICE)
    assert ok, reason
    assert e.pending_order(trader, 0) == long_id
    free0 = free(twin, trader)
    assert free0 == 10_000 * USDC - (1_000 * USDC + fee + EXEC)
    count = e.order_count()
    for size, margin, acceptable in ((-WAD, 1_000 * USDC, PRICE), (WAD, 1_000 * USDC, PRICE)):
        ok2, reason2, _ = twin.request(trader, 0, size, margin, acceptable)
        assert (ok2, reason2) == (False, "order: pending")
    # Nothing changed: no order stored, no escrow taken, the pending id the same.
    assert e.order_count() == count == long_id
    assert e.pending_order(trader, 0) == long_id
    assert free(twin, trader) == free0
    assert position(twin, trader) == (0, 0, 0, 0, 0, 0)
    twin.assert_same()
    twin.restamp(0, keeper)
    assert twin.execute(keeper, long_id) == ("executed", None)
    assert e.pending_order(trader, 0) == 0
    assert position(twin, trader)[:3] == (WAD, PRICE, 1_000 * USDC)
    assert free(twin, trader) == 10_000 * USDC - (1_000 * USDC + fee + EXEC)
    assert free(twin, keeper) == EXEC
    twin.assert_same()


# ---------------------------------------------------------------- slippage


def test_open_order__long_above_acceptable__cancelled_at_price_accepted(funded, trader, keeper):
    expect_order_refused(funded, trader, 0, WAD, 1_000 * USDC, PRICE - 1, keeper,
                         reason="position: price above acceptable", at="execution")
    expect_order_ok(funded, trader, 0, WAD, 1_000 * USDC, PRICE, keeper)
    funded.assert_same()


def test_open_order__short_below_acceptable__cancelled_at_price_accepted(funded, trader, keeper):
    expect_order_refused(funded, trader, 0, -WAD, 1_000 * USDC, PRICE + 1, keeper,
                         reason="position: price below acceptable", at="execution")
    expect_order_ok(funded, trader, 0, -WAD, 1_000 * USDC, PRICE, keeper)
    funded.assert_same()


# ---------------------------------------------------------------- bad inputs


def test_open_order__unknown_market__request_reverts(funded, trader, keeper):
    for mid in (2, 2**256 - 1):
        ok, reason, _ = funded.request(trader, mid, WAD, 1_000 * USDC, PRICE)
        assert (ok, reason) == (False, "market: unknown")
    funded.assert_same()


def test_open_order__zero_size__request_reverts(funded, trader, keeper):
    for margin in (1_000 * USDC, 0):  # size 0 is a margin removal only with margin going out
        expect_order_refused(funded, trader, 0, 0, margin, PRICE, keeper, reason="position: zero size", at="request")


def test_open_order__size_at_or_past_2_120__request_reverts_too_large(funded, trader, keeper):
    for size in (2**255 - 1, -(2**255), 2**120, -(2**120)):
        expect_order_refused(funded, trader, 0, size, 1_000 * USDC, PRICE, keeper,
                             reason="position: size too large", at="request")


def test_open_order__size_just_under_2_120__passes_the_size_check(funded, trader, keeper):
    # The next check in line (the fee on that notional) is what stops it: at
    # request for a long (the fee at the acceptable price is escrowed), at
    # execution for a short accepting any price (nothing escrowed for the fee).
    expect_order_refused(funded, trader, 0, 2**120 - 1, 1_000 * USDC, PRICE, keeper,
                         reason="collateral: insufficient", at="request")
    expect_order_refused(funded, trader, 0, -(2**120) + 1, 1_000 * USDC, 0, keeper,
                         reason="collateral: insufficient", at="execution")


def test_open_order__increase_to_2_120__cancelled_too_large(twin, owner, trader, keeper, lp):
    expect_ok(twin, owner, "set_market_params", 0, params(twin, 0, max_open_interest=2**120))
    # the vault's capacity for a 2**120 position at 1e-8 USD (6.6 billion USDC of notional)
    mint_tokens(twin, lp, 10**16, lp)
    lp_deposit(twin, lp, 10**16)
    twin.set_price(0, 1, owner)  # 1e-8 USD: a 2**119 position is cheap
    price = 10**10
    mint_tokens(twin, trader, 10**20, trader)
    expect_ok(twin, trader, "deposit", 10**20)
    half = 2**119
    expect_order_ok(twin, trader, 0, half, 10**15, price, keeper)
    # Each order is under 2**120; the position it would make is not.
    expect_order_refused(twin, trader, 0, half, 10**15, price, keeper, reason="position: size too large",
                         at="execution")
    expect_order_ok(twin, trader, 0, half - 1, 10**15, price, keeper)
    assert position(twin, trader)[0] == 2**120 - 1
    twin.assert_same()


def test_open_order__margin_or_price_past_the_order_bounds__request_reverts(funded, trader, keeper):
    twin = funded
    for margin in (10_000 * USDC + 1, 2**127 - 1):  # inside the bound: more than free
        expect_order_refused(twin, trader, 0, WAD, margin, PRICE, keeper, reason="collateral: insufficient",
                             at="request")
    expect_order_refused(twin, trader, 0, WAD, 2**127, PRICE, keeper, reason="order: margin too large",
                         at="request")
    # An acceptable price of 2**128 - 1 is a valid order (on a tiny size the
    # fee escrowed at it is 0.17 USDC); a sell there is cancelled at 80,000.
    # 2**128 is refused at request.
    expect_order_refused(twin, trader, 0, -1, 1_000 * USDC, 2**128, keeper, reason="order: price too large",
                         at="request")
    expect_order_refused(twin, trader, 0, -1, 1_000 * USDC, 2**128 - 1, keeper,
                         reason="position: price below acceptable", at="execution")


def test_open_order__margin_plus_fees_beyond_free__request_reverts_insufficient(funded, trader, keeper):
    fee = fee_of(WAD, PRICE)
    expect_order_refused(funded, trader, 0, WAD, 10_000 * USDC - fee - EXEC + 1, PRICE, keeper,
                         reason="collateral: insufficient", at="request")
    expect_order_ok(funded, trader, 0, WAD, 10_000 * USDC - fee - EXEC, PRICE, keeper)
    assert free(funded, trader) == 0
    funded.assert_same()


def test_open_order__margin_below_minimum__cancelled_at_minimum_accepted(funded, trader, keeper):
    size = WAD // 1_000  # 80 USDC notional: 0.80 initial margin, far below the 10 USDC minimum
    for margin in (0, 1, 10 * USDC - 1):  # zero margin: the same reason
        expect_order_refused(funded, trader, 0, size, margin, PRICE, keeper,
                             reason="position: margin below minimum", at="execution")
    expect_order_ok(funded, trader, 0, size, 10 * USDC, PRICE, keeper)
    funded.assert_same()


def test_open_order__open_interest_cap__exactly_the_cap_accepted_one_unit_past_cancelled(
        funded, owner, trader, other_trader, keeper):
    twin, e = funded, funded.p.engine
    cap = "market: open interest cap"
    expect_ok(twin, owner, "set_market_params", 0, params(twin, 0, max_open_interest=2 * WAD))
    expect_order_refused(twin, trader, 0, 2 * WAD + 1, 2_000 * USDC, PRICE, keeper, reason=cap, at="execution")
    expect_order_ok(twin, trader, 0, 2 * WAD, 2_000 * USDC, PRICE, keeper)
    expect_order_refused(twin, other_trader, 0, 1, 2_000 * USDC, PRICE, keeper, reason=cap, at="execution")
    # The cap is per side: shorts have their own.
    expect_order_refused(twin, other_trader, 0, -2 * WAD - 1, 2_000 * USDC, PRICE, keeper, reason=cap,
                         at="execution")
    expect_order_ok(twin, other_trader, 0, -2 * WAD, 2_000 * USDC, PRICE, keeper)
    assert e.open_interest(0) == (2 * WAD, 2 * WAD)
    twin.assert_same()


def test_open_order__funding_beyond_margin__cancelled(funded, owner, trader, keeper):
    twin = funded
    expect_order_ok(twin, trader, 0, WAD, 800 * USDC, PRICE, keeper)
    twin.advance(5 * 86_400)  # all long: about 192 USDC a day of funding
    twin.set_price(0, btc(80_000), owner)
    expect_order_refused(twin, trader, 0, WAD, 5_000 * USDC, PRICE, keeper,
                         reason="position: funding exceeds margin", at="execution")
