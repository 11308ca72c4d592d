"""Bad debt: the insurance-fund draw, auto-deleveraging against ranked
targets, the socialized remainder, and every malformed target list.

The book (fees and funding off, so every number below is exact):
    bankrupt  trader long 1 BTC at 80,000, 1,000 USDC margin.
    a..e      shorts at 80,000 (size BTC, margin USDC):
              a 0.2/320 (50x), b 0.3/960 (25x), c 0.25/2,000 (10x),
              d 0.5/8,000 (5x), e 1/40,000 (2x).
Crash to 78,000: the long's equity is 1,000 - 2,000 = -1,000, so the bad
debt D is 1,000 USDC and the bankruptcy price 79,000; each BTC deleveraged
pays a haircut of D / 1 BTC = 1,000 USDC. Scores at 78,000
(upnl/margin * notional/(margin+upnl)): a 27.08, b 9.375, c 1.95,
d 0.54, e 0.093, so the ranking is a, b, c, d, e.
"""

import pytest
from ape import chain

from model import perp_engine as model_engine
from tests.unit.perp_exits.helpers import (
    BTC, USDC, WAD, assert_events_agree, balance, free, no_funding, ok, open_position, position,
    hand_score, price, reverts, seed_fund, set_params, step,
)

D = 1_000 * USDC
BANKRUPTCY_PRICE = 79_000 * WAD
BOOK = (("a", 2 * 10**17, 320), ("b", 3 * 10**17, 960), ("c", 25 * 10**16, 2_000),
        ("d", 5 * 10**17, 8_000), ("e", WAD, 40_000))


def low(account):
    return account.address.lower()


@pytest.fixture
def book(twin, owner, trader, crowd):
    """The book above, crashed to 78,000; returns the shorts by name."""
    no_funding(twin, owner, trading_fee=0)
    shorts = {}
    for (name, size, margin_), who in zip(BOOK, crowd):
        twin.fund(who, 2 * margin_ * USDC, spenders=[twin.p.engine])
        open_position(twin, who, -size, margin_ * USDC)
        shorts[name] = who
    open_position(twin, trader, WAD, 1_000 * USDC)
    price(twin, owner, 78_000)
    assert twin.p.engine.equity(trader, BTC) == -D
    assert twin.p.engine.bankruptcy_price(trader, BTC) == BANKRUPTCY_PRICE
    scores = [hand_score(-size, 80_000 * WAD, 78_000 * WAD, m * USDC) for _, size, m in BOOK]
    assert scores == sorted(scores, reverse=True)
    assert [twin.p.engine.adl_score(shorts[n], BTC) for n, _, _ in BOOK] == scores
    ranking = [shorts[n] for n, _, _ in BOOK]
    assert list(twin.p.engine.adl_ranking(trader, BTC)) == [w.address for w in ranking]
    assert model_engine.adl_ranking(twin.w, trader.address, BTC) == [w.address for w in ranking]
    step(twin)
    return shorts


def _liquidate(twin, keeper, trader, targets):
    n = len(twin.w.events)
    ok(twin, keeper, "liquidate", trader, BTC, targets)
    return n


def _haircuts(twin, n, any_price=False):
    """AutoDeleveraged events of the last transaction, chain == model, as
    (target, size, haircut); each at the book's bankruptcy price."""
    events = assert_events_agree(twin, "AutoDeleveraged", n)
    assert all(e["market_id"] == BTC for e in events)
    assert any_price or all(e["bankruptcy_price"] == BANKRUPTCY_PRICE for e in events)
    return [(e["target"], e["size"], e["haircut"]) for e in events]


