# pragma version 0.4.3
# pragma nonreentrancy on
"""
@title InsuranceFund
@notice Holds collateral fed by a share of trading fees and liquidation
        penalties; pays bad debt to the liquidity vault. Only the engine may
        draw on it. The owner may withdraw only a surplus above `floor`.
"""

from ethereum.ercs import IERC20
from snekmate.auth import ownable
from snekmate.auth import ownable_2step

initializes: ownable
initializes: ownable_2step[ownable := ownable]

exports: (
    ownable_2step.owner,
    ownable_2step.pending_owner,
)

event Covered:
    receiver: indexed(address)
    amount: uint256

event SurplusWithdrawn:
    receiver: indexed(address)
    amount: uint256

event FloorSet:
    floor: uint256

ASSET: public(immutable(IERC20))
ENGINE: public(immutable(address))

balance_floor: public(uint256)


@deploy
def __init__(asset: IERC20, engine: address):
    ownable.__init__()
    ownable_2step.__init__()
    ASSET = asset
    ENGINE = engine


@external
def transfer_ownership(new_owner: address):
    """
    @notice Start a two-step ownership transfer (snekmate ownable_2step),
            under this contract's reentrancy lock: exported module functions
            do not take the lock, so both steps are defined here.
    """
    ownable._check_owner()
    ownable_2step.pending_owner = new_owner
    log ownable_2step.OwnershipTransferStarted(previous_owner=ownable.owner, new_owner=new_owner)


@external
def accept_ownership():
    """
    @notice Complete a two-step ownership transfer; only the pending owner.
    """
    assert ownable_2step.pending_owner == msg.sender, "ownable_2step: caller is not the new owner"
    ownable_2step._transfer_ownership(msg.sender)


@external
@view
def fund_balance() -> uint256:
    """
    @notice The fund's balance: its token balance, nothing else.
    """
    return staticcall ASSET.balanceOf(self)


@external
def cover(receiver: address, amount: uint256):
    """
    @notice Pay bad debt to `receiver` (the vault). Engine only.
    """
    assert msg.sender == ENGINE, "fund: only engine"
    assert amount <= staticcall ASSET.balanceOf(self), "fund: insufficient"
    assert extcall ASSET.transfer(receiver, amount, default_return_value=True), "fund: transfer failed"
    log Covered(receiver=receiver, amount=amount)


@external
def set_floor(new_floor: uint256):
    """
    @notice The balance below which the owner may not withdraw.
    """
    ownable._check_owner()
    self.balance_floor = new_floor
    log FloorSet(floor=new_floor)


@external
def withdraw_surplus(receiver: address, amount: uint256):
    """
    @notice Owner: withdraw what lies above the floor.
    """
    ownable._check_owner()
    assert amount > 0, "fund: zero amount"
    balance: uint256 = staticcall ASSET.balanceOf(self)
    assert amount <= balance and balance - amount >= self.balance_floor, "fund: below floor"
    assert extcall ASSET.transfer(receiver, amount, default_return_value=True), "fund: transfer failed"
    log SurplusWithdrawn(receiver=receiver, amount=amount)
