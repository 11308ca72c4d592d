"""remove_margin: every revert reason, and the initial-margin boundary to the
unit, with a profit (which does not count) and a loss (which does).
Long 1 BTC at 80,000 with 2,000 USDC, funding off; imf 1%, min margin 10."""

from tests.unit.perp_exits.helpers import (
    BTC, USDC, WAD, free, no_funding, ok, open_position, position, price, reverts, step,
)


def test_remove_margin__bad_requests__revert_with_their_reasons(twin, owner, trader):
    no_funding(twin, owner)
    open_position(twin, trader, WAD, 2_000 * USDC)
    for args, reason in (
        ((2, 1), "market: unknown"),
        ((BTC, 0), "collateral: zero amount"),
        ((BTC, 1_990 * USDC + 1), "margin: insufficient"),  # would leave under 10
        ((BTC, 2**128), "margin: insufficient"),
    ):
        reverts(twin, trader, "remove_margin", *args, reason=reason)
    reverts(twin, owner, "remove_margin", BTC, 1, reason="position: none")
    twin.advance(3_600)
    reverts(twin, trader, "remove_margin", BTC, 1, reason="stale price")
    price(twin, owner, 80_000)
    ok(twin, owner, "pause")  # removing margin adds risk: paused
    reverts(twin, trader, "remove_margin", BTC, 1, reason="pausable: contract is paused")
    step(twin)


def test_remove_margin__initial_margin_boundary__profit_ignored_and_loss_counted(twin, owner, trader, other_trader):
    no_funding(twin, owner)
    open_position(twin, trader, WAD, 2_000 * USDC)
    open_position(twin, other_trader, WAD, 2_000 * USDC)
    # At 82,000 the requirement is 820; the 2,000 of profit does not count,
    # so exactly 1,180 may leave.
    price(twin, owner, 82_000)
    reverts(twin, trader, "remove_margin", BTC, 1_180 * USDC + 1, reason="margin: below initial")
    before = free(twin, trader)
    ok(twin, trader, "remove_margin", BTC, 1_180 * USDC)
    assert free(twin, trader) - before == 1_180 * USDC
    assert position(twin, trader)[2] == 820 * USDC
    # At 79,000 the requirement is 790 and the 1,000 loss counts: the margin
    # must stay at 1,790, so 210 may leave.
    price(twin, owner, 79_000)
    reverts(twin, other_trader, "remove_margin", BTC, 210 * USDC + 1, reason="margin: below initial")
    ok(twin, other_trader, "remove_margin", BTC, 210 * USDC)
    assert position(twin, other_trader)[2] == 1_790 * USDC
    assert not twin.p.engine.is_liquidatable(other_trader, BTC)
    step(twin)