def test_liquidate__bad_debt_within_fund__fund_pays_it_all_and_nobody_is_deleveraged(twin, keeper, trader, book):
    seed_fund(twin, 1_500 * USDC)
    vault_before, keeper_before = balance(twin, twin.p.vault), free(twin, keeper)
    n = _liquidate(twin, keeper, trader, [])
    (liq,) = assert_events_agree(twin, "PositionLiquidated", n)
    assert (liq["penalty"], liq["keeper_reward"], liq["bad_debt"]) == (0, 0, D)
    (drawn,) = assert_events_agree(twin, "InsuranceFundDrawn", n)
    assert (drawn["amount"], drawn["remaining"]) == (1_000 * USDC, 500 * USDC)
    assert _haircuts(twin, n) == []
    # The vault gets the margin (1,000) and the fund's 1,000: the long's whole loss.
    assert balance(twin, twin.p.vault) - vault_before == 2_000 * USDC
    assert balance(twin, twin.p.insurance_fund) == 500 * USDC
    assert free(twin, keeper) == keeper_before  # no penalty on negative equity, so no reward
    assert all(position(twin, w)[0] < 0 for w in book.values())
    step(twin)


def test_liquidate__fund_short_of_bad_debt__deleverages_the_uncovered_rest_by_rank(twin, keeper, trader, book):
    # Fund 400, so U = 600: a closes 0.2 (haircut 200), b 0.3 (300), and c
    # 0.1 of its 0.25 (100). c releases 2,000 * 0.4 = 800 margin and 200 PnL.
    seed_fund(twin, 400 * USDC)
    a, b, c = book["a"], book["b"], book["c"]
    frees = [free(twin, w) for w in (a, b, c)]
    vault_before = balance(twin, twin.p.vault)
    n = _liquidate(twin, keeper, trader, [a, b, c])
    (drawn,) = assert_events_agree(twin, "InsuranceFundDrawn", n)
    assert (drawn["amount"], drawn["remaining"]) == (400 * USDC, 0)
    haircuts = _haircuts(twin, n)
    assert haircuts == [(low(a), -2 * 10**17, 200 * USDC), (low(b), -3 * 10**17, 300 * USDC),
                        (low(c), -10**17, 100 * USDC)]
    assert sum(h for _, _, h in haircuts) == D - 400 * USDC
    assert [free(twin, w) - f for w, f in zip((a, b, c), frees)] == [520 * USDC, 1_260 * USDC, 900 * USDC]
    assert position(twin, a)[0] == position(twin, b)[0] == 0
    assert position(twin, c)[:3] == (-15 * 10**16, 80_000 * WAD, 1_200 * USDC)
    assert not twin.p.engine.is_liquidatable(c, BTC)
    # Vault: +1,000 margin +400 fund -200 -300 -100 (profits paid less haircuts).
    assert balance(twin, twin.p.vault) - vault_before == 800 * USDC
    assert assert_events_agree(twin, "BadDebtSocialized", n) == []
    step(twin)


def test_liquidate__fund_empty__deleverages_several_targets_and_partly_reduces_the_last(twin, keeper, trader, book):
    # U = D = 1,000: a 0.2, b 0.3, c 0.25 close in full (200 + 300 + 250);
    # d closes 0.25 of its 0.5 for the last 250; e, listed after, is untouched.
    ranking = [book[n] for n in "abcde"]
    frees = [free(twin, w) for w in ranking]
    n = _liquidate(twin, keeper, trader, ranking)
    assert assert_events_agree(twin, "InsuranceFundDrawn", n) == []
    haircuts = _haircuts(twin, n)
    assert haircuts == [(low(book["a"]), -2 * 10**17, 200 * USDC), (low(book["b"]), -3 * 10**17, 300 * USDC),
                        (low(book["c"]), -25 * 10**16, 250 * USDC), (low(book["d"]), -25 * 10**16, 250 * USDC)]
    assert sum(h for _, _, h in haircuts) == D
    # d: releases 4,000 margin and 500 PnL, pays 250; keeps 0.25 BTC and 4,000.
    assert [free(twin, w) - f for w, f in zip(ranking, frees)] == [
        520 * USDC, 1_260 * USDC, 2_250 * USDC, 4_250 * USDC, 0]
    assert position(twin, book["d"])[:3] == (-25 * 10**16, 80_000 * WAD, 4_000 * USDC)
    assert position(twin, book["e"])[:3] == (-WAD, 80_000 * WAD, 40_000 * USDC)
    assert not twin.p.engine.is_liquidatable(book["d"], BTC)
    assert twin.p.engine.adl_pending(BTC).remaining == 0
    step(twin)


