"""Hypothesis properties of the model World alone (no chain).

A state machine drives every verb (deposits, opens, closes, margin moves,
TP/SL, price crashes, time, liquidations with the model's ADL ranking,
deleverage continuations, LP deposits and redemptions, pause) and checks
after every step:

- token conservation: the engine holds exactly free collateral + margins,
  and the token supply equals the sum of balances;
- aggregates: open interest, cost and funding sums and the side sets equal
  the sums over positions;
- an account with no open position never loses capital (wallet + free);
- a verb that reverts leaves the world exactly as it was, with a reason
  string that the contracts (or snekmate) really contain;
- no healthy position is liquidated; no risk-adding verb leaves its own
  position liquidatable.

A separate property: open then close at an unchanged price never profits.
"""

import copy

from hypothesis import event, given, note, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from model import adl as model_adl
from model.fixed_point import Revert
from model.positions import MAX_ADL_TARGETS
from tests.model.sources import SNEKMATE_REASONS, all_revert_reasons
from tests.model.worlds import (
    CROWD, FUND, KEEPER, LP, OTHER_TRADER, OWNER, TRADER, USDC, VAULT, WAD,
    advance, assert_aggregates, assert_token_conservation, capital, make_world, price_of, set_price,
)

KNOWN_REASONS = all_revert_reasons() | SNEKMATE_REASONS
ACTORS = [TRADER, OTHER_TRADER, *CROWD[:4]]
WATCHED = [*ACTORS, KEEPER]
MAX_UINT = 2**256 - 1

actor = st.sampled_from(ACTORS)
market = st.sampled_from([0, 1])
leverage = st.sampled_from([1, 2, 5, 10, 20, 50, 100])
notional_usd = st.integers(10, 300_000)


def world_state(w):
    return copy.deepcopy((w.e, w.token, w.v, w.feeds, w.fund_floor))


