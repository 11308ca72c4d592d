"""A first end-to-end pass: the seed example on chain and model."""

from tests.conftest import USDC, WAD


def test_seed__liquidation_price_75000__chain_and_model(twin, owner, trader, keeper):
    p = twin.p
    params = p.params[0]
    zero_fee = params.as_tuple()[:5] + (0,) + params.as_tuple()[6:]
    twin.act(owner, "set_market_params", 0, zero_fee)
    twin.act(trader, "deposit", 10_000 * USDC)
    twin.act(trader, "open_position", 0, WAD, 5_375 * USDC, 80_001 * WAD)
    assert p.engine.liquidation_price(trader, 0) == 75_000 * WAD
    twin.assert_same()
    twin.set_price(0, 74_000 * 10**8, owner)
    twin.act(keeper, "liquidate", trader, 0, [])
    twin.assert_same()
    ok, reason = twin.act(keeper, "liquidate", trader, 0, [])
    assert not ok and reason == "position: none"
