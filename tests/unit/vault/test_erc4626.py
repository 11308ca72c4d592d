"""LiquidityVault's ERC-4626 surface under ERC-7540: deposits and
redemptions are requested, priced once per epoch (deposits at the entry
valuation, redemptions at the exit valuation), then claimed through
deposit/mint and redeem/withdraw. Pricing rounds down (shares minted,
assets paid), a claim of part of what is claimable counts what it takes
rounded up: the vault never gives more than it takes. snekmate's
virtual-share formula, written out here:
    shares = assets * (supply + 10**3) / (valuation + 1)."""

import pytest
from eth_utils import keccak

from tests.unit.perp_engine.helpers import (
    MAX_UINT, USDC, WAD, ZERO, ceil_div, expect_ok, expect_order_ok, expect_revert)
from tests.unit.vault.lp import OFFSET, assert_vault_same, deposit, later_rounds, settle


@pytest.fixture
def priced(twin, owner, trader, keeper):
    """A vault whose share price is no longer a round number: fees from a
    round trip of 3 BTC (two orders, the price unchanged) went to the vault."""
    expect_ok(twin, trader, "deposit", 100_000 * USDC)
    expect_order_ok(twin, trader, 0, 3 * WAD + 7, 10_000 * USDC, 80_000 * WAD, keeper)
    expect_order_ok(twin, trader, 0, -3 * WAD - 7, 0, 0, keeper)
    v = twin.p.vault
    assert v.totalAssets() * OFFSET != v.totalSupply()
    return twin


def book(v):
    return v.totalSupply(), v.totalAssets(), v.entry_assets()


def test_deposit__mints_shares_rounded_down(priced, other_trader, keeper):
    twin, v, tok = priced, priced.p.vault, priced.p.token
    amount = 1_234_567
    wallet = tok.balanceOf(other_trader)
    expect_ok(twin, other_trader, "vault.requestDeposit", amount, other_trader, other_trader)
    assert tok.balanceOf(other_trader) == wallet - amount and tok.balanceOf(v.ESCROW()) == amount
    assert v.pendingDepositRequest(0, other_trader) == amount and v.maxDeposit(other_trader) == 0
    later_rounds(twin, keeper)
    supply, _, entry = book(v)
    expected = amount * (supply + OFFSET) // (entry + 1)
    assert settle(twin, keeper) == 1
    assert v.pendingDepositRequest(0, other_trader) == 0
    assert v.claimableDepositRequest(0, other_trader) == amount == v.maxDeposit(other_trader)
    assert v.maxMint(other_trader) == expected
    expect_ok(twin, other_trader, "vault.deposit", amount, other_trader)
    assert v.balanceOf(other_trader) == expected and v.maxDeposit(other_trader) == 0
    assert_vault_same(twin, [other_trader])


def test_mint__pulls_assets_rounded_up(priced, other_trader, keeper):
    twin, v = priced, priced.p.vault
    amount = 7_000_003
    expect_ok(twin, other_trader, "vault.requestDeposit", amount, other_trader, other_trader)
    later_rounds(twin, keeper)
    settle(twin, keeper)
    shares = v.maxMint(other_trader)
    part = shares // 3
    expect_ok(twin, other_trader, "vault.mint", part, other_trader)
    assert v.balanceOf(other_trader) == part
    assert v.maxDeposit(other_trader) == amount - ceil_div(part * amount, shares)
    expect_ok(twin, other_trader, "vault.mint", v.maxMint(other_trader), other_trader)  # the rest: all of it
    assert v.balanceOf(other_trader) == shares and v.maxDeposit(other_trader) == 0
    assert_vault_same(twin, [other_trader])


def test_redeem__pays_assets_rounded_down(priced, lp, keeper):
    twin, v, tok = priced, priced.p.vault, priced.p.token
    shares = 123_456_789_123
    held = v.balanceOf(lp)
    expect_ok(twin, lp, "vault.requestRedeem", shares, lp, lp)
    assert v.balanceOf(lp) == held - shares and v.pendingRedeemRequest(0, lp) == shares
    later_rounds(twin, keeper)
    supply, assets, _ = book(v)
    expected = shares * (assets + 1) // (supply + OFFSET)
    assert expected == v.convertToAssets(shares)
    settle(twin, keeper)
    assert v.claimableRedeemRequest(0, lp) == shares == v.maxRedeem(lp) and v.maxWithdraw(lp) == expected
    wallet = tok.balanceOf(lp)
    expect_ok(twin, lp, "vault.redeem", shares, lp, lp)
    assert tok.balanceOf(lp) - wallet == expected
    assert_vault_same(twin, [lp])


