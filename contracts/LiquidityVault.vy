# pragma version 0.4.3
# pragma nonreentrancy on
"""
@title LiquidityVault
@notice ERC-7540 (asynchronous ERC-4626) vault of the collateral token whose
        LPs are the counterparty of every trade at the oracle price. Deposits
        and redemptions are requested (requestDeposit, requestRedeem), priced
        together once per epoch (by settle, or by the next request) once
        every market's feed has a fresh round later than the epoch's last
        request, at the FIRST such round whenever it is priced, and claimed
        (deposit/mint, redeem/withdraw): nobody can deposit or redeem at a
        price they already know or pick (issue 12, decisions 89-91,
        docs/lp-epochs.md). Two
        valuations (docs/solvency.md): redemptions are priced at cash minus
        what winners could claim now, counting no trader loss as an asset
        (engine.traders_gain); deposits at cash minus the net claim, losses
        counted (engine.traders_claim). Both claims are capped at the
        engine's reserve; redemptions are paid only from free cash.
@dev snekmate's erc4626 module reads totalAssets from the token balance and
     cannot be told about open PnL, so the surface is written here over
     snekmate's erc20 (the shares) and math (512-bit mul_div), with the same
     virtual-share formula as snekmate's erc4626:
       shares = assets * (supply + 10**OFFSET) / (total_assets + 1)
     Deposits and redemptions round down, what a claim takes rounds up: the
     vault never gives more than it takes. Requested deposits and settled
     but unclaimed redemptions sit in ESCROW (VaultEscrow.vy), never in the
     vault's cash, which the engine reads for its capacity. Requested
     redemptions' and settled unclaimed deposits' shares sit in the vault's
     own share balance. Views never revert, except the four preview
     functions, which ERC-7540 requires to revert for asynchronous flows.
     model/liquidity_vault.py mirrors every function.
"""

from ethereum.ercs import IERC20
from ethereum.ercs import IERC20Detailed
from ethereum.ercs import IERC4626
from ethereum.ercs import IERC165
from snekmate.auth import ownable
from snekmate.tokens import erc20
from snekmate.utils import math
from interfaces import IEngineValuation

# Not `implements: IERC4626`: deposit and mint take ERC-7540's optional third
# argument (the controller), which Vyper's interface check does not accept as
# deposit(uint256,address); both selectors exist (tests/unit/vault/test_async.py).
implements: IERC165

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
    ownable.owner,
)

# ---------------------------------------------------------------- constants

# Virtual shares: 10**3 per unit of assets on an empty vault (share
# inflation costs an attacker a thousand times what it could steal).
DECIMALS_OFFSET: public(constant(uint256)) = 3
# The settlement fee's cap, in whole tokens (10 USDC on a 6-decimal token).
MAX_SETTLE_FEE_TOKENS: public(constant(uint256)) = 10
# ERC-7540 aggregates every request of a controller under request id 0.
REQUEST_ID: constant(uint256) = 0
MAX_MARKETS: constant(uint256) = 64
# _rounds_after's answers
ROUNDS_IN: constant(uint256) = 0
BAD_PRICE: constant(uint256) = 1
STALE_PRICE: constant(uint256) = 2
NO_LATER_ROUND: constant(uint256) = 3
SEQUENCER_DOWN: constant(uint256) = 4
SEQUENCER_GRACE: constant(uint256) = 5
# contracts/VaultEscrow.vy, compiled (vyper 0.4.3, evm prague).
ESCROW_INITCODE: constant(Bytes[362]) = x"3461013057602061016a5f395f518060a01c6101305760405260405163095ea7b3606052336080527fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff60a052602060606044607c5f855af1610063573d5f5f3e3d5ffd5b3d61007957803b1561013057600160c05261009f565b3d602081183d602010021880606001608011610130576060518060011c6101305760c052505b60c090505161011e5760208061014052601660e0527f657363726f773a20617070726f7665206661696c6564000000000000000000006101005260e08161014001603682825e8051806020830101601f825f03163682375050601f19601f8251602001011690509050810190506308c379a0610120528060040161013cfd5b61000361013461019d3961000361019df35b5f80fd5f5ffd855820f380d631ea2f0a4be2526aa497a383a65151b47ff23f125843e2724524a355a4038000a1657679706572830004030033"

