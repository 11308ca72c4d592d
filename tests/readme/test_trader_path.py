"""The README's trader path, run exactly as written: the code block after
the `<!-- trader-path -->` marker is executed against the devnet, then its
outcome is checked with numbers worked out here."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"
USDC, WAD = 10**6, 10**18


def readme_block():
    text = README.read_text()
    after = text.split("<!-- trader-path -->", 1)[1]
    return re.search(r"```python\n(.*?)```", after, re.S).group(1)


def fee(size_wad, price_usd):
    """5 bps of |size| x price, in USDC units, rounded up (exact here)."""
    return -(-size_wad * price_usd * USDC * 5 // (WAD * 10_000))


def test_readme_trader_path__runs_as_written_and_pays_the_profit_less_fees(accounts):
    from ape import chain

    scope = {}
    start = chain.blocks.head.number
    exec(compile(readme_block(), str(README), "exec"), scope)
    engine, usdc, trader, keeper = scope["engine"], scope["usdc"], scope["trader"], scope["keeper"]
    fees = fee(WAD // 5, 80_100) + fee(WAD // 10, 81_000) + fee(WAD // 10, 84_000)
    assert fees == 16_260_000
    profit = 90 * USDC + 390 * USDC  # 0.1 x (81,000 - 80,100) and 0.1 x (84,000 - 80,100)
    # the long is alone on its side, so it pays funding for the seconds it is open
    closes = list(engine.PositionClosed.range(start, chain.blocks.head.number + 1))
    assert [c.size_closed for c in closes] == [WAD // 10, WAD // 10]
    funding = sum(c.funding_paid for c in closes)
    assert 0 < funding < 10_000  # under a cent over a few seconds
    # three execution fees: two orders (from the escrow), the TP/SL (from its payout)
    assert usdc.balanceOf(trader) == 10_000 * USDC + profit - fees - 3 * USDC - funding
    # two order executions and the TP/SL execution paid the keeper 1 USDC each
    assert engine.free_collateral(keeper) == 3 * USDC
    assert engine.free_collateral(trader) == 0