def test_withdraw__burns_shares_rounded_up(priced, lp, keeper):
    twin, v, tok = priced, priced.p.vault, priced.p.token
    expect_ok(twin, lp, "vault.requestRedeem", 10**12 + 11, lp, lp)
    later_rounds(twin, keeper)
    settle(twin, keeper)
    assets, shares = v.maxWithdraw(lp), v.maxRedeem(lp)
    part = assets // 7
    wallet = tok.balanceOf(lp)
    expect_ok(twin, lp, "vault.withdraw", part, lp, lp)
    assert tok.balanceOf(lp) - wallet == part
    assert v.maxRedeem(lp) == shares - ceil_div(part * shares, assets)
    assert_vault_same(twin, [lp])


def test_round_trips__never_return_more_than_was_paid(priced, other_trader):
    twin, v, tok = priced, priced.p.vault, priced.p.token
    start = tok.balanceOf(other_trader)
    for amount in (999, 10**6 + 1):
        got = deposit(twin, other_trader, amount)
        expect_ok(twin, other_trader, "vault.requestRedeem", got, other_trader, other_trader)
        later_rounds(twin, other_trader)
        settle(twin, other_trader)
        if v.maxRedeem(other_trader):
            expect_ok(twin, other_trader, "vault.redeem", v.maxRedeem(other_trader), other_trader, other_trader)
        assert tok.balanceOf(other_trader) <= start
    assert_vault_same(twin, [other_trader])


def test_one_unit__deposit_mints_shares_one_share_redeems_nothing(priced, other_trader):
    """A unit buys a little under 1,000 shares (the vault's share price is
    above par); one share's redemption is worth nothing: the claim of it
    reverts "vault: zero amount" and maxRedeem says 0."""
    twin, v = priced, priced.p.vault
    got = deposit(twin, other_trader, 1)
    assert 0 < got < OFFSET
    expect_ok(twin, other_trader, "vault.requestRedeem", 1, other_trader, other_trader)
    later_rounds(twin, other_trader)
    settle(twin, other_trader)
    assert v.claimableRedeemRequest(0, other_trader) == 1 and v.maxWithdraw(other_trader) == 0
    expect_revert(twin, other_trader, "vault.redeem", 1, other_trader, other_trader, reason="vault: zero amount")
    assert_vault_same(twin, [other_trader])


def test_max_redeem__shares_worth_nothing__is_zero_not_an_amount_that_reverts(priced, other_trader):
    """ERC-4626: maxRedeem (and maxDeposit) must not name an amount the
    claim refuses. Settled shares worth less than a unit: maxRedeem is 0."""
    twin, v = priced, priced.p.vault
    deposit(twin, other_trader, 1)
    shares = v.balanceOf(other_trader)
    expect_ok(twin, other_trader, "vault.requestRedeem", shares, other_trader, other_trader)
    later_rounds(twin, other_trader)
    settle(twin, other_trader)
    assert v.claimableRedeemRequest(0, other_trader) == shares and v.maxRedeem(other_trader) == 0
    expect_revert(twin, other_trader, "vault.redeem", shares, other_trader, other_trader, reason="vault: zero amount")
    got = deposit(twin, other_trader, 5)  # worth a few units: the next epoch pays them
    expect_ok(twin, other_trader, "vault.requestRedeem", got, other_trader, other_trader)
    later_rounds(twin, other_trader)
    settle(twin, other_trader)
    assert v.maxRedeem(other_trader) == shares + got and v.maxWithdraw(other_trader) > 0
    expect_ok(twin, other_trader, "vault.redeem", v.maxRedeem(other_trader), other_trader, other_trader)
    assert_vault_same(twin, [other_trader])


def test_previews__revert_as_erc7540_requires_and_conversions_answer(priced):
    v = priced.p.vault
    for preview in (v.previewDeposit, v.previewMint, v.previewWithdraw, v.previewRedeem):
        with pytest.raises(Exception, match="vault: async"):
            preview(USDC)
    supply, assets, _ = book(v)
    assert v.convertToShares(USDC) == USDC * (supply + OFFSET) // (assets + 1)
    assert v.convertToAssets(10**9) == 10**9 * (assets + 1) // (supply + OFFSET)


