"""Smoke: an order's whole path on both twins."""
from tests.unit.perp_engine.helpers import USDC, WAD, expect_ok

PRICE = 80_000 * WAD


def test_order__open_then_close__executes_on_both(twin, trader, keeper):
    expect_ok(twin, trader, "deposit", 10_000 * USDC)
    ok, reason = twin.order(trader, 0, WAD, 1_000 * USDC, PRICE, keeper)
    assert ok, reason
    twin.assert_same()
    ok, reason = twin.order(trader, 0, -WAD, 0, 0, keeper)
    assert ok, reason
    twin.assert_same()
    assert twin.p.engine.get_position(trader, 0).size == 0
