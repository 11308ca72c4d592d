"""The first-deposit share-inflation attack on an empty LiquidityVault: an
attacker deposits one unit, donates to the vault, and hopes the victim's
deposit rounds in its favour. With 10**3 virtual shares per unit it loses.
Every deposit and redemption goes through the vault's epochs (ERC-7540)."""

import pytest

from scripts.twin import Twin, mirror_world
from tests.unit.perp_engine.helpers import USDC, expect_revert, transfer_tokens
from tests.unit.vault.lp import assert_vault_same, deposit, redeem


@pytest.fixture
def empty(protocol, owner, lp, stranger):
    """The module's protocol as deployed: nothing in the vault."""
    assert protocol.vault.totalSupply() == 0 and protocol.vault.cash() == 0
    w = mirror_world(protocol, owner)
    w.v.escrow = protocol.vault.ESCROW()
    t = Twin(protocol, w, [owner, lp, stranger])
    for who in (lp, stranger):
        t.fund(who, 10_000_000 * USDC)
    return t


@pytest.mark.parametrize("donation,amount", [
    (1_000, 1 * USDC),                      # dust
    (1_000_000 * USDC, 1_000_000 * USDC),   # donation as large as the victim's deposit
    (1_000_000 * USDC, 5_000 * USDC),       # victim 200 times smaller
], ids=["dust", "equal", "victim_small"])
def test_share_inflation__first_depositor_donates__attack_loses_money(empty, stranger, lp, donation, amount):
    twin, v, tok = empty, empty.p.vault, empty.p.token
    attacker, victim = stranger, lp
    start = tok.balanceOf(attacker)
    assert deposit(twin, attacker, 1) == 1_000  # 10**3 virtual shares per unit
    transfer_tokens(twin, attacker, v, donation)
    assert deposit(twin, victim, amount) > 0
    redeem(twin, attacker, v.balanceOf(attacker))
    attacker_gain = tok.balanceOf(attacker) - start
    victim_value = v.convertToAssets(v.balanceOf(victim))
    assert attacker_gain < 0
    # Whatever the victim lost by rounding, the attacker lost at least as much.
    assert -attacker_gain >= amount - victim_value
    assert_vault_same(twin, [attacker, victim])


def test_share_inflation__deposit_worth_no_share__reverts_instead_of_losing(empty, stranger, lp):
    twin, v, tok = empty, empty.p.vault, empty.p.token
    deposit(twin, stranger, 1)
    transfer_tokens(twin, stranger, v, 1_000_000 * USDC)
    # 100 USDC now buys 100e6 * 2,000 / (1e12 + 2) < 1 share: refused, not swallowed.
    wallet = tok.balanceOf(lp)
    expect_revert(twin, lp, "vault.requestDeposit", 100 * USDC, lp, lp, reason="vault: zero amount")
    assert v.balanceOf(lp) == 0 and tok.balanceOf(lp) == wallet and v.pendingDepositRequest(0, lp) == 0
    assert_vault_same(twin, [lp, stranger])