def test_zero__reverts(twin, lp):
    for verb, args in (("vault.requestDeposit", (0, lp, lp)), ("vault.requestRedeem", (0, lp, lp)),
                       ("vault.deposit", (0, lp)), ("vault.mint", (0, lp)),
                       ("vault.withdraw", (0, lp, lp)), ("vault.redeem", (0, lp, lp))):
        expect_revert(twin, lp, verb, *args, reason="vault: zero amount")
    assert_vault_same(twin, [lp])


def test_claims__above_what_is_claimable__revert_and_change_nothing(twin, lp, trader, keeper):
    expect_ok(twin, trader, "vault.requestDeposit", 100 * USDC, trader, trader)
    expect_ok(twin, lp, "vault.requestRedeem", 10**12, lp, lp)
    # nothing is claimable before the epoch settles
    expect_revert(twin, trader, "vault.deposit", 1, trader, reason="vault: exceeds claimable")
    expect_revert(twin, lp, "vault.redeem", 1, lp, lp, reason="vault: exceeds claimable")
    later_rounds(twin, keeper)
    settle(twin, keeper)
    v = twin.p.vault
    before = [vault_view for vault_view in (v.maxDeposit(trader), v.maxMint(trader), v.maxRedeem(lp), v.maxWithdraw(lp))]
    expect_revert(twin, trader, "vault.deposit", v.maxDeposit(trader) + 1, trader, reason="vault: exceeds claimable")
    expect_revert(twin, trader, "vault.mint", v.maxMint(trader) + 1, trader, reason="vault: exceeds claimable")
    expect_revert(twin, lp, "vault.redeem", v.maxRedeem(lp) + 1, lp, lp, reason="vault: exceeds claimable")
    expect_revert(twin, lp, "vault.withdraw", v.maxWithdraw(lp) + 1, lp, lp, reason="vault: exceeds claimable")
    assert before == [v.maxDeposit(trader), v.maxMint(trader), v.maxRedeem(lp), v.maxWithdraw(lp)]
    assert_vault_same(twin, [lp, trader])


def test_requests_and_claims__for_someone_else__need_their_approval(twin, lp, stranger, keeper):
    v = twin.p.vault
    expect_revert(twin, stranger, "vault.requestDeposit", 10 * USDC, stranger, lp, reason="vault: not operator")
    expect_revert(twin, stranger, "vault.requestRedeem", 10**9, stranger, lp, reason="erc20: insufficient allowance")
    expect_ok(twin, lp, "vault.requestRedeem", 10**12, lp, lp)
    later_rounds(twin, keeper)
    settle(twin, keeper)
    expect_revert(twin, stranger, "vault.redeem", v.maxRedeem(lp), stranger, lp, reason="vault: not operator")
    expect_revert(twin, stranger, "vault.withdraw", 1, stranger, lp, reason="vault: not operator")
    expect_revert(twin, stranger, "vault.deposit", 1, stranger, lp, reason="vault: not operator")
    assert_vault_same(twin, [lp, stranger])
    # an operator the LP approved claims for it, to itself or anywhere
    expect_ok(twin, lp, "vault.setOperator", stranger, True)
    assert v.isOperator(lp, stranger)
    expect_ok(twin, stranger, "vault.redeem", v.maxRedeem(lp), stranger, lp)
    expect_ok(twin, stranger, "vault.requestDeposit", 10 * USDC, lp, lp)  # pulls the LP's tokens for the LP
    assert v.pendingDepositRequest(0, lp) == 10 * USDC
    expect_ok(twin, lp, "vault.setOperator", stranger, False)
    expect_revert(twin, stranger, "vault.requestDeposit", 10 * USDC, lp, lp, reason="vault: not operator")
    assert_vault_same(twin, [lp, stranger])