ASSET: immutable(IERC20)
ENGINE: public(immutable(address))
ESCROW: public(immutable(address))
MAX_SETTLE_FEE: public(immutable(uint256))

# ---------------------------------------------------------------- storage

struct Epoch:
    deposit_assets: uint256  # requested
    redeem_shares: uint256  # requested
    last_request: uint256  # block time of its last request
    settled_at: uint256  # block time it was priced; 0 while not
    deposit_shares: uint256  # minted for its deposits (net of the fee)
    redeem_filled: uint256  # shares burned: all, or what free cash paid
    redeem_assets: uint256  # assets set aside for its redemptions (net of the fee)

struct Pending:
    epoch: uint256
    amount: uint256  # assets (deposits) or shares (redemptions)

struct Claim:
    assets: uint256
    shares: uint256

# the open epoch (taking requests) and the closed one waiting for its price (0: none)
epoch: public(uint256)
closing: public(uint256)
_epochs: HashMap[uint256, Epoch]
settle_fee: public(uint256)
isOperator: public(HashMap[address, HashMap[address, bool]])
_deposit_pending: HashMap[address, Pending]
_redeem_pending: HashMap[address, Pending]
_deposit_claim: HashMap[address, Claim]
_redeem_claim: HashMap[address, Claim]
# shares of priced redemptions that free cash did not pay, back to their controller (ERC-7887's claim shape)
_returned: HashMap[address, uint256]

# ---------------------------------------------------------------- events

event DepositRequest:
    controller: indexed(address)
    owner: indexed(address)
    requestId: indexed(uint256)
    sender: address
    assets: uint256

event RedeemRequest:
    controller: indexed(address)
    owner: indexed(address)
    requestId: indexed(uint256)
    sender: address
    shares: uint256

event OperatorSet:
    controller: indexed(address)
    operator: indexed(address)
    approved: bool

event EpochClosed:
    epoch: indexed(uint256)
    last_request: uint256

event EpochSettled:
    epoch: indexed(uint256)
    settler: indexed(address)
    entry_assets: uint256
    exit_assets: uint256
    deposit_assets: uint256
    deposit_shares: uint256
    redeem_shares: uint256
    redeem_filled: uint256
    redeem_assets: uint256
    fee: uint256

event CancelRedeemClaim:
    controller: indexed(address)
    receiver: indexed(address)
    requestId: indexed(uint256)
    sender: address
    shares: uint256

event SettleFeeSet:
    fee: uint256


@deploy
def __init__(asset: IERC20, engine: address):
    """
    @notice The vault of `asset` whose trades are cleared by `engine`; creates
            its escrow (VaultEscrow), which approves it for the whole supply.
    """
    ownable.__init__()
    decimals: uint8 = staticcall IERC20Detailed(asset.address).decimals()
    erc20.__init__("Backstop LP", "BLP", decimals + convert(DECIMALS_OFFSET, uint8), "Backstop LP", "1")
    ASSET = asset
    ENGINE = engine
    ESCROW = raw_create(ESCROW_INITCODE, asset.address)
    MAX_SETTLE_FEE = MAX_SETTLE_FEE_TOKENS * 10 ** convert(decimals, uint256)
    self.epoch = 1


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


# ---------------------------------------------------------------- owner


@external
def set_settle_fee(fee: uint256):
    """
    @notice Owner only: the fee each priced epoch pays its settler, taken
            from the epoch's deposits first, then from its redemptions; at
            most MAX_SETTLE_FEE (MAX_SETTLE_FEE_TOKENS whole tokens).
    """
    ownable._check_owner()
    assert fee <= MAX_SETTLE_FEE, "vault: fee above cap"
    self.settle_fee = fee
    log SettleFeeSet(fee=fee)


@external
def transfer_ownership(new_owner: address):
    """
    @notice Owner only: hand the vault's one owner power (set_settle_fee)
            to `new_owner`, in one step (snekmate ownable). deploy_protocol
            hands it to the timelock; the timelock's own delay then guards
            every later transfer.
    """
    ownable._check_owner()
    assert new_owner != empty(address), "ownable: new owner is the zero address"
    ownable._transfer_ownership(new_owner)


