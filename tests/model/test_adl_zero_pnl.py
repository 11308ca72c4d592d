"""ADL and an opposite position at exactly zero PnL, in the model alone
(decision 54, docs/liquidation.md "Zero PnL is not profit").

"In profit" is `upnl > 0` in token units (margin.upnl, floored) for all
three uses: a target must be in profit (`adl: not in profit`), the ranking
lists only positions in profit (`adl._ranking`), and the completeness scan
counts only those as profitable positions left out (`adl._deleverage`), so a
zero-PnL position neither receives a haircut nor keeps a liquidation from
socializing the rest. tests/unit/perp_exits/test_adl_zero_pnl.py pins the
same on the contracts.

The book (fees and funding off): the bankrupt long 1 BTC at 80,000 with
1,000 USDC, crashed to 78,000 with the fund empty, so D = U = 1,000 USDC
(one BTC of bankrupt size, 1,000 USDC of haircut per BTC).
"""

import pytest

from model import margin
from model.fixed_point import Revert
from tests.model.worlds import (
    CROWD, KEEPER, TRADER, USDC, WAD, assert_aggregates, assert_token_conservation, make_world, set_price, trade,
)

BTC = 0
D = 1_000 * USDC
WINNER, ZERO, HALF_UNIT, ONE_UNIT = CROWD[:4]


def events(w, since, name):
    return [f for n, f in w.events[since:] if n == name]


def book(winner=False):
    """The bankrupt long, optionally the winner (short 0.2 BTC at 80,000,
    320 USDC: in profit 400 at 78,000), and ZERO (short 0.5 BTC opened at
    78,000 after the crash, 4,000 USDC: upnl exactly 0)."""
    w = make_world(traders=[TRADER, *CROWD], trading_fee=0, funding_k=0, max_funding_rate=0)
    trade(w, TRADER, BTC, WAD, D, 80_000 * WAD)
    if winner:
        trade(w, WINNER, BTC, -2 * 10**17, 320 * USDC, 80_000 * WAD)
    set_price(w, BTC, 78_000 * WAD)
    trade(w, ZERO, BTC, -5 * 10**17, 4_000 * USDC, 78_000 * WAD)
    assert w.e.positions[(ZERO, BTC)].entry_price == 78_000 * WAD
    assert w.view("equity", TRADER, BTC) == -D
    assert w.view("equity", ZERO, BTC) == 4_000 * USDC  # upnl 0, no funding
    assert w.view("adl_score", ZERO, BTC) == 0
    return w


def _liquidate_reverts(w, targets, reason):
    with pytest.raises(Revert) as e:
        w.call(KEEPER, "liquidate", TRADER, BTC, targets)
    assert str(e.value) == reason


def test_liquidate__only_a_zero_pnl_opposite_position__socializes_the_whole_debt():
    w = book()
    assert w.view("adl_ranking", TRADER, BTC) == []
    _liquidate_reverts(w, [ZERO], "adl: not in profit")
    zero_before, free_before = w.e.positions[(ZERO, BTC)], w.e.free[ZERO]
    n = len(w.events)
    w.call(KEEPER, "liquidate", TRADER, BTC, [])  # not "adl: more targets needed"
    assert events(w, n, "AutoDeleveraged") == []
    assert events(w, n, "BadDebtSocialized") == [{"market_id": BTC, "amount": D}]
    assert events(w, n, "DeleveragePending") == []
    assert w.e.positions[(ZERO, BTC)] == zero_before and w.e.free[ZERO] == free_before
    assert_token_conservation(w)
    assert_aggregates(w)


def test_liquidate__zero_pnl_beside_a_profitable_one__cannot_be_listed_and_the_rest_socializes():
    w = book(winner=True)
    assert w.view("adl_ranking", TRADER, BTC) == [WINNER]
    for targets in ([WINNER, ZERO], [ZERO, WINNER], [ZERO]):
        _liquidate_reverts(w, targets, "adl: not in profit")
    n = len(w.events)
    w.call(KEEPER, "liquidate", TRADER, BTC, [WINNER])
    # The winner's 0.2 BTC pays 200; ZERO is neither a target nor a profitable
    # position left out, so the other 800 is socialized at once.
    assert [(e["target"], e["size"], e["haircut"]) for e in events(w, n, "AutoDeleveraged")] == [
        (WINNER, -2 * 10**17, 200 * USDC)]
    assert events(w, n, "BadDebtSocialized") == [{"market_id": BTC, "amount": 800 * USDC}]
    assert w.e.positions[(ZERO, BTC)].size == -5 * 10**17
    assert_token_conservation(w)
    assert_aggregates(w)


def test_liquidate__a_price_gain_below_one_token_unit__is_zero_pnl_and_one_unit_is_a_target():
    # Two shorts of 0.0001 BTC (10 USDC each): one opened at 78,000.005, one
    # at 78,000.01. At 78,000 their price gains are 0.5 and 1 token unit;
    # margin.upnl floors the first to 0.
    w = make_world(traders=[TRADER, *CROWD], trading_fee=0, funding_k=0, max_funding_rate=0)
    trade(w, TRADER, BTC, WAD, D, 80_000 * WAD)
    size = 10**14
    for who, entry in ((HALF_UNIT, 78_000 * WAD + 5 * 10**15), (ONE_UNIT, 78_000 * WAD + 10**16)):
        set_price(w, BTC, entry)
        trade(w, who, BTC, -size, 10 * USDC, entry)
    set_price(w, BTC, 78_000 * WAD)
    pnl = {who: margin.upnl(-size, w.e.positions[(who, BTC)].entry_price, 78_000 * WAD, w.e.scale)
           for who in (HALF_UNIT, ONE_UNIT)}
    assert pnl == {HALF_UNIT: 0, ONE_UNIT: 1}
    assert w.view("adl_score", HALF_UNIT, BTC) == 0 < w.view("adl_score", ONE_UNIT, BTC)
    assert w.view("adl_ranking", TRADER, BTC) == [ONE_UNIT]
    _liquidate_reverts(w, [ONE_UNIT, HALF_UNIT], "adl: not in profit")
    _liquidate_reverts(w, [], "adl: more targets needed")  # ONE_UNIT is a profitable position left out
    n = len(w.events)
    w.call(KEEPER, "liquidate", TRADER, BTC, [ONE_UNIT])
    # ONE_UNIT closes in full at the bankruptcy price: haircut 0.0001 BTC x
    # 1,000 USDC = 0.1 USDC, out of its margin beyond its 1 unit of profit
    # (the fill is at the bankruptcy price, not at its profit); HALF_UNIT does
    # not block, the rest is socialized.
    assert [(e["target"], e["haircut"]) for e in events(w, n, "AutoDeleveraged")] == [(ONE_UNIT, 100_000)]
    assert events(w, n, "BadDebtSocialized") == [{"market_id": BTC, "amount": D - 100_000}]
    assert w.e.positions[(HALF_UNIT, BTC)].size == -size
    assert_token_conservation(w)
    assert_aggregates(w)
