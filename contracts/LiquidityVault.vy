# pragma version 0.4.3
# pragma nonreentrancy on
"""
@title LiquidityVault
@notice ERC-4626 vault of the collateral token whose LPs are the counterparty
        of every trade at the oracle price. Two valuations (docs/solvency.md):
        redemptions, withdrawals and convertTo* use cash minus what winners
        could claim now, counting no trader loss as an asset
        (engine.traders_gain); deposits and mints use cash minus the net
        claim, losses counted (engine.traders_claim), so a deposit never buys
        in below what the vault is worth. Both claims are capped at the
        engine's reserve, the sum of every position's payout cap; LPs cannot
        withdraw the cash that reserve needs.
@dev snekmate's erc4626 module reads totalAssets from the token balance and
     cannot be told about open PnL, so the ERC-4626 surface is written here
     over snekmate's erc20 (the shares) and math (512-bit mul_div), with the
     same virtual-share formula as snekmate's erc4626:
       shares = assets * (supply + 10**OFFSET) / (total_assets + 1)
     Deposits and redemptions round down, mints and withdrawals round up:
     the vault never gives more than it takes. Views never revert: the
     engine is read with a static raw_call, and a valuation it cannot give
     (a broken feed) counts the whole reserve as claimed; sums saturate.
     model/liquidity_vault.py mirrors every function.
"""

from ethereum.ercs import IERC20
from ethereum.ercs import IERC20Detailed
from ethereum.ercs import IERC4626
from snekmate.auth import ownable
from snekmate.tokens import erc20
from snekmate.utils import math
from interfaces import IEngineValuation

implements: IERC4626

initializes: ownable
initializes: erc20[ownable := ownable]

exports: (
    erc20.totalSupply,
    erc20.balanceOf,
    erc20.transfer,
    erc20.transferFrom,
    erc20.approve,
    erc20.allowance,
    erc20.name,
    erc20.symbol,
    erc20.decimals,
)

# Virtual shares: 10**3 per unit of assets on an empty vault (share
# inflation costs an attacker a thousand times what it could steal).
DECIMALS_OFFSET: public(constant(uint256)) = 3

ASSET: immutable(IERC20)
ENGINE: public(immutable(address))


@deploy
def __init__(asset: IERC20, engine: address):
    """
    @notice The vault of `asset` whose trades are cleared by `engine`.
    """
    ownable.__init__()
    decimals: uint8 = staticcall IERC20Detailed(asset.address).decimals()
    erc20.__init__("Backstop LP", "BLP", decimals + convert(DECIMALS_OFFSET, uint8), "Backstop LP", "1")
    ASSET = asset
    ENGINE = engine


# ---------------------------------------------------------------- engine


@external
def pay(amount: uint256):
    """
    @notice Engine only: move `amount` of cash to the engine (trader profit,
            funding received, ADL payouts).
    """
    assert msg.sender == ENGINE, "vault: only engine"
    assert amount <= staticcall ASSET.balanceOf(self), "vault: insufficient cash"
    assert extcall ASSET.transfer(ENGINE, amount, default_return_value=True), "vault: transfer failed"


# ---------------------------------------------------------------- views


@external
@view
def asset() -> address:
    return ASSET.address


@external
@view
def cash() -> uint256:
    """
    @notice Tokens the vault holds.
    """
    return staticcall ASSET.balanceOf(self)


@external
@view
def totalAssets() -> uint256:
    """
    @notice The redemption valuation: cash - min(traders_gain, reserve),
            floored at zero.
    """
    return self._total_assets()


@external
@view
def entry_assets() -> uint256:
    """
    @notice The deposit valuation: cash - min(traders_claim, reserve)
            (a net trader loss adds to it, saturating); 0 when the engine
            cannot value open positions now.
    """
    ok: bool = False
    assets: uint256 = 0
    ok, assets = self._entry_assets()
    return assets


