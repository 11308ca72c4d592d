"""Mirror of contracts/LiquidityVault.vy: an ERC-7540 (asynchronous
ERC-4626) vault. Deposits and redemptions are requested, priced once per
epoch at the first round of every market's feed later than the epoch's last
request, once those rounds are in and fresh (by `settle`, or by the next
request: decisions 89-90) (deposits at cash - min(traders_claim, reserve),
redemptions at cash - min(traders_gain, reserve), redemptions paid up to
free cash), and claimed; snekmate's virtual-share formula. Requested
deposits and unclaimed redemptions sit in the escrow (VaultEscrow.vy), never
in the vault's cash."""

from dataclasses import dataclass, field

from model import positions as P
from model.fixed_point import MAX_UINT256, Revert, check, mul_div_down, mul_div_up

DECIMALS_OFFSET = 3
MAX_SETTLE_FEE_TOKENS = 10
REQUEST_ID = 0
MAX_MARKETS = 64  # the engine's positions.MAX_MARKETS: the feeds settle reads
# rounds_after's answers
ROUNDS_IN, BAD_PRICE, STALE_PRICE, NO_LATER_ROUND = 0, 1, 2, 3
SEQUENCER_DOWN, SEQUENCER_GRACE = 4, 5
ZERO = "0x" + "00" * 20


@dataclass
class Epoch:
    """LiquidityVault.Epoch"""
    deposit_assets: int = 0
    redeem_shares: int = 0
    last_request: int = 0
    settled_at: int = 0
    deposit_shares: int = 0
    redeem_filled: int = 0
    redeem_assets: int = 0
    priced_rounds: list = field(default_factory=list)  # model only: each market's round (updatedAt) it was priced at


@dataclass
class VaultState:
    total_supply: int = 0
    balances: dict = field(default_factory=dict)
    allowances: dict = field(default_factory=dict)
    escrow: str = ""  # ESCROW: the address the contract created; a name of its own in a model-only world
    epoch: int = 1
    closing: int = 0
    epochs: dict = field(default_factory=dict)  # id -> Epoch
    settle_fee: int = 0
    owner: str = ""  # ownable.owner: the deployer
    operators: dict = field(default_factory=dict)  # (controller, operator) -> bool
    deposit_pending: dict = field(default_factory=dict)  # controller -> (epoch, assets)
    redeem_pending: dict = field(default_factory=dict)  # controller -> (epoch, shares)
    deposit_claim: dict = field(default_factory=dict)  # controller -> (assets, shares)
    redeem_claim: dict = field(default_factory=dict)  # controller -> (assets, shares)
    returned: dict = field(default_factory=dict)  # controller -> shares free cash did not pay


def escrow(w):
    """LiquidityVault.ESCROW"""
    return w.v.escrow or w.vault_address + ":escrow"


def get_epoch(w, epoch_id):
    """LiquidityVault.get_epoch"""
    return w.v.epochs.get(epoch_id, Epoch())


def max_settle_fee(w):
    """LiquidityVault.MAX_SETTLE_FEE"""
    return MAX_SETTLE_FEE_TOKENS * 10**w.token.decimals


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
    return True, _entry_of(w, c, claim)


def _entry_of(w, c, claim):
    """LiquidityVault._entry_of: the deposit valuation of cash c against a net claim"""
    from model.perp_engine import traders_reserve
    if claim < 0:
        return min(c - claim, MAX_UINT256)
    return c - min(c, min(claim, traders_reserve(w)))


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


def pay(w, amount):
    """LiquidityVault.pay (engine only)"""
    check(w.caller == w.engine_address, "vault: only engine")
    check(amount <= cash(w), "vault: insufficient cash")
    w.token.transfer(w.vault_address, w.engine_address, amount)


# ---------------------------------------------------------------- owner


def set_settle_fee(w, fee):
    """LiquidityVault.set_settle_fee"""
    check(w.sender == w.v.owner, "ownable: caller is not the owner")
    check(fee <= max_settle_fee(w), "vault: fee above cap")
    w.v.settle_fee = fee
    w.log("SettleFeeSet", fee=fee)


def transfer_ownership(w, new_owner):
    """LiquidityVault.transfer_ownership (snekmate ownable, one step)"""
    check(w.sender == w.v.owner, "ownable: caller is not the owner")
    check(new_owner != ZERO, "ownable: new owner is the zero address")
    previous, w.v.owner = w.v.owner, new_owner
    w.log("OwnershipTransferred", previous_owner=previous, new_owner=new_owner)


