"""The vault's two valuations in the model (model/liquidity_vault.py mirrors
LiquidityVault.vy): saturating sums at the top of uint256, and the fallback
when the engine cannot value open positions."""

from model import liquidity_vault, perp_engine
from model.fixed_point import MAX_UINT256
from tests.model.worlds import LP, TRADER, USDC, WAD, make_world, price_of, set_price


def _long_down_1000(w):
    w.call(TRADER, "request_order", 0, WAD, 2_000 * USDC, price_of(w, 0))
    w.now += 1
    set_price(w, 0, price_of(w, 0))  # a later round, same price
    w.call(LP, "execute_order", w.e.order_count)
    set_price(w, 0, price_of(w, 0) - 1_000 * 10**18)


def test_entry_assets__cash_near_the_top_plus_a_loss__saturates_at_max_uint():
    w = make_world()
    _long_down_1000(w)
    assert perp_engine.traders_claim(w) == -1_000 * USDC
    w.token.balances[w.vault_address] = MAX_UINT256 - 10 * USDC  # a model-only state: no supply cap here
    assert liquidity_vault.entry_assets(w) == (True, MAX_UINT256)
    assert liquidity_vault.total_assets(w) == MAX_UINT256 - 10 * USDC  # no loss counted


def test_valuations__broken_feed__exits_count_the_whole_reserve_and_deposits_wait():
    w = make_world()
    _long_down_1000(w)
    reserve = perp_engine.traders_reserve(w)
    assert reserve > 0
    w.feeds[w.e.params[0].feed].answer = 0  # "bad price" for every valuation view
    assert liquidity_vault.total_assets(w) == liquidity_vault.cash(w) - reserve
    assert liquidity_vault.entry_assets(w) == (False, 0)
    assert not liquidity_vault.deposits_open(w)


def test_settle__a_side_past_its_reserve__waits_with_its_reason_and_changes_nothing():
    """Decision 94 on the model: a long of 1 BTC from 80,000 at 130,000
    (gain 50,000 against a 40,000 cap, its side's reserve). valuation_at
    answers past_cap; settle raises `vault: past cap` and changes nothing;
    a request closes the due epoch but leaves it unpriced; once the winner
    closes, settle prices it."""
    import pytest

    from model.fixed_point import Revert
    from model.protocol import clone
    from tests.model.worlds import KEEPER, MAX_UINT, VAULT, address, advance, close

    LP2 = address(0x2F)

    w = make_world()
    _long_down_1000(w)
    set_price(w, 0, 130_000 * 10**18)
    prices = [price_of(w, m) for m in range(w.e.market_count)]
    assert perp_engine.valuation_at(w, prices)[2] is True
    w.call(LP, "vault.requestRedeem", 1_000_000, LP, LP)
    advance(w, 1)
    before = clone(w)
    with pytest.raises(Revert, match="vault: past cap"):
        w.call(KEEPER, "vault.settle")
    assert (w.v, w.token.balances) == (before.v, before.token.balances)
    w.mint(LP2, 1_000 * USDC)
    w.approve(LP2, VAULT, MAX_UINT)
    w.call(LP2, "vault.requestDeposit", 1_000 * USDC, LP2, LP2)  # closes epoch 2, cannot price it
    assert w.v.closing == 2 and liquidity_vault.get_epoch(w, 2).settled_at == 0
    close(w, TRADER, 0)
    advance(w, 1)
    assert not perp_engine.valuation_at(w, [price_of(w, m) for m in range(w.e.market_count)])[2]
    assert w.call(KEEPER, "vault.settle") == 2  # the closed epoch, then the open one
