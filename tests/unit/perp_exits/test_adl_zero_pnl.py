"""ADL and an opposite position at exactly zero PnL, on the contracts
(decision 54, docs/liquidation.md "Zero PnL is not profit").

A zero-PnL position is not in profit for any of the three checks: it cannot
be listed (`adl: not in profit`), `adl_ranking` leaves it out, and the
completeness scan does not count it as a profitable position left out, so a
liquidation whose only other opposite positions are at zero PnL socializes
the rest instead of reverting `adl: more targets needed`.
tests/model/test_adl_zero_pnl.py pins the same in the model, and a gain
below one token unit (floored to zero PnL).

The book (fees and funding off, fund empty): the bankrupt long 1 BTC at
80,000 with 1,000 USDC, crashed to 78,000 (D = U = 1,000 USDC, bankruptcy
price 79,000); `zero` shorts 0.5 BTC with 4,000 USDC at 78,000, after the
crash and before the liquidation, so its PnL at the oracle price is exactly
0; `winner` (in the second test) shorted 0.2 BTC with 320 USDC at 80,000
and is 400 USDC in profit.
"""

from model import perp_engine as model_engine
from tests.unit.perp_exits.helpers import (
    BTC, USDC, WAD, assert_events_agree, balance, free, haircuts, no_funding, ok, open_position, position, price,
    reverts, step,
)

D = 1_000 * USDC


def _book(twin, owner, trader, zero, winner=None):
    no_funding(twin, owner, trading_fee=0)
    for who in (zero, winner):
        if who is not None:
            twin.fund(who, 10_000 * USDC, spenders=[twin.p.engine])
    open_position(twin, trader, WAD, D)
    if winner is not None:
        open_position(twin, winner, -2 * 10**17, 320 * USDC)
    price(twin, owner, 78_000)
    open_position(twin, zero, -5 * 10**17, 4_000 * USDC)
    e = twin.p.engine
    assert position(twin, zero)[:3] == (-5 * 10**17, 78_000 * WAD, 4_000 * USDC)
    assert e.equity(trader, BTC) == -D
    assert e.equity(zero, BTC) == 4_000 * USDC  # upnl exactly 0, no funding
    assert e.adl_score(zero, BTC) == 0
    ranking = [winner.address] if winner is not None else []
    assert list(e.adl_ranking(trader, BTC)) == ranking
    assert model_engine.adl_ranking(twin.w, trader.address, BTC) == ranking
    step(twin)


def test_liquidate__only_a_zero_pnl_opposite_position__socializes_the_whole_debt(twin, owner, keeper, trader, crowd):
    zero = crowd[0]
    _book(twin, owner, trader, zero)
    reverts(twin, keeper, "liquidate", trader, BTC, [zero], reason="adl: not in profit")
    zero_free, vault_before = free(twin, zero), balance(twin, twin.p.vault)
    n = len(twin.w.events)
    ok(twin, keeper, "liquidate", trader, BTC, [])  # not "adl: more targets needed"
    assert haircuts(twin, n) == []
    (social,) = assert_events_agree(twin, "BadDebtSocialized", n)
    assert (social["market_id"], social["amount"]) == (BTC, D)
    assert assert_events_agree(twin, "DeleveragePending", n) == []
    assert twin.p.engine.adl_pending(BTC).remaining == 0
    assert position(twin, zero)[:3] == (-5 * 10**17, 78_000 * WAD, 4_000 * USDC)
    assert free(twin, zero) == zero_free
    assert balance(twin, twin.p.vault) - vault_before == D  # the long's margin; the loss stays with the LPs
    step(twin)


def test_liquidate__zero_pnl_beside_a_profitable_one__cannot_be_listed_and_the_rest_socializes(
        twin, owner, keeper, trader, crowd):
    zero, winner = crowd[:2]
    _book(twin, owner, trader, zero, winner)
    for targets in ([winner, zero], [zero, winner]):
        reverts(twin, keeper, "liquidate", trader, BTC, targets, reason="adl: not in profit")
    n = len(twin.w.events)
    ok(twin, keeper, "liquidate", trader, BTC, [winner])
    # The winner's 0.2 BTC pays 200; zero is neither a target nor a profitable
    # position left out, so the other 800 is socialized at once.
    assert haircuts(twin, n) == [(winner.address.lower(), -2 * 10**17, 200 * USDC)]
    (social,) = assert_events_agree(twin, "BadDebtSocialized", n)
    assert social["amount"] == 800 * USDC
    assert position(twin, zero)[:3] == (-5 * 10**17, 78_000 * WAD, 4_000 * USDC)
    step(twin)
