"""model/funding.py: the rate's clamp and sign, the index step and owed in
their rounding directions, and zero-sum funding to the unit across many
random positions and time steps in a World."""

import math
import random
from fractions import Fraction

import pytest
from hypothesis import given, strategies as st

from model import funding
from model.fixed_point import WAD, Revert
from tests.model.worlds import (
    ANY_PRICE, CROWD, ENGINE, FUND, KEEPER, OTHER_TRADER, TRADER, USDC, VAULT, advance, execute, make_world,
    price_of,
)

K = 10**14  # the largest allowed k and max rate, per second
oi = st.integers(0, 2**120)


# ---------------------------------------------------------------- rate


@given(long_oi=oi, short_oi=oi, k=st.integers(0, K), max_rate=st.integers(0, K))
def test_rate__any_skew__is_the_floored_skew_term_clamped_to_max_rate(long_oi, short_oi, k, max_rate):
    r = funding.rate(long_oi, short_oi, k, max_rate)
    if long_oi + short_oi == 0:
        assert r == 0
        return
    unclamped = math.floor(Fraction(k * (long_oi - short_oi), long_oi + short_oi))
    assert r == max(-max_rate, min(max_rate, unclamped))
    assert -max_rate <= r <= max_rate


@given(long_oi=oi, short_oi=oi, k=st.integers(1, K))
def test_rate__sign__follows_the_skew_so_the_larger_side_pays(long_oi, short_oi, k):
    r = funding.rate(long_oi, short_oi, k, K)
    if long_oi > short_oi:
        assert r >= 0
    elif long_oi < short_oi:
        assert r < 0  # floored: a short skew never rounds to zero
    else:
        assert r == 0


