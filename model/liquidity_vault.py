"""Mirror of contracts/LiquidityVault.vy: ERC-4626 shares over cash minus
what traders could claim, snekmate's virtual-share formula; redemptions at
cash - min(traders_gain, reserve), deposits at cash - min(traders_claim,
reserve)."""

from dataclasses import dataclass, field

from model.fixed_point import MAX_UINT256, Revert, check, mul_div_down, mul_div_up

DECIMALS_OFFSET = 3
ZERO = "0x" + "00" * 20


@dataclass
class VaultState:
    total_supply: int = 0
    balances: dict = field(default_factory=dict)
    allowances: dict = field(default_factory=dict)


def cash(w):
    """LiquidityVault.cash"""
    return w.token.balance_of(w.vault_address)


def _engine_view(w, view):
    """LiquidityVault._engine_uint: (ok, value); a revert is (False, 0)"""
    try:
        return True, view(w)
    except Revert:
        return False, 0


def total_assets(w):
    """LiquidityVault._total_assets"""
    from model.perp_engine import traders_gain, traders_reserve
    c, reserve = cash(w), traders_reserve(w)
    ok, gain = _engine_view(w, traders_gain)
    if not ok:
        gain = reserve
    return c - min(c, min(gain, reserve))


def entry_assets(w):
    """LiquidityVault._entry_assets: (ok, the deposit valuation)"""
    from model.perp_engine import traders_claim, traders_reserve
    c = cash(w)
    ok, claim = _engine_view(w, traders_claim)
    if not ok:
        return False, 0
    if claim < 0:
        return True, min(c - claim, MAX_UINT256)
    return True, c - min(c, min(claim, traders_reserve(w)))


def _entry_checked(w):
    """LiquidityVault._entry_checked"""
    ok, assets = entry_assets(w)
    check(ok, "vault: no valuation")
    check(assets > 0 or w.v.total_supply == 0, "vault: valuation at floor")
    return assets


def deposits_open(w):
    """LiquidityVault._deposits_open (maxDeposit, maxMint: MAX_UINT256 or 0)"""
    ok, assets = entry_assets(w)
    return ok and (assets > 0 or w.v.total_supply == 0)


def shares_in(w, assets, total):
    """LiquidityVault._shares_in"""
    return mul_div_down(assets, w.v.total_supply + 10**DECIMALS_OFFSET, total + 1)


def assets_in(w, shares, total):
    """LiquidityVault._assets_in"""
    return mul_div_up(shares, total + 1, w.v.total_supply + 10**DECIMALS_OFFSET)


def free_cash(w):
    """LiquidityVault._free_cash"""
    from model.perp_engine import traders_reserve
    c = cash(w)
    return c - min(c, traders_reserve(w))


def _mul_div(x, y, d, up):
    return mul_div_up(x, y, d) if up else mul_div_down(x, y, d)


def to_shares(w, assets, up):
    """LiquidityVault._to_shares"""
    return _mul_div(assets, w.v.total_supply + 10**DECIMALS_OFFSET, total_assets(w) + 1, up)


def to_assets(w, shares, up):
    """LiquidityVault._to_assets"""
    return _mul_div(shares, total_assets(w) + 1, w.v.total_supply + 10**DECIMALS_OFFSET, up)


def max_withdraw(w, owner):
    """LiquidityVault.maxWithdraw"""
    return min(to_assets(w, w.v.balances.get(owner, 0), False), free_cash(w))


def max_redeem(w, owner):
    """LiquidityVault.maxRedeem"""
    shares = min(w.v.balances.get(owner, 0), to_shares(w, free_cash(w), False))
    if to_assets(w, shares, False) == 0:
        return 0
    return shares


def deposit(w, assets, receiver):
    """LiquidityVault.deposit"""
    shares = shares_in(w, assets, _entry_checked(w))
    _deposit(w, receiver, assets, shares)
    return shares


def mint(w, shares, receiver):
    """LiquidityVault.mint"""
    assets = assets_in(w, shares, _entry_checked(w))
    _deposit(w, receiver, assets, shares)
    return assets


def withdraw(w, assets, receiver, owner):
    """LiquidityVault.withdraw"""
    check(assets <= free_cash(w), "vault: exceeds free cash")
    shares = to_shares(w, assets, True)
    _withdraw(w, receiver, owner, assets, shares)
    return shares


def redeem(w, shares, receiver, owner):
    """LiquidityVault.redeem"""
    assets = to_assets(w, shares, False)
    check(assets <= free_cash(w), "vault: exceeds free cash")
    _withdraw(w, receiver, owner, assets, shares)
    return assets


def pay(w, amount):
    """LiquidityVault.pay (engine only)"""
    check(w.caller == w.engine_address, "vault: only engine")
    check(amount <= cash(w), "vault: insufficient cash")
    w.token.transfer(w.vault_address, w.engine_address, amount)


def _deposit(w, receiver, assets, shares):
    """LiquidityVault._deposit"""
    check(assets > 0 and shares > 0, "vault: zero amount")
    w.token.transfer_from(w.vault_address, w.sender, w.vault_address, assets)
    check(receiver != ZERO, "erc20: mint to the zero address")
    w.v.total_supply += shares
    w.v.balances[receiver] = w.v.balances.get(receiver, 0) + shares
    w.log("Deposit", sender=w.sender, owner=receiver, assets=assets, shares=shares)


def _withdraw(w, receiver, owner, assets, shares):
    """LiquidityVault._withdraw"""
    check(assets > 0 and shares > 0, "vault: zero amount")
    if w.sender != owner:
        current = w.v.allowances.get((owner, w.sender), 0)
        if current < MAX_UINT256:
            check(current >= shares, "erc20: insufficient allowance")
            w.v.allowances[(owner, w.sender)] = current - shares
    check(owner != ZERO, "erc20: burn from the zero address")
    check(w.v.balances.get(owner, 0) >= shares, "erc20: burn amount exceeds balance")
    w.v.balances[owner] -= shares
    w.v.total_supply -= shares
    w.token.transfer(w.vault_address, receiver, assets)
    w.log("Withdraw", sender=w.sender, receiver=receiver, owner=owner, assets=assets, shares=shares)