def test_liquidate__malformed_target_lists__each_reverts_with_its_reason(
        twin, owner, keeper, trader, other_trader, stranger, book):
    a, b, c, d, e = (book[n] for n in "abcde")
    # A same-side long and a short in loss (entered at 77,000).
    open_position(twin, other_trader, 10**17, 1_000 * USDC)
    twin.fund(stranger, 2_000 * USDC, spenders=[twin.p.engine])
    price(twin, owner, 77_000)
    open_position(twin, stranger, -10**17, 1_000 * USDC)
    price(twin, owner, 78_000)
    step(twin)
    cases = [
        ([b, a, c, d, e], "adl: unsorted"),
        ([a, other_trader], "adl: wrong side"),
        ([a, stranger], "adl: not in profit"),
        ([a, a, b], "adl: duplicate target"),
        ([a, keeper], "adl: no position"),
        ([trader, a, b, c, d], "adl: no position"),  # the bankrupt itself: closed before ADL runs
        ([a, c, d, e], "adl: not ranked"),  # b skipped below the top
        ([b, c, d, e], "adl: not ranked"),  # a, the top, skipped
        ([a, b], "adl: more targets needed"),
        ([], "adl: more targets needed"),
    ]
    for targets, reason in cases:
        reverts(twin, keeper, "liquidate", trader, BTC, targets, reason=reason)
    step(twin)
    n = _liquidate(twin, keeper, trader, [a, b, c, d])
    assert sum(h for _, _, h in _haircuts(twin, n)) == D
    step(twin)


def test_liquidate__equal_scores__rank_the_lower_address_first(twin, owner, keeper, trader, crowd):
    no_funding(twin, owner, trading_fee=0)
    low, high = sorted(crowd[:2], key=lambda w: int(w.address, 16))
    for who in (high, low):
        twin.fund(who, 2_000 * USDC, spenders=[twin.p.engine])
        open_position(twin, who, -6 * 10**17, 960 * USDC)
    open_position(twin, trader, WAD, 1_000 * USDC)
    price(twin, owner, 78_000)
    assert twin.p.engine.adl_score(low, BTC) == twin.p.engine.adl_score(high, BTC) > 0
    assert list(twin.p.engine.adl_ranking(trader, BTC)) == [low.address, high.address]
    reverts(twin, keeper, "liquidate", trader, BTC, [high, low], reason="adl: unsorted")
    # D = 1,000 needs 1 BTC: low closes 0.6 and high 0.4, in address order.
    n = _liquidate(twin, keeper, trader, [low, high])
    assert [t for t, _, _ in _haircuts(twin, n)] == [low.address.lower(), high.address.lower()]
    step(twin)


def test_liquidate__winners_cannot_fill__socializes_the_rest(twin, owner, keeper, trader, stranger, crowd):
    # Fund empty; the only profitable short is 0.2 BTC (haircut 200); a short
    # entered at 77,000 is in loss and cannot be listed. 800 is socialized.
    no_funding(twin, owner, trading_fee=0)
    winner = crowd[0]
    twin.fund(winner, 1_000 * USDC, spenders=[twin.p.engine])
    twin.fund(stranger, 2_000 * USDC, spenders=[twin.p.engine])
    price(twin, owner, 77_000)
    open_position(twin, stranger, -10**17, 1_000 * USDC)
    price(twin, owner, 80_000)
    open_position(twin, winner, -2 * 10**17, 320 * USDC)
    open_position(twin, trader, WAD, 1_000 * USDC)
    price(twin, owner, 78_000)
    step(twin)
    reverts(twin, keeper, "liquidate", trader, BTC, [winner, stranger], reason="adl: not in profit")
    vault_before = balance(twin, twin.p.vault)
    n = _liquidate(twin, keeper, trader, [winner])
    assert _haircuts(twin, n) == [(low(winner), -2 * 10**17, 200 * USDC)]
    (social,) = assert_events_agree(twin, "BadDebtSocialized", n)
    assert (social["market_id"], social["amount"]) == (BTC, 800 * USDC)
    # Vault: +1,000 margin, -400 profit paid to the winner, +200 haircut.
    assert balance(twin, twin.p.vault) - vault_before == 800 * USDC
    assert position(twin, stranger)[0] == -10**17
    step(twin)


