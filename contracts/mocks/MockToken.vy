# pragma version 0.4.3
"""
@title MockToken
@notice DEVNET MOCK. snekmate's ERC-20 with an open faucet `mint`; a
        stand-in for USDC on a local devnet.
"""

from snekmate.auth import ownable
from snekmate.tokens import erc20

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


@deploy
def __init__(name: String[25], symbol: String[5], decimals: uint8):
    ownable.__init__()
    erc20.__init__(name, symbol, decimals, name, "1")


@external
def mint(to: address, amount: uint256):
    """
    @notice Faucet: anyone may mint.
    """
    erc20._mint(to, amount)