def test_settle__too_early_twice_and_while_pending__each_with_its_reason(twin, lp, trader, keeper):
    v = twin.p.vault
    expect_revert(twin, keeper, "vault.settle", reason="vault: nothing to settle")
    first = v.epoch()
    expect_ok(twin, trader, "vault.requestDeposit", 100 * USDC, trader, trader)
    assert settle(twin, keeper) == 0  # no round after the request yet: the epoch only closes
    assert (v.epoch(), v.closing()) == (first + 1, first)
    expect_revert(twin, keeper, "vault.settle", reason="vault: no later round")
    expect_revert(twin, trader, "vault.requestDeposit", USDC, trader, trader, reason="vault: request pending")
    expect_ok(twin, lp, "vault.requestDeposit", USDC, lp, lp)  # others join the open epoch
    twin.restamp(0, keeper)  # one market has a later round, the other not yet
    expect_revert(twin, keeper, "vault.settle", reason="vault: no later round")
    twin.restamp(1, keeper)
    assert settle(twin, keeper) == 2  # the closed epoch, then the open one (its rounds are in too)
    assert v.closing() == 0 and v.epoch() == first + 2
    expect_revert(twin, keeper, "vault.settle", reason="vault: nothing to settle")
    assert_vault_same(twin, [lp, trader])


def test_redeem_or_deposit__more_than_held__reverts(twin, trader):
    expect_revert(twin, trader, "vault.requestDeposit", MAX_UINT, trader, trader, reason="math: mul_div overflow")
    expect_revert(twin, trader, "vault.requestDeposit", 10**20, trader, trader,
                  reason="erc20: transfer amount exceeds balance")
    expect_revert(twin, trader, "vault.requestRedeem", 1, trader, trader,
                  reason="erc20: transfer amount exceeds balance")


def test_claim__to_the_zero_address__reverts(twin, trader, keeper):
    expect_ok(twin, trader, "vault.requestDeposit", 10 * USDC, trader, trader)
    later_rounds(twin, keeper)
    settle(twin, keeper)
    expect_revert(twin, trader, "vault.deposit", 10 * USDC, ZERO, reason="erc20: transfer to the zero address")


def test_pay__not_the_engine__reverts(twin, owner, stranger):
    for who in (stranger, owner):
        expect_revert(twin, who, "vault.pay", 1, reason="vault: only engine")


def _selector(sig):
    return int.from_bytes(keccak(text=sig)[:4], "big")


def test_supports_interface__erc165_ids_of_erc7540(twin):
    """The ids ERC-7540 names, each the XOR of its functions' selectors."""
    v = twin.p.vault
    ids = {
        "operator": ("setOperator(address,bool)", "isOperator(address,address)"),
        "async deposit": ("requestDeposit(uint256,address,address)", "pendingDepositRequest(uint256,address)",
                          "claimableDepositRequest(uint256,address)", "deposit(uint256,address,address)",
                          "mint(uint256,address,address)"),
        "async redeem": ("requestRedeem(uint256,address,address)", "pendingRedeemRequest(uint256,address)",
                         "claimableRedeemRequest(uint256,address)"),
        "erc7575": ("share()",),
    }
    want = {"operator": 0xe3bc4e65, "async deposit": 0xce3bbe50, "async redeem": 0x620ee8e4, "erc7575": 0x2f0a18c5}
    for name, sigs in ids.items():
        x = 0
        for s in sigs:
            x ^= _selector(s)
        if name != "erc7575":  # ERC-7575's id is fixed by that standard
            assert x == want[name], name
        assert v.supportsInterface(want[name].to_bytes(4, "big"))
    assert v.supportsInterface(bytes.fromhex("01ffc9a7"))
    assert not v.supportsInterface(bytes.fromhex("ffffffff"))
    assert v.share() == v.address


def test_escrow_initcode__is_vault_escrow_compiled():
    """LiquidityVault.ESCROW_INITCODE is contracts/VaultEscrow.vy's
    initcode, as this compiler builds it."""
    import re
    import subprocess
    from pathlib import Path
    root = Path(__file__).resolve().parents[3]
    built = subprocess.run([str(root / ".venv/bin/vyper"), "--evm-version", "prague", "-f", "bytecode",
                            str(root / "contracts/VaultEscrow.vy")], capture_output=True, text=True, check=True)
    constant = re.search(r'ESCROW_INITCODE: constant\(Bytes\[(\d+)\]\) = x"([0-9a-f]+)"',
                         (root / "contracts/LiquidityVault.vy").read_text())
    assert built.stdout.strip()[2:] == constant.group(2)
    assert int(constant.group(1)) == len(constant.group(2)) // 2