# ---------------------------------------------------------------- ERC-7540 requests


@external
def setOperator(operator: address, approved: bool) -> bool:
    """
    @notice Let `operator` request, claim and settle-claim for msg.sender
            (ERC-7540 operators).
    """
    self.isOperator[msg.sender][operator] = approved
    log OperatorSet(controller=msg.sender, operator=operator, approved=approved)
    return True


@external
def requestDeposit(assets: uint256, controller: address, owner: address) -> uint256:
    """
    @notice Move `assets` from `owner` to the escrow as a deposit request of
            `controller` in the open epoch; it is priced when the epoch
            settles. msg.sender must be `owner` or its operator. Refused while
            the engine cannot value open positions ("vault: no valuation") or
            at the valuation's floor, when `assets` would not buy one share
            at today's deposit valuation ("vault: zero amount"), and while
            the controller's earlier request waits for its price ("vault:
            request pending"). `controller` must be msg.sender, `owner`, or
            have made msg.sender its operator ("vault: not controller",
            decision 91). Epochs whose rounds are in are closed and priced
            first (_advance): a request never joins an epoch whose pricing
            round is published.
    @return 0: requests are aggregated per controller (ERC-7540).
    """
    assert assets > 0, "vault: zero amount"
    assert owner == msg.sender or self.isOperator[owner][msg.sender], "vault: not operator"
    self._check_consent(controller, owner)
    self._advance(False)
    # worth at least one share at today's deposit valuation (share inflation)
    entry: uint256 = self._entry_checked()
    assert math._mul_div(assets, erc20.totalSupply + 10**DECIMALS_OFFSET, entry + 1, False) > 0, "vault: zero amount"
    self._resolve_deposit(controller)
    p: Pending = self._deposit_pending[controller]
    assert p.amount == 0 or p.epoch == self.epoch, "vault: request pending"
    before: uint256 = staticcall ASSET.balanceOf(ESCROW)
    assert extcall ASSET.transferFrom(owner, ESCROW, assets, default_return_value=True), "vault: transfer failed"
    assert staticcall ASSET.balanceOf(ESCROW) - before == assets, "vault: balance mismatch"
    self._deposit_pending[controller] = Pending(epoch=self.epoch, amount=p.amount + assets)
    self._epochs[self.epoch].deposit_assets += assets
    self._epochs[self.epoch].last_request = block.timestamp
    log DepositRequest(controller=controller, owner=owner, requestId=REQUEST_ID, sender=msg.sender, assets=assets)
    return REQUEST_ID


@external
def requestRedeem(shares: uint256, controller: address, owner: address) -> uint256:
    """
    @notice Move `shares` from `owner` to the vault as a redemption request
            of `controller` in the open epoch. msg.sender must be `owner`,
            its operator, or hold an allowance of `owner`'s shares (spent);
            `controller` as for requestDeposit ("vault: not controller").
    @return 0: requests are aggregated per controller (ERC-7540).
    """
    assert shares > 0, "vault: zero amount"
    self._check_consent(controller, owner)
    if owner != msg.sender and not self.isOperator[owner][msg.sender]:
        erc20._spend_allowance(owner, msg.sender, shares)
    self._advance(False)
    self._resolve_redeem(controller)
    p: Pending = self._redeem_pending[controller]
    assert p.amount == 0 or p.epoch == self.epoch, "vault: request pending"
    erc20._transfer(owner, self, shares)
    self._redeem_pending[controller] = Pending(epoch=self.epoch, amount=p.amount + shares)
    self._epochs[self.epoch].redeem_shares += shares
    self._epochs[self.epoch].last_request = block.timestamp
    log RedeemRequest(controller=controller, owner=owner, requestId=REQUEST_ID, sender=msg.sender, shares=shares)
    return REQUEST_ID


