"""One lab run: a seeded book, a price path, a keeper, all through the exact
model (model/), and the metrics of what happened.

    sc = Scenario(book=BookSpec(accounts=10_000), path="october", seed=1)
    result = run(sc)            # a plain dict of integers (JSON-ready)

The world is the devnet's configuration (config/networks.yaml's `local`
BTC-PERP, read through scripts/config.py, so a field the contracts gain
flows in), with `Scenario.market` overriding any of its fields and
`Scenario.engine` setting engine-wide parameters (max_profit). A book larger
than one market side holds is spread over copies of that market, all
following the same path.

Opening: each account deposits what its order escrows, requests its order in
one of the book's entry rounds and the keeper executes it at the next round
(the two-step orders of docs/orders.md); stops and take-profits are set once
every position is open. A refused open (an OrderCancelled, a reverted
request) is counted by reason: "vault: capacity" is the solvency cap.

Keeper, at every tick (a new oracle round on every market): every
liquidatable position is liquidated, in (market, address) order, with the
engine's own ADL ranking when its bad debt exceeds the fund (and
`deleverage` with the next ranked targets until the market's ADL job is
done); then every triggered take-profit and stop-loss is executed.

Speed, exactly: the keeper does not ask the model about every position at
every tick. Each position has a watch price, its liquidation price computed
with the effective margin lowered by the most funding it can owe before the
path ends and by the rounding of every term (`_Watch` below proves the
bound); above it (below it for a short) the position cannot be
liquidatable, so only positions whose watch price the tick crossed are
checked with the model's own `is_liquidatable`, kept in sorted order.
"""

from typing import Dict

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sortedcontainers import SortedList

from model import adl, funding
from model import margin as M
from model import perp_admin as PA
from model import perp_engine as PE
from model import positions as P
from model.fixed_point import WAD, Revert
from risk.book import BookSpec, address, book_notional, draw_book, entry_prices, markets_needed
from risk.errors import LabError
from risk.journal import JournaledWorld
from risk.paths import FEED_DECIMALS, make_path
from risk import policies
from scripts import config as cfg

TOKEN_DECIMALS = 6
UNIT = 10**TOKEN_DECIMALS
SCALE = 10 ** (36 - TOKEN_DECIMALS)
MAX_UINT = 2**256 - 1
T0 = 1_700_000_000
ENTRY_ROUND_SECONDS = 12
OWNER, ENGINE, VAULT, FUND = address(0x0E), address(0xE0), address(0xA0), address(0xF0)
LP, KEEPER = address(0x1F), address(0x4E)
# The lab lifts the open-interest cap (asset units per side) so the book it
# draws opens; a scenario may set it back (market: {max_open_interest: N}).
LAB_MARKET = {"max_open_interest": 10**9}
# Accruals a run may make (each rounds the funding index by at most one
# unit): the watch bound covers this many; a run that makes more stops.
MAX_ACCRUALS = 10**7
CAPACITY = "vault: capacity"
RECORDED = ("PositionLiquidated", "InsuranceFundDrawn", "AutoDeleveraged", "BadDebtSocialized", "TpSlExecuted",
            "OrderCancelled", "DeleveragePending")
_TOP = 2**256  # above any address: (price, _TOP) sorts after every (price, address, ...)


class Scenario(BaseModel):
    """One run: a book, a path, a seed, parameter overrides."""

    model_config = ConfigDict(extra="forbid")

    book: BookSpec = Field(default_factory=BookSpec)
    path: str = "seed"
    seed: int = 1
    market: Dict[str, int] = Field(default_factory=dict,
                                   description="config/networks.yaml market fields to override (e.g. mmf_bps)")
    engine: Dict[str, int] = Field(default_factory=dict,
                                   description="engine-wide parameters: max_profit_bps, min_keeper_reward_units, "
                                               "min_notional_units")
    policies: bool = True  # compute the alternative ADL policies beside the engine's
    record: bool = False  # keep the keeper's calls (for the devnet replay)


class _Replay(Exception):
    """A verb run without snapshots reverted inside: replay exactly."""


