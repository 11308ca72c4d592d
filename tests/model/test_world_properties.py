"""Hypothesis properties of the model World alone (no chain).

A state machine drives every verb (deposits; orders to open, increase,
reduce, close and remove margin, their execution before and after a later
price round, their cancellation before and after expiry; margin adds,
TP/SL, price crashes, time, liquidations with the model's ADL ranking,
deleverage continuations, LP deposits and redemptions, pause) and checks
after every step:

- token conservation: the engine holds exactly free collateral + margins
  + the escrow of pending orders, and the token supply equals the sum of
  balances;
- aggregates: open interest, cost and funding sums and the side sets equal
  the sums over positions;
- an account with no open position never loses capital (wallet + free +
  escrow), except the execution fee of its own order cancelled at
  execution;
- a verb that reverts leaves the world exactly as it was, with a reason
  string that the contracts (or snekmate) really contain; an order never
  executes before a round later than its request ("order: no later
  price"), nor after its expiry, and is cancelled by its requester only
  after it ("order: not expired");
- no healthy position is liquidated; no executed risk-adding order leaves
  its own position liquidatable.

A separate property: open then close at an unchanged price never profits.
"""

import copy

from hypothesis import event, given, note, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from model import adl as model_adl
from model import margin as model_margin
from model.fixed_point import Revert
from model import positions as P
from model.positions import MAX_ADL_TARGETS
from tests.model.sources import SNEKMATE_REASONS, all_revert_reasons
from tests.model.worlds import (
    ANY_PRICE, CROWD, FUND, KEEPER, LP, OTHER_TRADER, OWNER, TRADER, USDC, VAULT, WAD,
    advance, assert_aggregates, assert_token_conservation, capital, escrows, later_round, make_world, order,
    price_of, set_price, trade,
)