# ---------------------------------------------------------------- ERC-7540 requests


def setOperator(w, operator, approved):
    """LiquidityVault.setOperator"""
    w.v.operators[(w.sender, operator)] = bool(approved)
    w.log("OperatorSet", controller=w.sender, operator=operator, approved=bool(approved))
    return True


def is_operator(w, controller, operator):
    """LiquidityVault.isOperator"""
    return w.v.operators.get((controller, operator), False)


def requestDeposit(w, assets, controller, owner):
    """LiquidityVault.requestDeposit"""
    check(assets > 0, "vault: zero amount")
    check(owner == w.sender or is_operator(w, owner, w.sender), "vault: not operator")
    _check_consent(w, controller, owner)
    _advance(w, False)
    entry = _entry_checked(w)
    check(mul_div_down(assets, w.v.total_supply + 10**DECIMALS_OFFSET, entry + 1) > 0, "vault: zero amount")
    _resolve_deposit(w, controller)
    ep, amount = w.v.deposit_pending.get(controller, (0, 0))
    check(amount == 0 or ep == w.v.epoch, "vault: request pending")
    w.token.transfer_from(w.vault_address, owner, escrow(w), assets)
    w.v.deposit_pending[controller] = (w.v.epoch, amount + assets)
    e = _epoch_for_write(w, w.v.epoch)
    e.deposit_assets += assets
    e.last_request = w.now
    w.log("DepositRequest", controller=controller, owner=owner, requestId=REQUEST_ID, sender=w.sender, assets=assets)
    return REQUEST_ID


def requestRedeem(w, shares, controller, owner):
    """LiquidityVault.requestRedeem"""
    check(shares > 0, "vault: zero amount")
    _check_consent(w, controller, owner)
    if owner != w.sender and not is_operator(w, owner, w.sender):
        _spend_allowance(w, owner, w.sender, shares)
    _advance(w, False)
    _resolve_redeem(w, controller)
    ep, amount = w.v.redeem_pending.get(controller, (0, 0))
    check(amount == 0 or ep == w.v.epoch, "vault: request pending")
    _transfer_shares(w, owner, w.vault_address, shares)
    w.v.redeem_pending[controller] = (w.v.epoch, amount + shares)
    e = _epoch_for_write(w, w.v.epoch)
    e.redeem_shares += shares
    e.last_request = w.now
    w.log("RedeemRequest", controller=controller, owner=owner, requestId=REQUEST_ID, sender=w.sender, shares=shares)
    return REQUEST_ID


def settle(w):
    """LiquidityVault.settle: the number of epochs priced"""
    return _advance(w, True)


def _advance(w, strict):
    """LiquidityVault._advance: price the closed epoch if its rounds are in,
    then close (strict: always; else only once its rounds are in) and price
    the open one"""
    priced = 0
    closing = w.v.closing
    if closing != 0:
        status = rounds_after(w, get_epoch(w, closing).last_request)
        if strict:
            _check_status(status)
            check(status != NO_LATER_ROUND, "vault: no later round")
        if status == ROUNDS_IN and _settle_epoch(w, closing, strict):
            priced += 1
            closing = 0
    if closing != 0:
        return priced
    open_epoch = w.v.epoch
    e = get_epoch(w, open_epoch)
    if e.deposit_assets != 0 or e.redeem_shares != 0:
        status = rounds_after(w, e.last_request)
        if strict:
            _check_status(status)
        if strict or status == ROUNDS_IN or _rounds_later(w, e.last_request):
            w.v.closing = open_epoch
            w.v.epoch = open_epoch + 1
            w.log("EpochClosed", epoch=open_epoch, last_request=e.last_request)
            if status == ROUNDS_IN and _settle_epoch(w, open_epoch, strict):
                priced += 1
    else:
        check(not strict or priced != 0, "vault: nothing to settle")
    return priced


def _check_consent(w, controller, owner):
    """LiquidityVault._check_consent"""
    check(controller == w.sender or controller == owner or is_operator(w, controller, w.sender),
          "vault: not controller")


# ---------------------------------------------------------------- ERC-7540 claims