@external
@view
def free_cash() -> uint256:
    """
    @notice Cash not reserved for what winning traders could claim now
            (engine.traders_reserve): the most LPs can withdraw.
    """
    return self._free_cash()


@external
@view
def convertToShares(assets: uint256) -> uint256:
    return self._to_shares(assets, False)


@external
@view
def convertToAssets(shares: uint256) -> uint256:
    return self._to_assets(shares, False)


@external
@view
def maxDeposit(receiver: address) -> uint256:
    """
    @notice 0 while deposits would revert: the engine cannot value open
            positions, or the valuation is at its floor with shares out.
    """
    if self._deposits_open():
        return max_value(uint256)
    return 0


@external
@view
def maxMint(receiver: address) -> uint256:
    if self._deposits_open():
        return max_value(uint256)
    return 0


@external
@view
def previewDeposit(assets: uint256) -> uint256:
    return self._shares_in(assets, self._entry_checked())


@external
@view
def previewMint(shares: uint256) -> uint256:
    return self._assets_in(shares, self._entry_checked())


@external
@view
def maxWithdraw(owner: address) -> uint256:
    return min(self._to_assets(erc20.balanceOf[owner], False), self._free_cash())


@external
@view
def maxRedeem(owner: address) -> uint256:
    """
    @notice The most `redeem` accepts now: the owner's shares, capped by free
            cash; 0 when that many shares are worth nothing (redeem would
            revert "vault: zero amount", and ERC-4626 says maxRedeem must not
            name an amount that reverts).
    """
    shares: uint256 = min(erc20.balanceOf[owner], self._to_shares(self._free_cash(), False))
    if self._to_assets(shares, False) == 0:
        return 0
    return shares


@external
@view
def previewWithdraw(assets: uint256) -> uint256:
    return self._to_shares(assets, True)


@external
@view
def previewRedeem(shares: uint256) -> uint256:
    return self._to_assets(shares, False)


# ---------------------------------------------------------------- LP verbs


@external
def deposit(assets: uint256, receiver: address) -> uint256:
    """
    @notice Deposit `assets`, mint shares (rounded down) to `receiver`.
    """
    shares: uint256 = self._shares_in(assets, self._entry_checked())
    self._deposit(receiver, assets, shares)
    return shares


@external
def mint(shares: uint256, receiver: address) -> uint256:
    """
    @notice Mint exactly `shares`, pulling assets rounded up.
    """
    assets: uint256 = self._assets_in(shares, self._entry_checked())
    self._deposit(receiver, assets, shares)
    return assets


@external
def withdraw(assets: uint256, receiver: address, owner: address) -> uint256:
    """
    @notice Withdraw exactly `assets`, burning shares rounded up.
    """
    assert assets <= self._free_cash(), "vault: exceeds free cash"
    shares: uint256 = self._to_shares(assets, True)
    self._withdraw(receiver, owner, assets, shares)
    return shares


@external
def redeem(shares: uint256, receiver: address, owner: address) -> uint256:
    """
    @notice Burn `shares`, paying assets rounded down.
    """
    assets: uint256 = self._to_assets(shares, False)
    assert assets <= self._free_cash(), "vault: exceeds free cash"
    self._withdraw(receiver, owner, assets, shares)
    return assets


# ---------------------------------------------------------------- internal


@internal
@view
def _engine_int(selector: Bytes[4]) -> (bool, int256):
    """
    @notice An int256 (or uint256 below 2**255) view of the engine, read
            with a static raw_call: (False, 0) if it reverts.
    """
    ok: bool = False
    response: Bytes[32] = b""
    ok, response = raw_call(ENGINE, selector, max_outsize=32, is_static_call=True, revert_on_failure=False)
    if not ok or len(response) != 32:
        return (False, 0)
    return (True, abi_decode(response, int256))


