"""Mirror of contracts/VaultEscrow.vy: the address that holds the vault's
requested deposits and settled but unclaimed redemptions. It has no verbs:
its constructor approves the vault for the whole supply, so in the model
the vault moves the escrow's tokens directly (model/liquidity_vault.py,
`escrow(w)` names its address); snekmate's erc20 never runs a maximal
allowance down, so no allowance is tracked."""


def created_by(w):
    """VaultEscrow.__init__: the escrow of the world's vault."""
    from model.liquidity_vault import escrow
    return escrow(w)