def deposit(w, assets, receiver, controller=None):
    """LiquidityVault.deposit (controller defaults to msg.sender)"""
    controller = w.sender if controller is None else controller
    _check_controller(w, controller)
    _resolve_deposit(w, controller)
    c_assets, c_shares = w.v.deposit_claim.get(controller, (0, 0))
    shares = _claim_part(assets, c_assets, c_shares, False)
    _claim_deposit(w, controller, receiver, assets, shares)
    return shares


def mint(w, shares, receiver, controller=None):
    """LiquidityVault.mint (controller defaults to msg.sender)"""
    controller = w.sender if controller is None else controller
    _check_controller(w, controller)
    _resolve_deposit(w, controller)
    c_assets, c_shares = w.v.deposit_claim.get(controller, (0, 0))
    assets = _claim_part(shares, c_shares, c_assets, True)
    _claim_deposit(w, controller, receiver, assets, shares)
    return assets


def redeem(w, shares, receiver, controller):
    """LiquidityVault.redeem"""
    _check_controller(w, controller)
    _resolve_redeem(w, controller)
    c_assets, c_shares = w.v.redeem_claim.get(controller, (0, 0))
    assets = _claim_part(shares, c_shares, c_assets, False)
    _claim_redeem(w, controller, receiver, assets, shares)
    return assets


def withdraw(w, assets, receiver, controller):
    """LiquidityVault.withdraw"""
    _check_controller(w, controller)
    _resolve_redeem(w, controller)
    c_assets, c_shares = w.v.redeem_claim.get(controller, (0, 0))
    shares = _claim_part(assets, c_assets, c_shares, True)
    _claim_redeem(w, controller, receiver, assets, shares)
    return shares


def _claim_part(amount, claimable, counterpart, round_up):
    """LiquidityVault._claim_part"""
    check(amount > 0, "vault: zero amount")
    check(amount <= claimable, "vault: exceeds claimable")
    if amount == claimable:
        return counterpart
    return (mul_div_up if round_up else mul_div_down)(amount, counterpart, claimable)


def claimCancelRedeemRequest(w, request_id, receiver, controller):
    """LiquidityVault.claimCancelRedeemRequest"""
    _check_controller(w, controller)
    _resolve_redeem(w, controller)
    shares = w.v.returned.get(controller, 0)
    check(shares > 0, "vault: zero amount")
    w.v.returned[controller] = 0
    _transfer_shares(w, w.vault_address, receiver, shares)
    w.log("CancelRedeemClaim", controller=controller, receiver=receiver, requestId=REQUEST_ID, sender=w.sender,
          shares=shares)
    return shares


# ---------------------------------------------------------------- views


def claimable_returned(w, controller):
    """LiquidityVault.claimableCancelRedeemRequest"""
    return w.v.returned.get(controller, 0) + redeem_claim_now(w, controller)[1]


def pending_deposit(w, controller):
    """LiquidityVault.pendingDepositRequest"""
    ep, amount = w.v.deposit_pending.get(controller, (0, 0))
    return 0 if get_epoch(w, ep).settled_at != 0 else amount


def pending_redeem(w, controller):
    """LiquidityVault.pendingRedeemRequest"""
    ep, amount = w.v.redeem_pending.get(controller, (0, 0))
    return 0 if get_epoch(w, ep).settled_at != 0 else amount


def claimable_deposit(w, controller):
    """LiquidityVault.claimableDepositRequest (maxDeposit): assets"""
    return deposit_claim_now(w, controller)[0]


def claimable_deposit_shares(w, controller):
    """LiquidityVault.maxMint"""
    return deposit_claim_now(w, controller)[1]


def claimable_redeem(w, controller):
    """LiquidityVault.claimableRedeemRequest (maxRedeem): shares"""
    return redeem_claim_now(w, controller)[0][1]


def claimable_redeem_assets(w, controller):
    """LiquidityVault.maxWithdraw"""
    return redeem_claim_now(w, controller)[0][0]


def max_deposit(w, controller):
    """LiquidityVault.maxDeposit"""
    assets, shares = deposit_claim_now(w, controller)
    return 0 if shares == 0 else assets


def max_withdraw(w, controller):
    """LiquidityVault.maxWithdraw"""
    return claimable_redeem_assets(w, controller)


def max_redeem(w, controller):
    """LiquidityVault.maxRedeem"""
    (assets, shares), _ = redeem_claim_now(w, controller)
    return 0 if assets == 0 else shares


