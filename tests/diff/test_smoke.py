"""A first end-to-end pass: the seed example on chain and model, the long
opened by order (request, a later round, execution by the keeper)."""

from tests.conftest import USDC, WAD

EXEC_FEE = 1 * USDC  # the default market's execution fee


def test_seed__liquidation_price_75000__chain_and_model(twin, owner, trader, keeper):
    p = twin.p
    params = p.params[0]
    zero_fee = params.as_tuple()[:5] + (0,) + params.as_tuple()[6:]
    assert twin.act(owner, "set_market_params", 0, zero_fee) == (True, None)
    assert twin.act(trader, "deposit", 10_000 * USDC) == (True, None)
    assert twin.order(trader, 0, WAD, 5_375 * USDC, 80_001 * WAD, keeper) == (True, None)
    # No trading fee: the escrow was 5,375 + 1 execution fee, all of it used.
    assert p.engine.free_collateral(trader) == 10_000 * USDC - 5_375 * USDC - EXEC_FEE
    assert p.engine.free_collateral(keeper) == EXEC_FEE
    assert p.engine.liquidation_price(trader, 0) == 75_000 * WAD
    twin.assert_same()
    twin.set_price(0, 74_000 * 10**8, owner)
    assert twin.act(keeper, "liquidate", trader, 0, []) == (True, None)
    twin.assert_same()
    ok, reason = twin.act(keeper, "liquidate", trader, 0, [])
    assert not ok and reason == "position: none"