def test_rate__full_skew_with_k_above_the_cap__is_clamped_both_ways():
    assert funding.rate(10**18, 0, K, K // 2) == K // 2
    assert funding.rate(0, 10**18, K, K // 2) == -(K // 2)
    assert funding.rate(10**18, 0, K, K) == K
    assert funding.rate(0, 10**18, K, K) == -K


def test_rate__no_open_interest__is_zero():
    assert funding.rate(0, 0, K, K) == 0


def test_rate__balanced_book__is_zero():
    assert funding.rate(5 * 10**18, 5 * 10**18, K, K) == 0


def test_rate__default_config__one_basis_point_per_hour_at_full_skew():
    w = make_world(traders=[])
    p = w.e.params[0]
    assert p.funding_k == p.max_funding_rate == 10**14 // 3600
    assert funding.rate(10**18, 0, p.funding_k, p.max_funding_rate) * 3600 <= 10**14


# ---------------------------------------------------------------- index and owed


@given(r=st.integers(-K, K), price=st.integers(1, 2**128 - 1), dt=st.integers(0, 10**9))
def test_index_step__any_rate__is_floored(r, price, dt):
    assert funding.index_step(r, price, dt) == math.floor(Fraction(r * price * dt, WAD))


@given(size=st.integers(-(2**120) + 1, 2**120 - 1), now=st.integers(-(2**126), 2**126),
       at=st.integers(-(2**126), 2**126), scale=st.sampled_from([10**30, 10**18, 1]))
def test_owed__any_position__is_rounded_up_against_the_trader(size, now, at, scale):
    exact = Fraction(size * (now - at), scale)
    owed = funding.owed(size, now, at, scale)
    assert owed == math.ceil(exact)
    # A payer pays at least the exact amount; a receiver receives at most it.
    assert owed >= exact


def test_owed__long_with_a_rising_index__pays_and_short_receives():
    assert funding.owed(10**18, 10**18, 0, 10**30) > 0
    assert funding.owed(-(10**18), 10**18, 0, 10**30) < 0
    # One index unit on one size unit: the payer pays one token unit, the
    # receiver gets nothing.
    assert funding.owed(1, 1, 0, 10**30) == 1
    assert funding.owed(-1, 1, 0, 10**30) == 0


# ---------------------------------------------------------------- zero-sum in a World


def funding_events(w, since):
    """funding_paid of every settlement logged after `since`."""
    return sum(f["funding_paid"] for name, f in w.events[since:] if "funding_paid" in f)


@pytest.mark.parametrize("seed", range(6))
def test_funding__many_positions_and_time_steps__is_zero_sum_to_the_unit(seed):
    """With no trading fee and a constant price, funding is the only flow
    between traders and vault (the keeper earns each order's execution
    fee): after every order the vault's token change equals the funding
    settled, and once every position is closed the traders' losses are the
    vault's gains plus the keeper's fees to the unit, with the rounding on
    the vault's side."""
    rng = random.Random(seed)
    traders = [TRADER, OTHER_TRADER, *CROWD]
    w = make_world(traders=traders, trading_fee=0, lp_assets=10**9 * USDC)
    start = {t: w.e.free[t] for t in traders}
    vault0 = w.token.balance_of(VAULT)
    fund0 = w.token.balance_of(FUND)
    exact_paid = Fraction(0)  # sum over settlements of size * d(index) / scale
    settled = settlements = orders = 0
    reverted = []
    for _ in range(120):
        advance(w, rng.choice([1, 7, 60, 600, 3599]))
        t = rng.choice(traders)
        mid = rng.choice([0, 1])
        price = price_of(w, mid)
        pos = w.view("get_position", t, mid)
        before_vault, n_events = w.token.balance_of(VAULT), len(w.events)
        try:
            if pos.size == 0 or rng.random() < 0.3:
                side = 1 if pos.size > 0 else -1 if pos.size < 0 else rng.choice([1, -1])
                size = side * rng.randint(1, 50) * WAD // (10 if mid == 0 else 1)
                margin_amount = abs(size) * price // 10**30 // rng.choice([2, 5, 10, 20])
                oid = w.call(t, "request_order", mid, size, margin_amount, price if size > 0 else 0)
            elif rng.random() < 0.5:
                part = pos.size if rng.random() < 0.5 else pos.size // 2
                oid = w.call(t, "request_order", mid, -part, 0, 0 if pos.size > 0 else ANY_PRICE)
            else:
                oid = w.call(t, "request_order", mid, 0, -1, 0)  # a margin removal
        except Revert as exc:
            reverted.append(exc.reason)
            assert w.token.balance_of(VAULT) == before_vault
            continue
        advance(w, 1)  # the later round the order waits for
        orders += 1
        reason = execute(w, oid)
        if reason is not None:  # cancelled: nothing settled
            reverted.append(reason)
            assert w.token.balance_of(VAULT) == before_vault
            continue
        if pos.size != 0:
            settlements += 1
            # Settled up to the index the position now stores (a margin
            # removal keeps funding received accrued: its index stays, and
            # nothing is settled; docs/solvency.md); a closed position
            # settled up to the market's index.
            after = w.e.positions.get((t, mid))
            idx_to = after.funding_index if after is not None else w.e.state[mid].funding_index
            exact_paid += Fraction(pos.size * (idx_to - pos.funding_index), w.e.scale)
        paid = funding_events(w, n_events)
        settled += paid
        # The vault is the counterparty of every settlement, to the unit.
        assert w.token.balance_of(VAULT) - before_vault == paid
    # Close everything that is left.
    for (t, mid), pos in list(w.e.positions.items()):
        n_events = len(w.events)
        oid = w.call(t, "request_order", mid, -pos.size, 0, 0 if pos.size > 0 else ANY_PRICE)
        advance(w, 1)
        orders += 1
        assert execute(w, oid) is None
        exact_paid += Fraction(pos.size * (w.e.state[mid].funding_index - pos.funding_index), w.e.scale)
        settled += funding_events(w, n_events)
        settlements += 1
    assert not w.e.positions and not w.e.orders
    traders_change = sum(w.e.free[t] - start[t] for t in traders)
    vault_change = w.token.balance_of(VAULT) - vault0
    fees = w.e.free.get(KEEPER, 0)
    assert fees == orders * w.e.params[0].execution_fee == orders * w.e.params[1].execution_fee
    assert w.token.balance_of(FUND) == fund0  # no fees, no penalties
    assert traders_change + vault_change + fees == 0
    assert vault_change == settled
    assert w.token.balance_of(ENGINE) == sum(w.e.free.values())
    # Funding really flowed, and rounding went the vault's way (< 1 unit per settlement).
    assert settled != 0 and settlements > 50
    assert exact_paid <= settled < exact_paid + settlements
    assert len(reverted) < 20, reverted