def deposit_claim_now(w, controller):
    """LiquidityVault._deposit_claim_now: (assets, shares)"""
    assets, shares = w.v.deposit_claim.get(controller, (0, 0))
    ep, amount = w.v.deposit_pending.get(controller, (0, 0))
    e = get_epoch(w, ep)
    if amount != 0 and e.settled_at != 0:
        assets += amount
        shares += mul_div_down(amount, e.deposit_shares, e.deposit_assets)
    return assets, shares


def redeem_claim_now(w, controller):
    """LiquidityVault._redeem_claim_now: ((assets, shares), shares given back)"""
    assets, shares = w.v.redeem_claim.get(controller, (0, 0))
    ep, amount = w.v.redeem_pending.get(controller, (0, 0))
    e = get_epoch(w, ep)
    if amount == 0 or e.settled_at == 0:
        return (assets, shares), 0
    filled = mul_div_up(amount, e.redeem_filled, e.redeem_shares)
    shares += filled
    assets += mul_div_down(amount, e.redeem_assets, e.redeem_shares)
    return (assets, shares), amount - filled


def rounds_after(w, t):
    """LiquidityVault._rounds_after: ROUNDS_IN when the sequencer gate is
    open and every market prices from a fresh, sound round later than t
    (engine.oracle_round: primary or fallback); else why not"""
    seq = P._sequencer_status(w)
    if seq == P.SEQUENCER_DOWN:
        return SEQUENCER_DOWN
    if seq == P.SEQUENCER_GRACE:
        return SEQUENCER_GRACE
    for mid in range(w.e.market_count):
        price, updated, max_age = P._oracle_round(w, mid)
        if price == 0:
            return BAD_PRICE
        if w.now - updated > max_age:
            return STALE_PRICE
        if updated <= t:
            return NO_LATER_ROUND
    return ROUNDS_IN


def _rounds_later(w, t):
    """LiquidityVault._rounds_later: every market prices from a sound round
    later than t, fresh or not, whatever the sequencer"""
    for mid in range(w.e.market_count):
        price, updated, _ = P._oracle_round(w, mid)
        if price == 0 or updated <= t:
            return False
    return True


def _check_status(status):
    """LiquidityVault._check_status"""
    check(status != SEQUENCER_DOWN, "vault: sequencer down")
    check(status != SEQUENCER_GRACE, "vault: sequencer grace")
    check(status != BAD_PRICE, "vault: bad price")
    check(status != STALE_PRICE, "vault: stale price")


# ---------------------------------------------------------------- internal


def _epoch_for_write(w, epoch_id):
    e = w.v.epochs.get(epoch_id)
    if e is None:
        e = w.v.epochs[epoch_id] = Epoch()
    return e


def _check_controller(w, controller):
    """LiquidityVault._check_controller"""
    check(controller == w.sender or is_operator(w, controller, w.sender), "vault: not operator")


def _resolve_deposit(w, controller):
    """LiquidityVault._resolve_deposit"""
    c = deposit_claim_now(w, controller)
    ep, _ = w.v.deposit_pending.get(controller, (0, 0))
    if get_epoch(w, ep).settled_at != 0:
        w.v.deposit_claim[controller] = c
        w.v.deposit_pending.pop(controller, None)


def _resolve_redeem(w, controller):
    """LiquidityVault._resolve_redeem"""
    c, returned = redeem_claim_now(w, controller)
    ep, _ = w.v.redeem_pending.get(controller, (0, 0))
    if get_epoch(w, ep).settled_at != 0:
        w.v.redeem_claim[controller] = c
        w.v.redeem_pending.pop(controller, None)
        w.v.returned[controller] = w.v.returned.get(controller, 0) + returned


def _claim_deposit(w, controller, receiver, assets, shares):
    """LiquidityVault._claim_deposit"""
    check(shares > 0, "vault: zero amount")
    c_assets, c_shares = w.v.deposit_claim.get(controller, (0, 0))
    w.v.deposit_claim[controller] = (c_assets - assets, c_shares - shares)
    _transfer_shares(w, w.vault_address, receiver, shares)
    w.log("Deposit", sender=controller, owner=receiver, assets=assets, shares=shares)


