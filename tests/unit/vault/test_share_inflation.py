"""The first-deposit share-inflation attack on an empty LiquidityVault: an
attacker deposits one unit, donates to the vault, and hopes the victim's
deposit rounds in its favour. With 10**3 virtual shares per unit it loses."""

import pytest

from scripts.twin import Twin, mirror_world
from tests.unit.perp_engine.helpers import USDC, expect_ok, expect_revert, transfer_tokens


@pytest.fixture
def empty(protocol, owner, lp, stranger):
    """The module's protocol as deployed: nothing in the vault."""
    assert protocol.vault.totalSupply() == 0 and protocol.vault.cash() == 0
    t = Twin(protocol, mirror_world(protocol, owner), [owner, lp, stranger])
    for who in (lp, stranger):
        t.fund(who, 10_000_000 * USDC)
    return t


@pytest.mark.parametrize("donation,deposit", [
    (1_000, 1 * USDC),                      # dust
    (1_000_000 * USDC, 1_000_000 * USDC),   # donation as large as the victim's deposit
    (1_000_000 * USDC, 5_000 * USDC),       # victim 200 times smaller
], ids=["dust", "equal", "victim_small"])
def test_share_inflation__first_depositor_donates__attack_loses_money(empty, stranger, lp, donation, deposit):
    twin, v, tok = empty, empty.p.vault, empty.p.token
    attacker, victim = stranger, lp
    start = tok.balanceOf(attacker)
    expect_ok(twin, attacker, "vault.deposit", 1, attacker)
    assert v.balanceOf(attacker) == 1_000  # 10**3 virtual shares per unit
    transfer_tokens(twin, attacker, v, donation)
    expect_ok(twin, victim, "vault.deposit", deposit, victim)
    assert v.balanceOf(victim) > 0
    expect_ok(twin, attacker, "vault.redeem", v.balanceOf(attacker), attacker, attacker)
    attacker_gain = tok.balanceOf(attacker) - start
    victim_value = v.convertToAssets(v.balanceOf(victim))
    assert attacker_gain < 0
    # Whatever the victim lost by rounding, the attacker lost at least as much.
    assert -attacker_gain >= deposit - victim_value
    twin.assert_same()


def test_share_inflation__deposit_worth_no_share__reverts_instead_of_losing(empty, stranger, lp):
    twin, v = empty, empty.p.vault
    expect_ok(twin, stranger, "vault.deposit", 1, stranger)
    transfer_tokens(twin, stranger, v, 1_000_000 * USDC)
    # 100 USDC now buys 100e6 * 2,000 / (1e12 + 2) < 1 share: refused, not swallowed.
    expect_revert(twin, lp, "vault.deposit", 100 * USDC, lp, reason="vault: zero amount")
    assert v.balanceOf(lp) == 0