@external
def settle() -> uint256:
    """
    @notice Anyone: price the closed epoch once every market's feed has a
            fresh round later than its last request, then close the open
            epoch (and price it at once if its rounds are in too). Reverts
            while any feed is stale or broken, while a market side's gain
            is past its side's reserve ("vault: past cap", decision 94),
            and when there is nothing to do. An epoch is priced at the FIRST round of each market's
            feed later than its last request, whenever settle lands
            (engine.first_round_after walks back from the latest round):
            nobody picks the round by choosing when to settle. Requests
            close and price an epoch whose rounds are in before joining
            one, so no request can move a published pricing round. Deposits
            are priced at the entry valuation, redemptions at the exit
            valuation, both from the state before either moves, at those
            rounds' prices; redemptions are paid up to free cash, the rest
            of each request is cancelled (claimCancelRedeemRequest gives
            its shares back). Whoever prices an epoch (here or in a
            request) earns settle_fee per priced epoch.
    @return The number of epochs priced (0 when it only closed one).
    """
    return self._advance(True)


# ---------------------------------------------------------------- ERC-7540 claims


@external
def deposit(assets: uint256, receiver: address, controller: address = msg.sender) -> uint256:
    """
    @notice Claim: the shares of `assets` of `controller`'s settled deposit
            requests, to `receiver` (rounded down; all of them when `assets`
            is all that is claimable).
    """
    self._check_controller(controller)
    self._resolve_deposit(controller)
    c: Claim = self._deposit_claim[controller]
    shares: uint256 = self._claim_part(assets, c.assets, c.shares, False)
    self._claim_deposit(controller, receiver, assets, shares)
    return shares


@external
def mint(shares: uint256, receiver: address, controller: address = msg.sender) -> uint256:
    """
    @notice Claim exactly `shares` of `controller`'s settled deposit
            requests, to `receiver`; the assets counted rounded up.
    """
    self._check_controller(controller)
    self._resolve_deposit(controller)
    c: Claim = self._deposit_claim[controller]
    assets: uint256 = self._claim_part(shares, c.shares, c.assets, True)
    self._claim_deposit(controller, receiver, assets, shares)
    return assets


@external
def redeem(shares: uint256, receiver: address, controller: address) -> uint256:
    """
    @notice Claim: the assets of `shares` of `controller`'s settled
            redemptions, to `receiver` (rounded down).
    """
    self._check_controller(controller)
    self._resolve_redeem(controller)
    c: Claim = self._redeem_claim[controller]
    assets: uint256 = self._claim_part(shares, c.shares, c.assets, False)
    self._claim_redeem(controller, receiver, assets, shares)
    return assets


@external
def withdraw(assets: uint256, receiver: address, controller: address) -> uint256:
    """
    @notice Claim exactly `assets` of `controller`'s settled redemptions, to
            `receiver`; the shares counted rounded up.
    """
    self._check_controller(controller)
    self._resolve_redeem(controller)
    c: Claim = self._redeem_claim[controller]
    shares: uint256 = self._claim_part(assets, c.assets, c.shares, True)
    self._claim_redeem(controller, receiver, assets, shares)
    return shares


@internal
@pure
def _claim_part(amount: uint256, claimable: uint256, counterpart: uint256, round_up: bool) -> uint256:
    """
    @notice The counterpart (shares of assets, or assets of shares) of
            `amount` out of a claim of `claimable` against `counterpart`:
            all of it when `amount` is the whole claim, else pro rata,
            rounded `round_up` (down when the caller names the input, up
            when it names the output: the vault never gives more than the
            claim's own ratio).
    """
    assert amount > 0, "vault: zero amount"
    assert amount <= claimable, "vault: exceeds claimable"
    if amount == claimable:
        return counterpart
    return math._mul_div(amount, counterpart, claimable, round_up)


@external
def claimCancelRedeemRequest(requestId: uint256, receiver: address, controller: address) -> uint256:
    """
    @notice The shares of `controller`'s priced redemptions that free cash
            did not pay, back to `receiver` (ERC-7887's claim of a cancelled
            redemption: the unpaid part of an epoch's redemptions is
            cancelled, and may be requested again).
    @return The shares sent.
    """
    self._check_controller(controller)
    self._resolve_redeem(controller)
    shares: uint256 = self._returned[controller]
    assert shares > 0, "vault: zero amount"
    self._returned[controller] = 0
    erc20._transfer(self, receiver, shares)
    log CancelRedeemClaim(controller=controller, receiver=receiver, requestId=REQUEST_ID, sender=msg.sender, shares=shares)
    return shares