def _claim_redeem(w, controller, receiver, assets, shares):
    """LiquidityVault._claim_redeem"""
    check(assets > 0, "vault: zero amount")
    c_assets, c_shares = w.v.redeem_claim.get(controller, (0, 0))
    w.v.redeem_claim[controller] = (c_assets - assets, c_shares - shares)
    w.token.transfer(escrow(w), receiver, assets)  # the escrow's max allowance to the vault never runs down
    w.log("Withdraw", sender=w.sender, receiver=receiver, owner=controller, assets=assets, shares=shares)


def _settle_epoch(w, epoch_id, strict):
    """LiquidityVault._settle_epoch: False (nothing written) while a side is
    past its cap (strict: reverts "vault: past cap")"""
    from model.perp_engine import first_round_after, valuation_at
    e = get_epoch(w, epoch_id)
    supply = w.v.total_supply
    # every market at the first round later than the epoch's last request
    prices, rounds = [], []
    for mid in range(w.e.market_count):
        price, updated = first_round_after(w, mid, e.last_request)
        check(price != 0, "vault: bad price")
        prices.append(price)
        rounds.append(updated)
    claim, gain, past = valuation_at(w, prices)
    if past:
        check(not strict, "vault: past cap")
        return False
    e = _epoch_for_write(w, epoch_id)
    e.priced_rounds = rounds  # model only: the machine's issue 12 invariant reads it
    c = cash(w)
    exit_assets = c - min(c, gain)
    entry = 0
    fee_in = min(w.v.settle_fee, e.deposit_assets)
    net_in = e.deposit_assets - fee_in
    if e.deposit_assets != 0:
        entry = _entry_of(w, c, claim)
        check(entry > 0 or supply == 0, "vault: valuation at floor")
        e.deposit_shares = mul_div_down(net_in, supply + 10**DECIMALS_OFFSET, entry + 1)
    free = free_cash(w) + net_in
    paid = mul_div_down(e.redeem_shares, exit_assets + 1, supply + 10**DECIMALS_OFFSET)
    e.redeem_filled = e.redeem_shares
    if paid > free:
        paid = free
        e.redeem_filled = mul_div_up(free, supply + 10**DECIMALS_OFFSET, exit_assets + 1)
    fee_out = min(w.v.settle_fee - fee_in, paid)
    e.redeem_assets = paid - fee_out
    e.settled_at = w.now
    w.v.closing = 0
    esc = escrow(w)
    if net_in != 0:
        w.token.transfer(esc, w.vault_address, net_in)  # transferFrom under the escrow's max allowance
    if e.redeem_assets != 0:
        w.token.transfer(w.vault_address, esc, e.redeem_assets)
    if fee_in != 0:
        w.token.transfer(esc, w.sender, fee_in)
    if fee_out != 0:
        w.token.transfer(w.vault_address, w.sender, fee_out)
    if e.deposit_shares != 0:
        w.v.total_supply += e.deposit_shares
        w.v.balances[w.vault_address] = w.v.balances.get(w.vault_address, 0) + e.deposit_shares
    if e.redeem_filled != 0:
        check(w.v.balances.get(w.vault_address, 0) >= e.redeem_filled, "erc20: burn amount exceeds balance")
        w.v.balances[w.vault_address] -= e.redeem_filled
        w.v.total_supply -= e.redeem_filled
    w.log("EpochSettled", epoch=epoch_id, settler=w.sender, entry_assets=entry, exit_assets=exit_assets,
          deposit_assets=e.deposit_assets, deposit_shares=e.deposit_shares, redeem_shares=e.redeem_shares,
          redeem_filled=e.redeem_filled, redeem_assets=e.redeem_assets, fee=fee_in + fee_out)
    return True


def _spend_allowance(w, owner, spender, amount):
    """snekmate erc20._spend_allowance"""
    current = w.v.allowances.get((owner, spender), 0)
    if current < MAX_UINT256:
        check(current >= amount, "erc20: insufficient allowance")
        w.v.allowances[(owner, spender)] = current - amount


def _transfer_shares(w, frm, to, amount):
    """snekmate erc20._transfer, on the shares"""
    check(frm != ZERO, "erc20: transfer from the zero address")
    check(to != ZERO, "erc20: transfer to the zero address")
    check(w.v.balances.get(frm, 0) >= amount, "erc20: transfer amount exceeds balance")
    w.v.balances[frm] = w.v.balances.get(frm, 0) - amount
    w.v.balances[to] = w.v.balances.get(to, 0) + amount