KNOWN_REASONS = all_revert_reasons() | SNEKMATE_REASONS
ACTORS = [TRADER, OTHER_TRADER, *CROWD[:4]]
WATCHED = [*ACTORS, KEEPER]

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
        self.pending = []  # order ids requested and not yet executed or cancelled, in request order
        for t, mid, is_long, lev, usd in book:
            self.request_open(t, mid, is_long, lev, usd)
        for mid in (0, 1):
            later_round(self.w, mid)
        while self.pending:
            self.execute_pending(0, "no round")

    # ------------------------------------------------------------ the verb wrapper

    def act(self, sender, verb, *args):
        """Run a verb; check the no-position-capital and revert properties.
        Returns True on success (a request_order's order id is kept in
        self.pending), False on a revert."""
        w = self.w
        flat = {a: self.capital(a) for a in WATCHED if not self.has_position(a)}
        # an order cancelled at execution costs its account the execution fee
        allowed = {}
        if verb == "execute_order" and (o := w.e.orders.get(args[0])) is not None:
            allowed[o.account] = o.execution_fee
        before = world_state(w)
        n = len(w.events)
        try:
            got = w.call(sender, verb, *args)
        except Revert as exc:
            event(f"{verb}: reverted {exc.reason}")
            assert exc.reason in KNOWN_REASONS, f"{verb}{args} reverted {exc.reason!r}, a reason no contract has"
            assert world_state(w) == before, f"{verb} reverted but changed the world"
            return False
        cancelled = [f["reason"] for name, f in w.events[n:] if name == "OrderCancelled"]
        if cancelled:
            assert cancelled[0] in KNOWN_REASONS, f"{verb}{args} cancelled with {cancelled[0]!r}, a reason no contract has"
            event(f"{verb}: cancelled {cancelled[0]}")
        else:
            event(f"{verb}: ok")
        if verb == "request_order":
            self.pending.append(got)
        elif verb in ("execute_order", "cancel_order"):
            self.pending.remove(args[0])
        for a, c in flat.items():
            if not self.has_position(a):
                loss = c - self.capital(a)
                assert loss <= allowed.get(a, 0), f"{a} had no position and lost {loss} in {verb}{args}"
        return True

    def capital(self, a):
        """Wallet, free collateral and the escrow of its pending orders."""
        return capital(self.w, a) + escrows(self.w, a)

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

    # ------------------------------------------------------------ orders

    @rule(t=actor, mid=market, is_long=st.booleans(), lev=leverage, usd=notional_usd)
    def request_open(self, t, mid, is_long, lev, usd):
        """An open, or an increase of the position already there."""
        w = self.w
        price = price_of(w, mid)
        size = usd * 10**36 // price
        if size == 0:
            return
        old = w.view("get_position", t, mid)
        if old.size != 0:
            is_long = old.size > 0  # adding to it; the opposite direction is a reduce
        size = size if is_long else -size
        margin_amount = usd * USDC // lev + USDC
        self.act(t, "request_order", mid, size, margin_amount, price if is_long else 0)

    @rule(pick=st.integers(0, 10**6), part=st.sampled_from([4, 2, 1, 0]))
    def request_close(self, pick, part):
        """A reduce by a quarter or a half, a full close, or (0) a reduce
        larger than the position: it executes as a full close."""
        if (got := self.picked(pick)) is None:
            return
        t, mid, old = got
        delta = -2 * old.size if part == 0 else -old.size if part == 1 else -(old.size // part)
        if delta:
            self.act(t, "request_order", mid, delta, 0, 0 if old.size > 0 else ANY_PRICE)

    @rule(pick=st.integers(0, 10**6), share=st.integers(1, 90))
    def request_margin_removal(self, pick, share):
        if (got := self.picked(pick)) is None:
            return
        t, mid, old = got
        self.act(t, "request_order", mid, 0, -max(old.margin * share // 100, 1), 0)

    @precondition(lambda self: self.pending)
    @rule(pick=st.integers(0, 10**6), when=st.sampled_from(["later round"] * 3 + ["no round", "past expiry"]))
    def execute_pending(self, pick, when="later round"):
        """Execute a pending order after a new round of its market's feed
        (one second on, same answer); or without one: then the feed's last
        round may be older than the request, which must revert; or past the
        order's expiry (the feeds fresh), which must revert too."""
        w = self.w
        oid = self.pending[pick % len(self.pending)]
        o = w.e.orders[oid]
        if when == "later round":
            later_round(w, o.market_id)
        elif when == "past expiry":
            advance(w, P._load_order(w, oid).expires_at + 1 - w.now)
        feed = w.e.params[o.market_id].feed
        no_later_round = w.feeds[feed].updated_at <= o.requested_at
        expired = w.now > P._load_order(w, oid).expires_at
        n = len(w.events)
        risk = o.size_delta == 0 or not o.reduce_only
        if not self.act(KEEPER, "execute_order", oid):
            if expired:
                event("execute_order: expired")
            return
        assert not expired, f"order {oid} executed past its expiry"
        assert not no_later_round, f"order {oid} executed at a round no later than its request"
        if any(name == "OrderExecuted" for name, _ in w.events[n:]) and risk:
            assert not w.view("is_liquidatable", o.account, o.market_id), (
                f"an executed risk-adding order left its position liquidatable: {o}")

    @precondition(lambda self: self.pending)
    @rule(pick=st.integers(0, 10**6), other=st.booleans(), wait=st.booleans())
    def cancel_pending(self, pick, other, wait):
        """The requester cancels (only once expired: a full refund; `wait`
        lets it expire first); anyone else is refused."""
        w = self.w
        oid = self.pending[pick % len(self.pending)]
        o = w.e.orders[oid]
        if wait:
            w.now = max(w.now, P._load_order(w, oid).expires_at + 1)
        sender = KEEPER if other else o.account
        refund = P._escrow(w, o)
        free = w.e.free.get(o.account, 0)
        expired = w.now > P._load_order(w, oid).expires_at
        if self.act(sender, "cancel_order", oid):
            assert sender == o.account and expired, f"order {oid} cancelled by {sender}, expired {expired}"
            assert w.e.free[o.account] == free + refund, "an expired order's cancel is not a full refund"
        else:
            assert sender != o.account or not expired, f"the requester could not cancel expired order {oid}"

    @rule(pick=st.integers(0, 10**6), amount=st.integers(1, 50_000 * USDC))
    def add_margin(self, pick, amount):
        if (got := self.picked(pick)) is None:
            return
        t, mid, _ = got
        self.act(t, "add_margin", mid, amount)

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
        self.act(LP, "vault.requestDeposit", amount, LP, LP)

    @rule(share=st.integers(1, 100))
    def lp_redeems(self, share):
        shares = self.w.v.balances.get(LP, 0) * share // 100
        self.act(LP, "vault.requestRedeem", max(shares, 1), LP, LP)

    @rule()
    def lp_epoch_settles_and_is_claimed(self):
        """The vault's epochs (ERC-7540): anyone settles, the LP claims."""
        self.act(KEEPER, "vault.settle")
        if assets := self.w.view("vault.claimable_deposit", LP):
            self.act(LP, "vault.deposit", assets, LP)
        if shares := self.w.view("vault.claimable_redeem", LP):
            self.act(LP, "vault.redeem", shares, LP, LP)

    @rule(amount=st.integers(1, 100_000 * USDC))
    def donation_to_fund(self, amount):
        self.w.mint(FUND, amount)

    @rule(pick=st.integers(0, 10**6))
    def pause_stops_only_new_risk(self, pick):
        """Paused: requesting an open or a margin removal reverts, and an open
        requested before the pause is cancelled at execution; a close is
        requested and executes."""
        w = self.w
        t = ACTORS[pick % len(ACTORS)]
        price = price_of(w, 0)
        size = 10**36 // price
        long_ = w.view("get_position", t, 0).size >= 0
        opened = self.act(t, "request_order", 0, size if long_ else -size, 1_000 * USDC, price if long_ else 0)
        if not self.act(OWNER, "pause"):
            return
        assert not self.act(t, "request_order", 0, size if long_ else -size, 1_000 * USDC, price if long_ else 0)
        later_round(w, 0)
        if opened:
            n = len(w.events)
            assert self.act(KEEPER, "execute_order", self.pending[-1])
            assert [f["reason"] for name, f in w.events[n:] if name == "OrderCancelled"] == [
                "pausable: contract is paused"]
        if (got := self.picked(pick)) is not None:
            t, mid, old = got
            assert not self.act(t, "request_order", mid, 0, -1, 0)
            if self.act(t, "request_order", mid, -old.size, 0, 0 if old.size > 0 else ANY_PRICE):
                later_round(w, mid)
                n = len(w.events)
                if self.act(KEEPER, "execute_order", self.pending[-1]):
                    assert "pausable: contract is paused" not in [
                        f["reason"] for name, f in w.events[n:] if name == "OrderCancelled"]
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
    in less the execution fees its orders paid the keeper; with a fee, even
    a dust position pays at least one unit each way on top. Funding is off:
    each order waits a second for its later round, and a position on the
    lighter side earns funding meanwhile, which is income, not rounding."""
    w = make_world(traders=[TRADER, *CROWD[:4]], trading_fee=fee_bps * 10**14, funding_k=0)
    price = price_of(w, mid)
    for who, (long_, bg_usd) in zip(CROWD, background):
        bg = bg_usd * 10**36 // price
        trade(w, who, mid, bg if long_ else -bg, bg_usd * USDC // 5, price if long_ else 0)
    before = capital(w, TRADER)
    keeper0 = w.e.free.get(KEEPER, 0)
    sign = 1 if is_long else -1
    acceptable = price if is_long else 0
    for amount in (size, extra):
        if amount:
            notional = amount * price // w.e.scale
            # A sell names acceptable price 0, so its fee is escrowed at 0 and
            # taken out of the margin at execution (decision 42): the margin
            # carries the fee as well, or a 100x short over 2,000 USDC of
            # notional is rightly cancelled "margin: below initial" (a CI seed
            # in six drew one).
            fee = model_margin.requirement(amount, price, w.e.params[mid].trading_fee, w.e.scale)
            trade(w, TRADER, mid, sign * amount, max(notional // lev, 10 * USDC) + USDC + fee, acceptable)
    pos = w.view("get_position", TRADER, mid)
    note(f"position {pos}")
    left = pos.size
    close_at = 0 if is_long else ANY_PRICE
    for k in range(pieces, 0, -1):
        part = left if k == 1 else left // (k + 1)
        if part == 0:
            continue
        reason = order(w, TRADER, mid, -part, 0, close_at)
        if reason is not None:
            assert reason == "position: dust remainder"
            continue
        left -= part
    if left:
        trade(w, TRADER, mid, -left, 0, close_at)
    assert w.view("get_position", TRADER, mid).size == 0 and not w.e.orders
    after = capital(w, TRADER)
    fees = w.e.free.get(KEEPER, 0) - keeper0  # the execution fees of the trader's orders
    assert fees >= 2 * w.e.params[mid].execution_fee
    assert after + fees <= before
    if fee_bps:
        assert after + fees <= before - 2  # a fee of at least one unit on the open and on the close