# ---------------------------------------------------------------- views


@external
@view
def asset() -> address:
    return ASSET.address


@external
@view
def share() -> address:
    """
    @notice ERC-7575: the share token is the vault itself.
    """
    return self


@external
@view
def supportsInterface(interface_id: bytes4) -> bool:
    """
    @notice ERC-165: ERC-165, ERC-7540 operators, ERC-7575, asynchronous
            deposits and asynchronous redemptions.
    """
    return interface_id in [0x01ffc9a7, 0xe3bc4e65, 0x2f0a18c5, 0xce3bbe50, 0x620ee8e4]


@external
@view
def cash() -> uint256:
    """
    @notice Tokens the vault holds (requests and unclaimed redemptions are
            in ESCROW, not here).
    """
    return staticcall ASSET.balanceOf(self)


@external
@view
def totalAssets() -> uint256:
    """
    @notice The redemption (exit) valuation: cash - min(traders_gain,
            reserve), floored at zero.
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
def deposits_open() -> bool:
    """
    @notice Whether requestDeposit is accepted now: the engine can value open
            positions and the deposit valuation is not at its floor.
    """
    return self._deposits_open()


@external
@view
def free_cash() -> uint256:
    """
    @notice Cash not reserved for what winning traders could claim now
            (engine.traders_reserve): the most an epoch's redemptions take.
    """
    return self._free_cash()


@external
@view
def get_epoch(epoch_id: uint256) -> Epoch:
    return self._epochs[epoch_id]


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
def pendingDepositRequest(requestId: uint256, controller: address) -> uint256:
    """
    @notice Assets of `controller`'s deposit requests not priced yet.
    """
    p: Pending = self._deposit_pending[controller]
    if self._epochs[p.epoch].settled_at != 0:
        return 0
    return p.amount


@external
@view
def claimableDepositRequest(requestId: uint256, controller: address) -> uint256:
    """
    @notice Assets of `controller`'s priced deposit requests not claimed yet.
    """
    return self._deposit_claim_now(controller).assets


@external
@view
def pendingRedeemRequest(requestId: uint256, controller: address) -> uint256:
    """
    @notice Shares of `controller`'s redemption requests not priced yet.
    """
    p: Pending = self._redeem_pending[controller]
    if self._epochs[p.epoch].settled_at != 0:
        return 0
    return p.amount


@external
@view
def claimableRedeemRequest(requestId: uint256, controller: address) -> uint256:
    """
    @notice Shares of `controller`'s priced redemptions not claimed yet (the
            part free cash paid; claimableCancelRedeemRequest has the rest).
    """
    c: Claim = empty(Claim)
    returned: uint256 = 0
    c, returned = self._redeem_claim_now(controller)
    return c.shares


@external
@view
def claimableCancelRedeemRequest(requestId: uint256, controller: address) -> uint256:
    """
    @notice Shares of `controller`'s priced redemptions that free cash did
            not pay, for claimCancelRedeemRequest.
    """
    c: Claim = empty(Claim)
    returned: uint256 = 0
    c, returned = self._redeem_claim_now(controller)
    return self._returned[controller] + returned


@external
@view
def maxDeposit(controller: address) -> uint256:
    """
    @notice The most `deposit` claims for `controller`: its claimable assets;
            0 when they come to no share (deposit would revert "vault: zero
            amount", and ERC-4626 says max* must not name an amount that
            reverts).
    """
    c: Claim = self._deposit_claim_now(controller)
    if c.shares == 0:
        return 0
    return c.assets


@external
@view
def maxMint(controller: address) -> uint256:
    return self._deposit_claim_now(controller).shares


@external
@view
def maxWithdraw(controller: address) -> uint256:
    c: Claim = empty(Claim)
    returned: uint256 = 0
    c, returned = self._redeem_claim_now(controller)
    return c.assets


@external
@view
def maxRedeem(controller: address) -> uint256:
    """
    @notice The most `redeem` claims for `controller`: its claimable shares;
            0 when they are worth no asset (redeem would revert "vault: zero
            amount").
    """
    c: Claim = empty(Claim)
    returned: uint256 = 0
    c, returned = self._redeem_claim_now(controller)
    if c.assets == 0:
        return 0
    return c.shares


@external
@view
def previewDeposit(assets: uint256) -> uint256:
    """
    @notice Reverts: ERC-7540 requires it of asynchronous deposits.
    """
    assert False, "vault: async"
    return 0


@external
@view
def previewMint(shares: uint256) -> uint256:
    assert False, "vault: async"
    return 0


@external
@view
def previewWithdraw(assets: uint256) -> uint256:
    assert False, "vault: async"
    return 0


@external
@view
def previewRedeem(shares: uint256) -> uint256:
    assert False, "vault: async"
    return 0


# ---------------------------------------------------------------- internal


@internal
def _advance(strict: bool) -> uint256:
    """
    @notice Price the closed epoch if its rounds are in, then close the open
            epoch if it holds requests and price it if its rounds are in.
            `strict` (settle): a closed epoch that cannot be priced, a
            stale or broken feed, or nothing to do reverts with the reason,
            and the open epoch closes even before its rounds. Not strict
            (a request): the open epoch closes once every market has a
            sound round later than its last request (priced too if those
            are fresh and the sequencer is up); whatever else cannot be
            done now is left as it is.
    """
    priced: uint256 = 0
    closing: uint256 = self.closing
    if closing != 0:
        status: uint256 = self._rounds_after(self._epochs[closing].last_request)
        if strict:
            self._check_status(status)
            assert status != NO_LATER_ROUND, "vault: no later round"
        if status == ROUNDS_IN and self._settle_epoch(closing, strict):
            priced += 1
            closing = 0
    if closing != 0:
        return priced
    open_epoch: uint256 = self.epoch
    e: Epoch = self._epochs[open_epoch]
    if e.deposit_assets != 0 or e.redeem_shares != 0:
        # a stale or broken feed stops the close too; only "no later round" lets settle close it unpriced
        status: uint256 = self._rounds_after(e.last_request)
        if strict:
            self._check_status(status)
        # a request closes it once every market has a sound round later than its last
        # request, fresh or not: later requests cannot move its pricing round
        if strict or status == ROUNDS_IN or self._rounds_later(e.last_request):
            self.closing = open_epoch
            self.epoch = open_epoch + 1
            log EpochClosed(epoch=open_epoch, last_request=e.last_request)
            if status == ROUNDS_IN and self._settle_epoch(open_epoch, strict):
                priced += 1
    else:
        assert not strict or priced != 0, "vault: nothing to settle"
    return priced


@internal
@view
def _check_consent(controller: address, owner: address):
    """
    @notice A request may name as controller only msg.sender, the owner, or
            a controller that made msg.sender its operator (decision 91).
    """
    consent: bool = controller == msg.sender or controller == owner or self.isOperator[controller][msg.sender]
    assert consent, "vault: not controller"


@internal
@view
def _check_controller(controller: address):
    assert controller == msg.sender or self.isOperator[controller][msg.sender], "vault: not operator"


@internal
@view
def _deposit_claim_now(controller: address) -> Claim:
    """
    @notice `controller`'s deposit claim with a priced pending request
            counted in (what _resolve_deposit would store).
    """
    c: Claim = self._deposit_claim[controller]
    p: Pending = self._deposit_pending[controller]
    e: Epoch = self._epochs[p.epoch]
    if p.amount != 0 and e.settled_at != 0:
        c.assets += p.amount
        c.shares += math._mul_div(p.amount, e.deposit_shares, e.deposit_assets, False)
    return c


@internal
@view
def _redeem_claim_now(controller: address) -> (Claim, uint256):
    """
    @notice `controller`'s redemption claim with a priced pending request
            counted in, and the shares of it free cash did not pay (what
            _resolve_redeem would store).
    """
    c: Claim = self._redeem_claim[controller]
    p: Pending = self._redeem_pending[controller]
    e: Epoch = self._epochs[p.epoch]
    if p.amount == 0 or e.settled_at == 0:
        return (c, 0)
    # filled rounds up, so the shares given back never exceed what is left unburned
    filled: uint256 = math._mul_div(p.amount, e.redeem_filled, e.redeem_shares, True)
    c.shares += filled
    c.assets += math._mul_div(p.amount, e.redeem_assets, e.redeem_shares, False)
    return (c, p.amount - filled)


@internal
def _resolve_deposit(controller: address):
    c: Claim = self._deposit_claim_now(controller)
    if self._epochs[self._deposit_pending[controller].epoch].settled_at != 0:
        self._deposit_claim[controller] = c
        self._deposit_pending[controller] = empty(Pending)


@internal
def _resolve_redeem(controller: address):
    c: Claim = empty(Claim)
    returned: uint256 = 0
    c, returned = self._redeem_claim_now(controller)
    if self._epochs[self._redeem_pending[controller].epoch].settled_at != 0:
        self._redeem_claim[controller] = c
        self._redeem_pending[controller] = empty(Pending)
        self._returned[controller] += returned


@internal
def _claim_deposit(controller: address, receiver: address, assets: uint256, shares: uint256):
    assert shares > 0, "vault: zero amount"
    c: Claim = self._deposit_claim[controller]
    self._deposit_claim[controller] = Claim(assets=c.assets - assets, shares=c.shares - shares)
    erc20._transfer(self, receiver, shares)
    log IERC4626.Deposit(sender=controller, owner=receiver, assets=assets, shares=shares)


@internal
def _claim_redeem(controller: address, receiver: address, assets: uint256, shares: uint256):
    assert assets > 0, "vault: zero amount"
    c: Claim = self._redeem_claim[controller]
    self._redeem_claim[controller] = Claim(assets=c.assets - assets, shares=c.shares - shares)
    assert extcall ASSET.transferFrom(ESCROW, receiver, assets, default_return_value=True), "vault: transfer failed"
    log IERC4626.Withdraw(sender=msg.sender, receiver=receiver, owner=controller, assets=assets, shares=shares)


@internal
@view
def _rounds_after(t: uint256) -> uint256:
    """
    @notice ROUNDS_IN when the sequencer gate is open (no sequencer-uptime
            feed, or up past its grace period) and every market prices from
            a fresh, sound round later than `t`, read as the engine reads
            it (engine.oracle_round: the primary feed, or its fallback while
            the primary is down); else why not (the sequencer first, then
            the first market's reason).
    """
    seq: uint256 = staticcall IEngineValuation(ENGINE).sequencer_status()
    if seq == 1:
        return SEQUENCER_DOWN
    if seq == 2:
        return SEQUENCER_GRACE
    n: uint256 = staticcall IEngineValuation(ENGINE).market_count()
    for mid: uint256 in range(MAX_MARKETS):
        if mid >= n:
            break
        price: uint256 = 0
        updated: uint256 = 0
        max_age: uint256 = 0
        (price, updated, max_age) = staticcall IEngineValuation(ENGINE).oracle_round(mid)
        if price == 0:
            return BAD_PRICE
        if block.timestamp - updated > max_age:
            return STALE_PRICE
        if updated <= t:
            return NO_LATER_ROUND
    return ROUNDS_IN


@internal
@view
def _rounds_later(t: uint256) -> bool:
    """
    @notice Whether every market prices from a sound round later than `t`,
            fresh or not, whatever the sequencer (engine.oracle_round).
    """
    n: uint256 = staticcall IEngineValuation(ENGINE).market_count()
    for mid: uint256 in range(MAX_MARKETS):
        if mid >= n:
            break
        price: uint256 = 0
        updated: uint256 = 0
        max_age: uint256 = 0
        (price, updated, max_age) = staticcall IEngineValuation(ENGINE).oracle_round(mid)
        if price == 0 or updated <= t:
            return False
    return True


@internal
@pure
def _check_status(status: uint256):
    """
    @notice What stops an epoch from closing or being priced, whatever its
            rounds: a sequencer outage or its grace period, a broken or a
            stale price.
    """
    assert status != SEQUENCER_DOWN, "vault: sequencer down"
    assert status != SEQUENCER_GRACE, "vault: sequencer grace"
    assert status != BAD_PRICE, "vault: bad price"
    assert status != STALE_PRICE, "vault: stale price"


@internal
def _settle_epoch(epoch_id: uint256, strict: bool) -> bool:
    """
    @notice Price epoch `epoch_id` from the state before any of it moves;
            False (nothing written) while some market side's gain exceeds
            its side's reserve, where zero-PnL positions would move both
            valuations (decision 94): the epoch waits, and settle
            (`strict`) reverts "vault: past cap".
    """
    e: Epoch = self._epochs[epoch_id]
    supply: uint256 = erc20.totalSupply
    # every market at the first round later than the epoch's last request
    prices: DynArray[uint256, MAX_MARKETS] = []
    n: uint256 = staticcall IEngineValuation(ENGINE).market_count()
    for mid: uint256 in range(MAX_MARKETS):
        if mid >= n:
            break
        price: uint256 = 0
        updated: uint256 = 0
        price, updated = staticcall IEngineValuation(ENGINE).first_round_after(mid, e.last_request)
        assert price != 0, "vault: bad price"
        prices.append(price)
    claim: int256 = 0
    gain: uint256 = 0
    past: bool = False
    claim, gain, past = staticcall IEngineValuation(ENGINE).valuation_at(prices)
    if past:
        assert not strict, "vault: past cap"
        return False
    cash: uint256 = staticcall ASSET.balanceOf(self)
    exit_assets: uint256 = cash - min(cash, gain)
    entry: uint256 = 0
    fee_in: uint256 = min(self.settle_fee, e.deposit_assets)
    net_in: uint256 = e.deposit_assets - fee_in
    if e.deposit_assets != 0:
        entry = self._entry_of(cash, claim)
        assert entry > 0 or supply == 0, "vault: valuation at floor"
        e.deposit_shares = math._mul_div(net_in, supply + 10**DECIMALS_OFFSET, entry + 1, False)
    free: uint256 = self._free_cash() + net_in
    paid: uint256 = math._mul_div(e.redeem_shares, exit_assets + 1, supply + 10**DECIMALS_OFFSET, False)
    e.redeem_filled = e.redeem_shares
    if paid > free:
        # pay what free cash allows; burn the shares that buys, rounded up
        paid = free
        e.redeem_filled = math._mul_div(free, supply + 10**DECIMALS_OFFSET, exit_assets + 1, True)
    fee_out: uint256 = min(self.settle_fee - fee_in, paid)
    e.redeem_assets = paid - fee_out
    e.settled_at = block.timestamp
    self._epochs[epoch_id] = e
    self.closing = 0
    if net_in != 0:
        assert extcall ASSET.transferFrom(ESCROW, self, net_in, default_return_value=True), "vault: transfer failed"
    if e.redeem_assets != 0:
        assert extcall ASSET.transfer(ESCROW, e.redeem_assets, default_return_value=True), "vault: transfer failed"
    if fee_in != 0:
        assert extcall ASSET.transferFrom(ESCROW, msg.sender, fee_in, default_return_value=True), "vault: transfer failed"
    if fee_out != 0:
        assert extcall ASSET.transfer(msg.sender, fee_out, default_return_value=True), "vault: transfer failed"
    if e.deposit_shares != 0:
        erc20._mint(self, e.deposit_shares)
    if e.redeem_filled != 0:
        erc20._burn(self, e.redeem_filled)
    log EpochSettled(
        epoch=epoch_id, settler=msg.sender, entry_assets=entry, exit_assets=exit_assets,
        deposit_assets=e.deposit_assets, deposit_shares=e.deposit_shares, redeem_shares=e.redeem_shares,
        redeem_filled=e.redeem_filled, redeem_assets=e.redeem_assets, fee=fee_in + fee_out
    )
    return True


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
    return (True, self._entry_of(cash, claim))


@internal
@view
def _entry_of(cash: uint256, claim: int256) -> uint256:
    """
    @notice The deposit valuation of `cash` against a net trader `claim`.
    """
    if claim < 0:
        # a net trader loss: cash + |claim|, saturating
        loss: uint256 = convert(-(claim + 1), uint256) + 1
        return cash + min(loss, max_value(uint256) - cash)
    reserve: uint256 = staticcall IEngineValuation(ENGINE).traders_reserve()
    return cash - min(cash, min(convert(claim, uint256), reserve))


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
