"""ADL in the model alone: the haircuts cover exactly the uncovered debt, the
ranking is score-then-address, and a regression: a target whose funding debt
exceeds its margin must not make the engine pay out collateral it does not
hold."""

from model import margin
from tests.model.worlds import (
    CROWD, ENGINE, FUND, KEEPER, OTHER_TRADER, TRADER, USDC, VAULT, WAD,
    advance, assert_aggregates, assert_token_conservation, make_world, set_price, trade,
)

BTC = 0


def events(w, since, name):
    return [f for n, f in w.events[since:] if n == name]


def test_deleverage__target_whose_funding_exceeds_its_margin__conserves_tokens():
    """A short left unliquidated for 300 hours of full short skew owes more
    funding than its margin, yet is "in profit" at the oracle price after a
    small fall, so it ranks as an ADL target. Before the fix the engine paid
    the vault the short's whole funding debt out of other accounts'
    collateral (about 10,491 USDC here)."""
    w = make_world(traders=[TRADER, OTHER_TRADER])
    short, long_ = TRADER, OTHER_TRADER
    trade(w, short, BTC, -10 * WAD, 8_000 * USDC, 80_000 * WAD)  # the fee escrowed at the price
    advance(w, 300 * 3600)
    assert w.view("equity", short, BTC) < 0  # funding-insolvent, and no keeper came
    set_price(w, BTC, 79_990 * WAD)
    trade(w, long_, BTC, 5 * WAD, 79_990 * 5 * USDC // 100, 79_990 * WAD)
    w.now += 1
    set_price(w, BTC, 78_790 * WAD)
    assert w.view("adl_ranking", long_, BTC) == [short]
    held = w.e.positions[(short, BTC)].margin + w.e.positions[(long_, BTC)].margin
    vault0, engine0, fund0 = (w.token.balance_of(x) for x in (VAULT, ENGINE, FUND))
    n = len(w.events)
    w.call(KEEPER, "liquidate", long_, BTC, [short])
    assert_token_conservation(w)
    assert_aggregates(w)
    assert events(w, n, "AutoDeleveraged")[0]["haircut"] == 0  # its closed part had nothing to give
    assert events(w, n, "BadDebtSocialized")
    # Both positions' margins went to the vault (and the fund's balance),
    # nothing more: the short is left with no margin, to be liquidated.
    assert w.e.positions[(short, BTC)].margin == 0
    assert engine0 - w.token.balance_of(ENGINE) == held
    assert w.token.balance_of(VAULT) - vault0 == held + fund0


def crash_world(n_targets=3, insurance=0):
    """One 10 BTC long at 100x and `n_targets` 3 BTC shorts at 5x..50x, then
    a 2% crash: the long's bad debt is about its margin, 8,000 USDC."""
    w = make_world(traders=[TRADER, *CROWD], insurance=insurance)
    trade(w, TRADER, BTC, 10 * WAD, 8_000 * USDC, 80_000 * WAD)
    for k, who in enumerate(CROWD[:n_targets]):
        lev = (5, 10, 20, 50)[k % 4]
        trade(w, who, BTC, -3 * WAD, 240_000 * USDC // lev, 80_000 * WAD)
    w.now += 1
    set_price(w, BTC, 78_400 * WAD)
    return w


def test_liquidate__fund_empty__haircuts_sum_to_exactly_the_uncovered_debt():
    w = crash_world(n_targets=4)
    targets = w.view("adl_ranking", TRADER, BTC)
    n = len(w.events)
    w.call(KEEPER, "liquidate", TRADER, BTC, targets)
    bad_debt = events(w, n, "PositionLiquidated")[0]["bad_debt"]
    drawn = sum(e["amount"] for e in events(w, n, "InsuranceFundDrawn"))
    haircuts = sum(e["haircut"] for e in events(w, n, "AutoDeleveraged"))
    assert bad_debt > 0 and drawn < bad_debt
    assert haircuts == bad_debt - drawn
    assert not events(w, n, "BadDebtSocialized")
    assert_token_conservation(w)
    assert_aggregates(w)


def test_liquidate__fund_covers_the_debt__no_deleveraging():
    w = crash_world(n_targets=2, insurance=1_000_000 * USDC)
    n = len(w.events)
    w.call(KEEPER, "liquidate", TRADER, BTC, w.view("adl_ranking", TRADER, BTC))
    assert events(w, n, "InsuranceFundDrawn")
    assert not events(w, n, "AutoDeleveraged")
    assert_token_conservation(w)


def test_adl_ranking__model__is_score_descending_then_lower_address():
    w = crash_world(n_targets=4)
    ranking = w.view("adl_ranking", TRADER, BTC, None)
    keys = [(-w.view("adl_score", a, BTC), int(a, 16)) for a in ranking]
    assert keys == sorted(keys) and len(ranking) == 4
    # highest leverage first: the 50x short outranks the 5x one
    assert ranking[0] == CROWD[3] and ranking[-1] == CROWD[0]
    for a in ranking:
        pos = w.view("get_position", a, BTC)
        price = 78_400 * WAD
        assert w.view("adl_score", a, BTC) == margin.adl_score(
            margin.upnl(pos.size, pos.entry_price, price, w.e.scale), pos.margin,
            margin.notional_down(pos.size, price, w.e.scale))