class LabWorld(JournaledWorld):
    """The model World. While the book opens its snapshots are undo marks
    (risk/journal.py). Along the path, with `cheap` on, it takes none: the
    keeper checks before it calls, and a verb that reverts inside (a
    restore) stops the run with _Replay rather than leave a half-run verb."""

    cheap = False

    def _snapshot(self):
        if self.cheap:
            return None
        return super()._snapshot()

    def _restore(self, snap):
        if snap is None:
            raise _Replay()
        super()._restore(snap)


def base_market():
    """config/networks.yaml's local BTC-PERP, as its YAML dict."""
    return dict(cfg.load("local")["markets"][0])


def market_config(overrides):
    """The lab's market dict, validated by scripts/config.py's Market model
    (the deploy's own checks), or LabError naming the field."""
    m = {**base_market(), **LAB_MARKET, **overrides}
    try:
        return cfg.Market.model_validate(m, context={"decimals": TOKEN_DECIMALS}).model_dump()
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(x) for x in err["loc"]) or "market"
        raise LabError(f"market: {where}: {err['msg'].removeprefix('Value error, ')}") from None


def feed_address(mid):
    return address(0xFEED00 + mid)


# ---------------------------------------------------------------- world

def lp_deposit(sc, book):
    """Whole tokens the LP deposits: the spec's, or lp_depth_percent of the
    book's entry notional (the vault backs max_profit of every position's
    entry notional: at 100% no open of the default book is refused)."""
    if sc.book.lp_deposit is not None:
        return sc.book.lp_deposit
    return max(1, book_notional(book) * sc.book.lp_depth_percent // 100)


ENGINE_KEYS = {
    # Scenario.engine key: (the engine's setter, what it takes), as config/networks.yaml names them
    "max_profit_bps": "set_max_profit",
    "min_keeper_reward_units": "set_keeper_reward",
    "min_notional_units": "set_keeper_reward",
}


def engine_config(overrides):
    """The engine-wide parameters: config/networks.yaml's `local` entry's
    (those of ENGINE_KEYS it has), then the scenario's."""
    local = cfg.read()["local"]
    return {**{k: local[k] for k in ENGINE_KEYS if k in local}, **overrides}


def _engine_params(w, engine):
    """The scenario's engine-wide parameters, through the engine's setters
    (a key this engine has no setter for, or a value it refuses: LabError)."""
    for key in engine:
        if key not in ENGINE_KEYS:
            raise LabError(f"engine: unknown parameter {key!r} (known: {', '.join(ENGINE_KEYS)})")
        if not (hasattr(PE, ENGINE_KEYS[key]) or hasattr(PA, ENGINE_KEYS[key])):  # the admin facet's verbs
            raise LabError(f"engine: {key}: this engine has no {ENGINE_KEYS[key]}")
    try:
        if "max_profit_bps" in engine:
            w.call(OWNER, "set_max_profit", engine["max_profit_bps"] * cfg.BPS)
        if "min_keeper_reward_units" in engine or "min_notional_units" in engine:
            w.call(OWNER, "set_keeper_reward", engine.get("min_keeper_reward_units", 0),
                   engine.get("min_notional_units", 0))
    except Revert as e:
        raise LabError(f"engine: {', '.join(f'{k} {v}' for k, v in engine.items())}: {e.reason}") from None


def _seed_lp(w, amount):
    """The LP's deposit, before any market exists: straight in, or through
    the vault's epochs where it has them (ERC-7540: request, settle, claim;
    with no market there is no round to wait for)."""
    from model import liquidity_vault
    w.mint(LP, amount)
    w.approve(LP, VAULT, MAX_UINT)
    if hasattr(liquidity_vault, "requestDeposit"):
        w.call(LP, "vault.requestDeposit", amount, LP, LP)
        w.call(LP, "vault.settle")
        w.call(LP, "vault.deposit", w.view("vault.claimable_deposit", LP), LP)
    else:
        w.call(LP, "vault.deposit", amount, LP)


def build_world(sc, first_answer, n_markets, book, t0=T0):
    m = market_config(sc.market)
    w = LabWorld(engine=ENGINE, vault=VAULT, fund=FUND, owner=OWNER, token_decimals=TOKEN_DECIMALS, now=t0)
    w.call(OWNER, "initialize", VAULT, FUND)
    _seed_lp(w, lp_deposit(sc, book) * UNIT)
    for mid in range(n_markets):
        w.add_feed(feed_address(mid), FEED_DECIMALS, first_answer)
        try:
            w.call(OWNER, "add_market", cfg.market_params(m, feed_address(mid), TOKEN_DECIMALS))
        except Revert as e:
            raise LabError(f"market: refused by the engine: {e.reason}") from None
    _engine_params(w, engine_config(sc.engine))
    if sc.book.insurance_fund:
        w.mint(FUND, sc.book.insurance_fund * UNIT)
    return w


def set_round(w, n_markets, answer, now, calls=None):
    """A new round on every market's feed at `now` (recorded in `calls` as
    ("feed", mid, answer) when given)."""
    w.now = now
    for mid in range(n_markets):
        w.feeds[feed_address(mid)].set_answer(answer, now)
        if calls is not None:
            calls.append((now, None, "feed", (mid, answer)))


# ---------------------------------------------------------------- the run

class Run:
    """The state of one run: the world, the watch lists, the metrics."""

    def __init__(self, sc, path=None, journal=True, t0=T0, addresses=None):
        """`t0`: the world's start time (the devnet replay starts after its
        chain's head). `addresses`: the traders' addresses, in the order of
        the book's (a replay uses accounts it can send from; give them in
        ascending order to keep the book's order, which liquidations and
        ADL ties follow)."""
        self.sc = sc
        self.path = path if path is not None else make_path(sc.path, sc.seed)
        self.book = draw_book(sc.book, sc.seed)
        if addresses is not None:
            if len(addresses) < len(self.book):
                raise LabError(f"{len(addresses)} addresses for a book of {len(self.book)}")
            for a, addr in zip(self.book, addresses):
                a.address = addr
        self.n_markets = markets_needed(sc.book)
        self.first = self.path[0][1]
        self.w = build_world(sc, self.first, self.n_markets, self.book, t0)
        self.event_log = []  # with sc.record: the engine's exit events, in order
        self.use_journal = journal
        self.opening = True
        self.calls = []  # (phase, now, sender, verb, args) when sc.record
        self.refusals = {}
        self.m = _Metrics()
        self.adl_events = []
        self.ranking_checked = False

    # ------------------------------------------------------------ calls
    def _rec(self):
        return self.calls if self.sc.record else None

    def _call(self, sender, verb, *args):
        """A verb on the model: atomic (a revert leaves the world as it was)
        while the book opens, under the journal; along the path without
        snapshots (see LabWorld)."""
        if self.sc.record:
            self.calls.append((self.w.now, sender, verb, args))
        w = self.w
        if w.journal is not None:
            try:
                return w.call(sender, verb, *args)
            finally:
                w.commit()
        # opening without the journal: the plain World's snapshots (the
        # reference the journal is tested against)
        return w.call(sender, verb, *args, atomic=self.opening)

    # ------------------------------------------------------------ opening
    def open_book(self):
        sc, w = self.sc, self.w
        p = w.e.params[0]
        max_lev = WAD // p.imf
        answers = entry_prices(sc.book, self.first, sc.seed)
        if self.use_journal:
            w.journal_on()
        scale_feed = 10 ** (18 - FEED_DECIMALS)
        t = w.now
        by_round = {}
        for a in self.book:
            by_round.setdefault(a.round, []).append(a)
        self.plans = {}
        for r in range(sc.book.entry_rounds):
            accounts = by_round.get(r, [])
            t += ENTRY_ROUND_SECONDS
            price = answers[r] * scale_feed
            set_round(w, self.n_markets, answers[r - 1] if r else self.first, t, self._rec())
            orders = []
            for a in accounts:
                lev = min(a.leverage, max_lev)
                margin_ = a.margin * UNIT
                size = margin_ * lev * SCALE // price
                if size == 0:
                    continue
                acceptable = price * 101 // 100 if a.is_long else price * 99 // 100
                fee_at = M.requirement(size, acceptable, p.trading_fee, SCALE)
                fee = M.requirement(size, price, p.trading_fee, SCALE)
                extra = max(fee - fee_at, 0)  # a sell escrows the fee at its lower acceptable price
                deposit = margin_ + extra + fee_at + p.execution_fee
                w.mint(a.address, deposit)
                w.approve(a.address, ENGINE, MAX_UINT)
                self._call(a.address, "deposit", deposit)
                delta = size if a.is_long else -size
                try:
                    oid = self._call(a.address, "request_order", a.market, delta, margin_ + extra, acceptable)
                except Revert as e:
                    self._refused(e.reason)
                    continue
                orders.append(oid)
                self.plans[(a.address, a.market)] = a
            t += 1
            set_round(w, self.n_markets, answers[r], t, self._rec())
            self._execute_orders(orders)
        self._collect(w.events)
        w.events.clear()
        # stops and take-profits, once every position is open
        t += 1
        w.now = t
        for (acct, mid), a in self.plans.items():
            pos = w.e.positions.get((acct, mid))
            if pos is None or not (a.stop_way or a.take_profit_bps):
                continue
            liq = M.liquidation_price(pos.size, pos.entry_price, pos.margin, w.e.params[mid].mmf, SCALE)
            e = pos.entry_price
            tp = sl = 0
            if a.take_profit_bps:
                tp = e * (10_000 + (a.take_profit_bps if pos.size > 0 else -a.take_profit_bps)) // 10_000
            if a.stop_way and liq:
                sl = e - (e - liq) * a.stop_way // 100
            try:
                self._call(acct, "set_tp_sl", mid, tp, sl)
            except Revert as e:
                self._refused("tp_sl " + str(e.reason))
        w.events.clear()
        if self.use_journal:
            w.journal_off()
        self.opened_at = t
        self.opening = False

    def _refused(self, reason):
        self.refusals[reason] = self.refusals.get(reason, 0) + 1

    def _execute_orders(self, orders):
        for oid in orders:
            self._call(KEEPER, "execute_order", oid)

    # ------------------------------------------------------------ ticks
    def run_path(self, progress=None):
        w = self.w
        w.cheap = True
        self.watch = _Watch(self)
        start = self.opened_at + 1
        end = start + self.path[-1][0]
        self.watch.horizon = end - w.now
        self.watch.build()
        series = self.m.series
        for i, (dt, answer) in enumerate(self.path):
            t = start + dt
            set_round(w, self.n_markets, answer, t, self._rec())
            self.tick = i
            self._keeper_tick()
            self._collect(w.events)
            w.events.clear()
            series["price"].append(answer)
            series["fund"].append(w.token.balance_of(FUND))
            series["lp_assets"].append(w.view("vault.total_assets"))
            series["lp_supply"].append(w.v.total_supply)
            series["liquidations"].append(self.m.liquidations)
            series["adl_fills"].append(self.m.adl_fills)
            if progress:
                progress()
        w.cheap = False

    def _keeper_tick(self):
        w = self.w
        for mid in range(self.n_markets):
            price = P._price(w, mid, False)
            for acct in self.watch.liquidation_candidates(mid, price):
                if (acct, mid) not in w.e.positions:
                    continue
                if not PE.is_liquidatable(w, acct, mid):
                    continue
                self._liquidate(acct, mid, price)
        for mid in range(self.n_markets):
            price, updated = P._round(w, mid, False)
            for acct in self.watch.tp_sl_candidates(mid, price):
                key = (acct, mid)
                pos = w.e.positions.get(key)
                if pos is None or updated <= w.e.tp_sl_at.get(key, 0):
                    continue
                if not P._tp_sl_hit(pos, price) or PE.is_liquidatable(w, acct, mid):
                    continue
                self._do(KEEPER, "execute_tp_sl", acct, mid)
                self.watch.update(acct, mid)

    def _liquidate(self, acct, mid, price):
        w = self.w
        pos = w.e.positions[(acct, mid)]
        equity = P._equity(w, pos, mid, price)
        targets = []
        event = None
        if equity < 0 and -equity > w.token.balance_of(FUND):
            scored = self._scored(mid, pos.size, price)
            targets = [m for _, _, m in scored[:P.MAX_ADL_TARGETS]]
            if self.sc.policies:
                event = policies.capture(w, mid, pos, price, [m for _, _, m in scored])
        n = len(w.events)
        self._do(KEEPER, "liquidate", acct, mid, targets)
        steps = 0
        while w.e.adl_pending.get(mid, P.AdlPending()).remaining > 0:
            steps += 1
            if steps > P.MAX_SIDE_POSITIONS:
                raise LabError(f"tick {self.tick}: market {mid}: the ADL job does not finish")
            job = w.e.adl_pending[mid]
            scored = self._scored(mid, job.bankrupt_size, job.price)  # ranked at the job's price
            self._do(KEEPER, "deleverage", mid, [m for _, _, m in scored[:P.MAX_ADL_TARGETS]])
        touched = [acct] + [f["target"] for name, f in w.events[n:] if name == "AutoDeleveraged"]
        for a in touched:
            self.watch.update(a, mid)
        if event is not None:
            event.record_engine(w.events[n:], self.tick)
            self.adl_events.append(event)

    def _scored(self, mid, bankrupt_size, price):
        """The engine's ADL ranking (adl._ranking): profitable positions on
        the other side, by score descending, lower address first on a tie,
        as (-score, address, account). Computed inline with the same
        integer formulas (margin.upnl, margin.adl_score), four times faster;
        the first ranking of a run is checked against the model's own
        adl._ranking, and the model checks every list it is given ("adl:
        unsorted", "adl: not ranked")."""
        w = self.w
        key = mid * 2 + (1 if bankrupt_size > 0 else 0)
        positions, scale = w.e.positions, SCALE
        out = []
        for m in w.e.members.get(key, ()):
            pos = positions[(m, mid)]
            size = pos.size
            pnl = size * (price - pos.entry_price) // scale
            if pnl <= 0:
                continue
            mg = pos.margin
            score = 0 if mg == 0 else (pnl * WAD // mg) * ((size if size > 0 else -size) * price // scale) // (mg + pnl)
            out.append((-score, int(m, 16), m))
        out.sort()
        if not self.ranking_checked:
            self.ranking_checked = True
            model = adl._ranking(w, mid, bankrupt_size, price, None)
            if model != [m for _, _, m in out]:
                raise LabError("the lab's ADL ranking differs from the model's adl._ranking: update risk/lab.py _scored")
        return out

    def _do(self, sender, verb, *args):
        try:
            self._call(sender, verb, *args)
        except (Revert, _Replay) as e:
            reason = getattr(e, "reason", "a revert inside")
            raise LabError(f"tick {self.tick}: the keeper's {verb}{args[:2]} reverted in the model: {reason!r} "
                           "(a lab bug: the keeper checks before it calls)") from None

    # ------------------------------------------------------------ metrics
    def _collect(self, events):
        m = self.m
        if self.sc.record:
            self.event_log.extend((n, dict(f)) for n, f in events if n in RECORDED)
        for name, f in events:
            if name == "PositionLiquidated":
                m.liquidations += 1
                m.bad_debt += f["bad_debt"]
                m.keeper_rewards += f["keeper_reward"]
                m.penalties += f["penalty"]
                if f["bad_debt"]:
                    m.bankrupt += 1
                m.liquidated_by_tick.append((getattr(self, "tick", -1), f["market_id"]))
            elif name == "InsuranceFundDrawn":
                m.fund_drawn += f["amount"]
                m.fund_draws += 1
                m.min_after_draw = min(m.min_after_draw, f["remaining"])
            elif name == "AutoDeleveraged":
                m.adl_fills += 1
                m.hit[f["target"]] = m.hit.get(f["target"], 0) + f["haircut"]
                m.haircuts += f["haircut"]
            elif name == "BadDebtSocialized":
                m.socialized += f["amount"]
            elif name == "TpSlExecuted":
                m.tp_sl += 1
                m.keeper_rewards += f["execution_fee"]
            elif name == "OrderCancelled":
                self._refused(f["reason"])
            elif name == "OrderExecuted":
                m.opened += 1

    def result(self):
        w, m = self.w, self.m
        out = {
            "scenario": self.sc.model_dump(mode="json"),
            "markets": self.n_markets,
            "accounts": len(self.book),
            "ticks": len(self.path),
            "opened": m.opened,
            "refusals": dict(sorted(self.refusals.items(), key=lambda kv: str(kv[0]))),
            "capacity_refusals": self.refusals.get(CAPACITY, 0),
            "liquidations": m.liquidations,
            "bankrupt_liquidations": m.bankrupt,
            "bad_debt": m.bad_debt,
            "fund_start": self.sc.book.insurance_fund * UNIT,
            "lp_deposit": lp_deposit(self.sc, self.book) * UNIT,
            "fund_end": w.token.balance_of(FUND),
            "fund_drawn": m.fund_drawn,
            "fund_draws": m.fund_draws,
            "penalties": m.penalties,
            "adl_fills": m.adl_fills,
            "accounts_hit": len(m.hit),
            "haircuts": m.haircuts,
            "socialized_loss": m.socialized,
            "keeper_rewards": m.keeper_rewards,
            "tp_sl_executed": m.tp_sl,
            "fund_needed": m.fund_needed(self),
            "series": m.series,
            "checks": self.watch.checks if hasattr(self, "watch") else 0,
        }
        if self.sc.policies:
            out["policies"] = policies.summarize(self.adl_events)
        return out


class _Metrics:
    def __init__(self):
        self.opened = self.liquidations = self.bankrupt = self.bad_debt = 0
        self.fund_drawn = self.fund_draws = self.penalties = 0
        self.adl_fills = self.haircuts = self.socialized = self.keeper_rewards = self.tp_sl = 0
        self.hit = {}
        self.min_after_draw = MAX_UINT
        self.liquidated_by_tick = []
        self.series = {k: [] for k in ("price", "fund", "lp_assets", "lp_supply", "liquidations", "adl_fills")}

    def fund_needed(self, run):
        """The smallest starting fund that pays every bad debt of this run in
        full (no ADL, no socialized loss), exact when the fund never ran dry
        in it: the fund's balance right after each draw shifts with its
        start, and a draw is paid in full while that stays >= 0. None when
        the fund ran dry (then the run is not the one a larger fund would
        see: ADL changed the book); the sweep runs with a fund that cannot."""
        if self.adl_fills or self.socialized:
            return None
        if self.fund_draws == 0:
            return 0
        start = run.sc.book.insurance_fund * UNIT
        return max(0, start - self.min_after_draw)


# ---------------------------------------------------------------- watch

class _Watch:
    """Per market side, positions in order of their watch price; the
    take-profits and stops in order of their trigger.

    Watch price of a long: `margin.liquidation_price` with the effective
    margin lowered by B = (the most funding it can owe before the path
    ends) + 3 units. Proof that a long at price p >= watch is not
    liquidatable: its equity is eff + floor(s (p - e) / S) >= eff - 1 +
    s (p - e) / S, its requirement ceil(ceil(s p / S) mmf / 1e18) <=
    s p mmf / (S 1e18) + 2, and eff >= eff_now - funding bound; equity >=
    requirement follows from p >= (s e - (eff_now - B) S) 1e18 / (s (1e18 -
    mmf)), which liquidation_price rounds up. A short mirrors it (rounded
    down). Between two keeper calls the effective margin moves only by
    funding: a position whose margin or size changes (an ADL fill) gets a
    new watch price.

    The payout cap (max_profit) cuts a position's PnL only when it is
    far in profit: a long's only above entry x (1 + max_profit), a short's
    below entry x (1 - max_profit) (less the funding bound); beyond 99%
    of that threshold (101% for a short) the position is checked as well.
    """

    def __init__(self, run):
        self.run = run
        self.w = run.w
        self.checks = 0
        self.horizon = 0
        self.idx_move = {}
        self.entry = {}  # (acct, mid) -> [(list, item), ...]
        n = run.n_markets
        self.low = [SortedList() for _ in range(n)]  # longs: check when p < watch
        self.high = [SortedList() for _ in range(n)]  # shorts: check when p > watch
        self.cap_low = [SortedList() for _ in range(n)]  # shorts in the cap zone: p <= t
        self.cap_high = [SortedList() for _ in range(n)]  # longs in the cap zone: p >= t
        self.trig_low = [SortedList() for _ in range(n)]  # long stops, short take-profits: p <= t
        self.trig_high = [SortedList() for _ in range(n)]  # long take-profits, short stops: p >= t
        self.always = [set() for _ in range(n)]

    def build(self):
        for (acct, mid) in list(self.w.e.positions):
            self.update(acct, mid)

    def _bound(self, pos, mid):
        """The most funding `pos` can owe from now to the path's end, + 1:
        the index moves at most max_funding_rate x price x seconds / 1e18,
        plus one unit per accrual's floor."""
        if mid not in self.idx_move:
            p = self.w.e.params[mid]
            pmax = max(a for _, a in self.run.path) * self.w.e.feed_scale[mid]
            pmax = max(pmax, P._price(self.w, mid, False))
            self.idx_move[mid] = p.max_funding_rate * pmax * self.horizon // WAD + MAX_ACCRUALS + 1
        return -(-abs(pos.size) * self.idx_move[mid] // SCALE) + 1

    def update(self, acct, mid):
        key = (acct, mid)
        for lst, item in self.entry.pop(key, ()):
            lst.remove(item) if lst is not None else self.always[mid].discard(acct)
        pos = self.w.e.positions.get(key)
        if pos is None:
            return
        w = self.w
        price = P._price(w, mid, False)
        owed = funding.owed(pos.size, P._pending_index(w, mid, price, pos.size), pos.funding_index, SCALE)
        bound = self._bound(pos, mid)
        eff_low = pos.margin - owed - bound - 3
        a = P.addr_int(acct)
        items = []
        mmf = w.e.params[mid].mmf
        watch = M.liquidation_price(pos.size, pos.entry_price, eff_low, mmf, SCALE)
        s, e = abs(pos.size), pos.entry_price
        mp = getattr(w.e, "max_profit", None)
        slack_ok = (abs(owed) + bound + 5) * 100 * SCALE < s * e
        if pos.size > 0:
            items.append((self.low[mid], (watch, a, acct)))
            if mp is not None:
                t = e * (WAD + mp) // WAD * 99 // 100 if slack_ok else 0
                items.append((self.cap_high[mid], (t, a, acct)))
        else:
            if watch == 0:
                items.append((None, acct))
            else:
                items.append((self.high[mid], (watch, a, acct)))
            if mp is not None and mp < WAD:
                t = e * (WAD - mp) // WAD * 101 // 100 if slack_ok else P.MAX_PRICE
                items.append((self.cap_low[mid], (t, a, acct)))
        if pos.take_profit or pos.stop_loss:
            lo = pos.stop_loss if pos.size > 0 else pos.take_profit
            hi = pos.take_profit if pos.size > 0 else pos.stop_loss
            if lo:
                items.append((self.trig_low[mid], (lo, a, acct)))
            if hi:
                items.append((self.trig_high[mid], (hi, a, acct)))
        for lst, item in items:
            if lst is None:
                self.always[mid].add(item)
            else:
                lst.add(item)
        self.entry[key] = items

    def liquidation_candidates(self, mid, price):
        """Accounts whose watch the price crossed, by address."""
        found = set(self.always[mid])
        for _, _, acct in self.low[mid].irange(minimum=(price + 1,)):
            found.add(acct)
        for _, _, acct in self.high[mid].irange(maximum=(price,)):
            found.add(acct)
        for _, _, acct in self.cap_high[mid].irange(maximum=(price, _TOP)):
            found.add(acct)
        for _, _, acct in self.cap_low[mid].irange(minimum=(price,)):
            found.add(acct)
        self.checks += len(found)
        return sorted(found, key=P.addr_int)

    def tp_sl_candidates(self, mid, price):
        found = set()
        for _, _, acct in self.trig_low[mid].irange(minimum=(price,)):
            found.add(acct)
        for _, _, acct in self.trig_high[mid].irange(maximum=(price, _TOP)):
            found.add(acct)
        return sorted(found, key=P.addr_int)


def run(sc, path=None, progress=None):
    """One scenario, start to end: the result dict."""
    r = Run(sc, path)
    r.open_book()
    r.run_path(progress)
    return r.result()
