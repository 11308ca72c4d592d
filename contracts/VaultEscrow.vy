# pragma version 0.4.3
"""
@title VaultEscrow
@notice Holds the LiquidityVault's requested-but-unsettled deposits and
        settled-but-unclaimed redemptions, so that they are never part of
        the vault's cash (the engine's capacity and vault.pay read the
        vault's token balance). It has no functions: its constructor
        approves the vault that creates it for the whole supply, and only
        that vault moves its tokens (transferFrom).
@dev LiquidityVault creates it with raw_create from ESCROW_INITCODE, this
     contract's compiled initcode (tests/unit/vault/test_async.py checks
     that the constant is this file's bytecode).
"""

from ethereum.ercs import IERC20


@deploy
def __init__(asset: IERC20):
    assert extcall asset.approve(msg.sender, max_value(uint256), default_return_value=True), "escrow: approve failed"
