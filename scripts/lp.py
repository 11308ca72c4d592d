"""LP deposits through the vault's epochs (ERC-7540), on chain.

The vault takes no deposit at once (issue 12, docs/lp-epochs.md): a deposit
is requested, priced when anyone settles the epoch once every market's feed
has a round later than the request, then claimed. On a devnet the mock
feeds stand in for the next Chainlink update: anyone may stamp a new round
at the current answer. These helpers do the three steps for the places that
seed LP liquidity (scripts/deploy.py's vault_seed, test fixtures).
"""

from ape import chain


def later_rounds(feeds, after, sender):
    """A round at each mock feed's current answer with updatedAt later than
    `after` (a block time): a block is mined at after + 1 first when the
    chain is not past it yet."""
    if chain.blocks.head.timestamp <= after:
        chain.mine(timestamp=after + 1)
    for feed in feeds:
        if feed.latestRoundData()[3] <= after:
            feed.set_answer(feed.latestAnswer(), sender=sender)


def deposit_through_epoch(vault, feeds, lp, assets, settler=None):
    """requestDeposit of `assets` by `lp` for itself, later rounds on every
    (mock) feed, settle (by `settler`, the LP by default), and the claim of
    everything claimable. Returns the shares claimed."""
    receipt = vault.requestDeposit(assets, lp, lp, sender=lp)
    later_rounds(feeds, receipt.timestamp, lp)
    vault.settle(sender=settler or lp)
    before = vault.balanceOf(lp)
    vault.deposit(vault.maxDeposit(lp), lp, lp, sender=lp)
    return vault.balanceOf(lp) - before