class WorldMachine(RuleBasedStateMachine):
    """Every verb of the World, with the invariants checked after each.

    Rules that act on a position pick one of the open positions (`pick`), so
    no step is wasted on an account without one; `liquidate` picks among the
    liquidatable positions, `liquidate_any` among all (a healthy one must be
    refused)."""

    @initialize(insurance=st.sampled_from([0, 0, 5_000 * USDC, 500_000 * USDC]),
                fee_bps=st.sampled_from([0, 5, 10]),
                book=st.lists(st.tuples(actor, market, st.booleans(), leverage, notional_usd), min_size=2, max_size=8))
    def setup(self, insurance, fee_bps, book):
        self.w = make_world(traders=ACTORS, trader_funds=2_000_000 * USDC, insurance=insurance,
                            trading_fee=fee_bps * 10**14)
        for t, mid, is_long, lev, usd in book:
            self.open_position(t, mid, is_long, lev, usd)

    # ------------------------------------------------------------ the verb wrapper

    def act(self, sender, verb, *args):
        """Run a verb; check the no-position-capital and revert properties."""
        w = self.w
        flat = {a: capital(w, a) for a in WATCHED if not self.has_position(a)}
        before = world_state(w)
        try:
            w.call(sender, verb, *args)
        except Revert as exc:
            event(f"{verb}: reverted {exc.reason}")
            assert exc.reason in KNOWN_REASONS, f"{verb}{args} reverted {exc.reason!r}, a reason no contract has"
            assert world_state(w) == before, f"{verb} reverted but changed the world"
            return False
        event(f"{verb}: ok")
        for a, c in flat.items():
            if not self.has_position(a):
                assert capital(w, a) >= c, f"{a} had no position and lost {c - capital(w, a)} in {verb}{args}"
        return True

    def has_position(self, a):
        return any(acc == a for (acc, _m) in self.w.e.positions)

    def picked(self, pick):
        """One open position, (account, market_id, Position), or None."""
        keys = sorted(self.w.e.positions)
        if not keys:
            return None
        t, mid = keys[pick % len(keys)]
        return t, mid, self.w.view("get_position", t, mid)

    # ------------------------------------------------------------ traders

    @rule(t=actor, amount=st.integers(1, 100_000 * USDC))
    def deposit(self, t, amount):
        self.w.mint(t, amount)
        self.act(t, "deposit", amount)

    @rule(t=actor, share=st.integers(1, 100))
    def withdraw(self, t, share):
        free = self.w.e.free.get(t, 0)
        self.act(t, "withdraw", max(free * share // 100, 1))

    @rule(t=actor, mid=market, is_long=st.booleans(), lev=leverage, usd=notional_usd)
    def open_position(self, t, mid, is_long, lev, usd):
        w = self.w
        price = price_of(w, mid)
        size = usd * 10**36 // price
        if size == 0:
            return
        old = w.view("get_position", t, mid)
        if old.size != 0:
            is_long = old.size > 0  # adding to it; the opposite direction has its own test
        size = size if is_long else -size
        margin_amount = usd * USDC // lev + USDC
        if self.act(t, "open_position", mid, size, margin_amount, price if is_long else 0):
            assert not w.view("is_liquidatable", t, mid), "an open left its own position liquidatable"

    @rule(pick=st.integers(0, 10**6), part=st.sampled_from([4, 2, 1]))
    def close_position(self, pick, part):
        if (got := self.picked(pick)) is None:
            return
        t, mid, old = got
        delta = -old.size if part == 1 else -(old.size // part)
        if delta:
            self.act(t, "close_position", mid, delta, 0 if old.size > 0 else MAX_UINT)

    @rule(pick=st.integers(0, 10**6), amount=st.integers(1, 50_000 * USDC))
    def add_margin(self, pick, amount):
        if (got := self.picked(pick)) is None:
            return
        t, mid, _ = got
        self.act(t, "add_margin", mid, amount)

    @rule(pick=st.integers(0, 10**6), share=st.integers(1, 90))
    def remove_margin(self, pick, share):
        if (got := self.picked(pick)) is None:
            return
        t, mid, old = got
        if self.act(t, "remove_margin", mid, max(old.margin * share // 100, 1)):
            assert not self.w.view("is_liquidatable", t, mid), "remove_margin left the position liquidatable"

    @rule(pick=st.integers(0, 10**6), tp_pct=st.integers(0, 30), sl_pct=st.integers(0, 30))
    def set_tp_sl(self, pick, tp_pct, sl_pct):
        if (got := self.picked(pick)) is None:
            return
        t, mid, old = got
        e = old.entry_price
        up, down = (tp_pct, sl_pct) if old.size > 0 else (sl_pct, tp_pct)
        hi = e + e * up // 100 if up else 0
        lo = e - e * down // 100 if down else 0
        tp, sl = (hi, lo) if old.size > 0 else (lo, hi)
        self.act(t, "set_tp_sl", mid, tp, sl)

    @rule(pick=st.integers(0, 10**6))
    def execute_tp_sl(self, pick):
        if (got := self.picked(pick)) is None:
            return
        t, mid, _ = got
        self.act(KEEPER, "execute_tp_sl", t, mid)

    # ------------------------------------------------------------ keepers

    @rule(pick=st.integers(0, 10**6))
    def liquidate(self, pick):
        """Liquidate one of the liquidatable positions, with the model's ranking."""
        w = self.w
        candidates = sorted(k for k in w.e.positions if w.view("is_liquidatable", *k))
        if not candidates:
            return
        t, mid = candidates[pick % len(candidates)]
        n_events = len(w.events)
        if self.act(KEEPER, "liquidate", t, mid, w.view("adl_ranking", t, mid)):
            names = {name for name, _ in w.events[n_events:]}
            for name in ("InsuranceFundDrawn", "AutoDeleveraged", "BadDebtSocialized", "DeleveragePending"):
                if name in names:
                    event(f"liquidate: {name}")

    @rule(pick=st.integers(0, 10**6))
    def liquidate_any(self, pick):
        """Any position: a healthy one must be refused."""
        if (got := self.picked(pick)) is None:
            return
        t, mid, _ = got
        w = self.w
        was_liquidatable = w.view("is_liquidatable", t, mid)
        if self.act(KEEPER, "liquidate", t, mid, w.view("adl_ranking", t, mid)):
            assert was_liquidatable, "a healthy position was liquidated"

    @rule(mid=market)
    def deleverage(self, mid):
        w = self.w
        job = w.e.adl_pending.get(mid)
        if job is None or job.remaining == 0:
            return
        targets = model_adl._ranking(w, mid, job.bankrupt_size, price_of(w, mid), MAX_ADL_TARGETS)
        self.act(KEEPER, "deleverage", mid, targets)

    # ------------------------------------------------------------ market

    @rule(mid=market, pct=st.integers(-25, 25))
    def move_price(self, mid, pct):
        w = self.w
        p = price_of(w, mid)
        w.now += 1
        set_price(w, mid, max(p + p * pct // 100, 10**18))

    @rule(seconds=st.sampled_from([1, 60, 3_599, 86_400, 7 * 86_400]))
    def time_passes(self, seconds):
        advance(self.w, seconds)

    @rule(seconds=st.integers(3_601, 7_200))
    def time_passes_without_a_price(self, seconds):
        self.w.now += seconds  # every fresh-price verb now reverts "stale price"

    # ------------------------------------------------------------ LP, fund, owner

    @rule(amount=st.integers(1, 1_000_000 * USDC))
    def lp_deposits(self, amount):
        self.w.mint(LP, amount)
        self.act(LP, "vault.deposit", amount, LP)

    @rule(share=st.integers(1, 100))
    def lp_redeems(self, share):
        shares = self.w.v.balances.get(LP, 0) * share // 100
        self.act(LP, "vault.redeem", max(shares, 1), LP, LP)

    @rule(amount=st.integers(1, 100_000 * USDC))
    def donation_to_fund(self, amount):
        self.w.mint(FUND, amount)

    @rule(pick=st.integers(0, 10**6))
    def pause_stops_only_new_risk(self, pick):
        """Paused: opening and removing margin revert; closing still works."""
        w = self.w
        if not self.act(OWNER, "pause"):
            return
        t = ACTORS[pick % len(ACTORS)]
        price = price_of(w, 0)
        assert not self.act(t, "open_position", 0, 10**36 // price, 1_000 * USDC, price)
        if (got := self.picked(pick)) is not None:
            t, mid, old = got
            assert not self.act(t, "remove_margin", mid, 1)
            self.act(t, "close_position", mid, -old.size, 0 if old.size > 0 else MAX_UINT)
        assert self.act(OWNER, "unpause")

    # ------------------------------------------------------------ invariants

    @invariant()
    def tokens_are_conserved(self):
        assert_token_conservation(self.w)

    @invariant()
    def aggregates_equal_sums_over_positions(self):
        assert_aggregates(self.w)

    @invariant()
    def adl_pending_only_while_debt_remains(self):
        for job in self.w.e.adl_pending.values():
            if job.remaining:
                event("adl pending")
                assert job.size_left > 0 and job.bad_debt >= job.remaining

    @invariant()
    def vault_views_are_consistent(self):
        w = self.w
        cash = w.view("vault.cash")
        assert cash == w.token.balance_of(VAULT)
        assert 0 <= w.view("vault.free_cash") <= cash
        assert w.view("vault.total_assets") >= 0


TestWorldMachine = WorldMachine.TestCase


# ---------------------------------------------------------------- open then close at one price


# Sizes in raw 1e18 units: dust (notional below one token unit) and real ones.
raw_size = st.one_of(st.integers(1, 10**12), st.integers(10**14, 6 * 10**18))


@given(
    is_long=st.booleans(),
    lev=leverage,
    size=raw_size,
    extra=st.one_of(st.just(0), raw_size),
    pieces=st.integers(1, 4),
    fee_bps=st.sampled_from([0, 5]),
    background=st.lists(st.tuples(st.booleans(), st.integers(100, 200_000)), max_size=4),
    mid=market,
)
def test_open_then_close__at_an_unchanged_price__never_profits(is_long, lev, size, extra, pieces, fee_bps,
                                                               background, mid):
    """Rounding favours the protocol: notional, fees and requirements round
    against the trader, pro-rata releases floor, the averaged entry rounds
    against the trader. With no fee a round trip returns at most what went
    in; with a fee, even a dust position pays at least one unit each way."""
    w = make_world(traders=[TRADER, *CROWD[:4]], trading_fee=fee_bps * 10**14)
    price = price_of(w, mid)
    for who, (long_, bg_usd) in zip(CROWD, background):
        bg = bg_usd * 10**36 // price
        w.call(who, "open_position", mid, bg if long_ else -bg, bg_usd * USDC // 5, price if long_ else 0)
    before = capital(w, TRADER)
    sign = 1 if is_long else -1
    acceptable = price if is_long else 0
    for amount in (size, extra):
        if amount:
            notional = amount * price // w.e.scale
            w.call(TRADER, "open_position", mid, sign * amount, max(notional // lev, 10 * USDC) + USDC, acceptable)
    pos = w.view("get_position", TRADER, mid)
    note(f"position {pos}")
    left = pos.size
    for k in range(pieces, 0, -1):
        part = left if k == 1 else left // (k + 1)
        if part == 0:
            continue
        try:
            w.call(TRADER, "close_position", mid, -part, 0 if is_long else MAX_UINT)
        except Revert as exc:
            assert exc.reason == "position: dust remainder"
            continue
        left -= part
    if left:
        w.call(TRADER, "close_position", mid, -left, 0 if is_long else MAX_UINT)
    assert w.view("get_position", TRADER, mid).size == 0
    after = capital(w, TRADER)
    assert after <= before
    if fee_bps:
        assert after <= before - 2  # a fee of at least one unit on the open and on the close