@internal
@view
def _total_assets() -> uint256:
    cash: uint256 = staticcall ASSET.balanceOf(self)
    reserve: uint256 = staticcall IEngineValuation(ENGINE).traders_reserve()
    ok: bool = False
    gain: int256 = 0
    ok, gain = self._engine_int(method_id("traders_gain()"))
    claimed: uint256 = reserve
    if ok and gain >= 0:
        claimed = min(convert(gain, uint256), reserve)
    return cash - min(cash, claimed)


@internal
@view
def _entry_assets() -> (bool, uint256):
    """
    @notice (whether the engine could value open positions, the deposit
            valuation).
    """
    cash: uint256 = staticcall ASSET.balanceOf(self)
    ok: bool = False
    claim: int256 = 0
    ok, claim = self._engine_int(method_id("traders_claim()"))
    if not ok:
        return (False, 0)
    if claim < 0:
        # a net trader loss: cash + |claim|, saturating
        loss: uint256 = convert(-(claim + 1), uint256) + 1
        return (True, cash + min(loss, max_value(uint256) - cash))
    reserve: uint256 = staticcall IEngineValuation(ENGINE).traders_reserve()
    return (True, cash - min(cash, min(convert(claim, uint256), reserve)))


@internal
@view
def _entry_checked() -> uint256:
    """
    @notice The deposit valuation, or the reason deposits are closed.
    """
    ok: bool = False
    assets: uint256 = 0
    ok, assets = self._entry_assets()
    assert ok, "vault: no valuation"
    assert assets > 0 or erc20.totalSupply == 0, "vault: valuation at floor"
    return assets


@internal
@view
def _deposits_open() -> bool:
    ok: bool = False
    assets: uint256 = 0
    ok, assets = self._entry_assets()
    return ok and (assets > 0 or erc20.totalSupply == 0)


@internal
@view
def _free_cash() -> uint256:
    cash: uint256 = staticcall ASSET.balanceOf(self)
    return cash - min(cash, staticcall IEngineValuation(ENGINE).traders_reserve())


@internal
@view
def _to_shares(assets: uint256, roundup: bool) -> uint256:
    return math._mul_div(assets, erc20.totalSupply + 10**DECIMALS_OFFSET, self._total_assets() + 1, roundup)


@internal
@view
def _to_assets(shares: uint256, roundup: bool) -> uint256:
    return math._mul_div(shares, self._total_assets() + 1, erc20.totalSupply + 10**DECIMALS_OFFSET, roundup)


@internal
@view
def _shares_in(assets: uint256, total: uint256) -> uint256:
    """
    @notice Shares a deposit of `assets` mints at the deposit valuation
            `total`, rounded down.
    """
    return math._mul_div(assets, erc20.totalSupply + 10**DECIMALS_OFFSET, total + 1, False)


@internal
@view
def _assets_in(shares: uint256, total: uint256) -> uint256:
    """
    @notice Assets a mint of `shares` pulls at the deposit valuation `total`,
            rounded up.
    """
    return math._mul_div(shares, total + 1, erc20.totalSupply + 10**DECIMALS_OFFSET, True)


@internal
def _deposit(receiver: address, assets: uint256, shares: uint256):
    assert assets > 0 and shares > 0, "vault: zero amount"
    before: uint256 = staticcall ASSET.balanceOf(self)
    assert extcall ASSET.transferFrom(msg.sender, self, assets, default_return_value=True), "vault: transfer failed"
    assert staticcall ASSET.balanceOf(self) - before == assets, "vault: balance mismatch"
    erc20._mint(receiver, shares)
    log IERC4626.Deposit(sender=msg.sender, owner=receiver, assets=assets, shares=shares)


@internal
def _withdraw(receiver: address, owner: address, assets: uint256, shares: uint256):
    assert assets > 0 and shares > 0, "vault: zero amount"
    if msg.sender != owner:
        erc20._spend_allowance(owner, msg.sender, shares)
    erc20._burn(owner, shares)
    assert extcall ASSET.transfer(receiver, assets, default_return_value=True), "vault: transfer failed"
    log IERC4626.Withdraw(sender=msg.sender, receiver=receiver, owner=owner, assets=assets, shares=shares)