def test_liquidate__target_bankrupt_at_the_bankruptcy_price__haircut_capped_at_its_equity(
        twin, owner, keeper, trader, crowd):
    # a (0.2 BTC, 320) as in the book; z shorts 1 BTC at 78,100 with 781
    # margin (100x), so at 79,000 it would be bankrupt itself. a pays 200,
    # leaving 0.8 BTC and 800 to fill; z closes 0.8 BTC: released
    # 781 * 0.8 = 624.8, PnL 0.8 * 100 = 80, so its haircut is capped at
    # 704.8 and the last 95.2 is socialized (the bankrupt size is filled).
    no_funding(twin, owner, trading_fee=0)
    a, z = crowd[:2]
    for who in (a, z):
        twin.fund(who, 2_000 * USDC, spenders=[twin.p.engine])
    open_position(twin, a, -2 * 10**17, 320 * USDC)
    open_position(twin, trader, WAD, 1_000 * USDC)
    price(twin, owner, 78_100)
    open_position(twin, z, -WAD, 781 * USDC)
    price(twin, owner, 78_000)
    assert list(twin.p.engine.adl_ranking(trader, BTC)) == [a.address, z.address]
    z_free = free(twin, z)
    n = _liquidate(twin, keeper, trader, [a, z])
    assert _haircuts(twin, n) == [(low(a), -2 * 10**17, 200 * USDC), (low(z), -8 * 10**17, 704_800_000)]
    (social,) = assert_events_agree(twin, "BadDebtSocialized", n)
    assert social["amount"] == 95_200_000
    assert free(twin, z) == z_free
    assert position(twin, z)[:3] == (-2 * 10**17, 78_100 * WAD, 156_200_000)
    assert twin.p.engine.adl_pending(BTC).remaining == 0
    step(twin)


def test_liquidate__target_owing_more_funding_than_its_margin__pays_that_debt_before_its_payout(
        twin, owner, keeper, trader, crowd):
    # Funding at its cap (0.01%/s at full skew). The short (0.1 BTC, 160) pays
    # 2/3 of the skew for ~700 s: about 178 USDC, more than its margin, while
    # its 400 of profit keeps it healthy. Deleveraging half of it leaves a
    # remainder owing funding: that debt is paid from the closed half's
    # proceeds, so the target loses exactly its haircut (no collateral out of
    # thin air, and no debt forgiven at the vault's expense).
    set_params(twin, owner, trading_fee=0, funding_k=10**14, max_funding_rate=10**14)
    short = crowd[0]
    twin.fund(short, 1_000 * USDC, spenders=[twin.p.engine])
    open_position(twin, short, -10**17, 160 * USDC)
    open_position(twin, trader, 5 * 10**16, 40 * USDC)
    twin.advance(700)
    price(twin, owner, 76_000)
    assert twin.p.engine.funding_owed(short, BTC) > 160 * USDC
    assert not twin.p.engine.is_liquidatable(short, BTC)
    assert twin.p.engine.equity(trader, BTC) < 0
    step(twin)
    # The short's equity at the liquidation's timestamp (the model's view, which
    # equals the chain's at every step).
    twin.w.now = max(twin.now, chain.blocks.head.timestamp) + 1
    equity_before = twin.w.view("equity", short.address, BTC)
    free_before = free(twin, short)
    n = _liquidate(twin, keeper, trader, [short])
    (liq,) = assert_events_agree(twin, "PositionLiquidated", n)
    haircuts = _haircuts(twin, n, any_price=True)
    assert [(t, size) for t, size, _ in haircuts] == [(low(short), -5 * 10**16)]
    assert haircuts[0][2] == liq["bad_debt"]
    size, _, margin_ = position(twin, short)[:3]
    assert (size, margin_) == (-5 * 10**16, 0)
    value_after = free(twin, short) - free_before + twin.p.engine.equity(short, BTC)
    assert value_after == equity_before - liq["bad_debt"]
    step(twin)
