"""Mirror of contracts/positions.vy: engine state and shared helpers.

Functions take the world `w` (see protocol.py) for the clock, the oracle,
the token and the sender; engine storage lives in `w.e` (EngineState).
"""

from dataclasses import dataclass, field, replace

from model import funding, margin
from model.fixed_point import WAD, Revert, check, mul_div_down, mul_div_up, div_floor

MAX_SIZE = 2**120
MAX_PRICE = 2**128
MAX_AMOUNT = 2**128
OFFSET = 2**127
# Masks of positions.vy's packed hot-path copy of the market parameters
# (_packed); the model stores the parameters unpacked.
MASK64 = 2**64 - 1
MASK160 = 2**160 - 1
MASK32 = 2**32 - 1
MAX_SIDE_POSITIONS = 1000
MAX_ADL_TARGETS = 20
MAX_ADL_JOBS = 4
MAX_MARKETS = 64
MIN_IMF = 10**16
MAX_TRADING_FEE = 10**16
MAX_LIQ_FEE = 5 * 10**16
MAX_KEEPER_SHARE = 5 * 10**17
MAX_FUNDING_K = 10**14
MAX_FUNDING_RATE = 10**14
MAX_PRICE_AGE = 86400
MAX_OPEN_INTEREST = 2**120
MAX_ORDER_MARGIN = 2**127
MAX_ORDER_TIME = 2**35
MIN_ORDER_EXPIRY = 60
MAX_ORDER_EXPIRY = 7 * 86400
DEFAULT_ORDER_EXPIRY = 7200
MAX_EXECUTION_FEE_TOKENS = 100
MIN_MAX_PROFIT = 25 * 10**16
MAX_MAX_PROFIT = 10 * 10**18
DEFAULT_MAX_PROFIT = 5 * 10**17
MAX_KEEPER_REWARD_TOKENS = 100
STALE_HEARTBEATS = 2
MAX_FEED_JUMP = 5 * 10**16
MAX_SEQUENCER_GRACE = 86400
SEQUENCER_UP = 0
SEQUENCER_DOWN = 1
SEQUENCER_GRACE = 2
ZERO = "0x" + "00" * 20
# positions._mmf / _ramp_mmf: a raised mmf ramps in at most 1 bp an hour
MAX_MMF_RAISE = 10**14
MMF_RAMP_PERIOD = 3600
MAX_BORROW_RATE = MAX_MMF_RAISE // MMF_RAMP_PERIOD


@dataclass
class Position:
    size: int = 0
    entry_price: int = 0
    margin: int = 0
    funding_index: int = 0
    take_profit: int = 0
    stop_loss: int = 0


@dataclass
class MarketParams:
    feed: str
    imf: int
    mmf: int
    liq_fee: int
    keeper_share: int
    trading_fee: int
    insurance_share: int
    funding_k: int
    max_funding_rate: int
    max_price_age: int
    max_open_interest: int
    min_margin: int
    execution_fee: int

    def as_tuple(self):
        return (self.feed, self.imf, self.mmf, self.liq_fee, self.keeper_share, self.trading_fee,
                self.insurance_share, self.funding_k, self.max_funding_rate, self.max_price_age,
                self.max_open_interest, self.min_margin, self.execution_fee)


@dataclass
class OracleParams:
    min_price: int = 1
    max_price: int = MAX_PRICE - 1
    heartbeat: int = 0
    fallback: str = "0x" + "00" * 20
    fallback_max_age: int = 0
    fallback_scale: int = 0  # stored on chain in _oracle[1], not returned by oracle_params

    def as_tuple(self):
        return (self.min_price, self.max_price, self.heartbeat, self.fallback, self.fallback_max_age)


@dataclass
class Order:
    account: str = "0x" + "00" * 20
    market_id: int = 0
    size_delta: int = 0
    margin_delta: int = 0
    acceptable_price: int = 0
    requested_at: int = 0
    reduce_only: bool = False
    trading_fee: int = 0
    execution_fee: int = 0
    escrow: int = 0
    expires_at: int = 0


@dataclass
class MarketState:
    long_oi: int = 0
    short_oi: int = 0
    long_cost: int = 0
    short_cost: int = 0
    sum_size_index: int = 0
    funding_index: int = 0
    last_funding_time: int = 0
    # the contract packs these three into one slot (MarketState.clock);
    # the model keeps them apart, as PerpEngine.market_state returns them
    borrow_index: int = 0
    borrow_rate: int = 0


@dataclass
class AdlPending:
    remaining: int = 0
    bad_debt: int = 0
    bankrupt_size: int = 0
    size_left: int = 0
    bankrupt: str = "0x" + "00" * 20
    bankruptcy_price: int = 0
    price: int = 0


@dataclass
class EngineState:
    scale: int
    owner: str
    pending_owner: str = "0x" + "00" * 20
    paused: bool = False
    vault: str = "0x" + "00" * 20
    insurance_fund: str = "0x" + "00" * 20
    pauser: str = "0x" + "00" * 20
    market_count: int = 0
    params: dict = field(default_factory=dict)
    feed_scale: dict = field(default_factory=dict)
    state: dict = field(default_factory=dict)
    free: dict = field(default_factory=dict)
    positions: dict = field(default_factory=dict)  # (account, market_id) -> Position
    members: dict = field(default_factory=dict)  # side key -> [accounts]
    adl_jobs: dict = field(default_factory=dict)  # market_id -> [AdlPending], oldest first (positions._adl_jobs)
    order_count: int = 0
    order_expiry: int = DEFAULT_ORDER_EXPIRY
    orders: dict = field(default_factory=dict)  # order id -> Order (pending only)
    tp_sl_at: dict = field(default_factory=dict)  # (account, market_id) -> block time
    pending: dict = field(default_factory=dict)  # (account, market_id) -> (last order id, expires_at), never cleared
    max_profit: int = DEFAULT_MAX_PROFIT
    total_cost: int = 0  # sum of |size| * entry_price over every open position
    min_keeper_reward: int = 0
    min_notional: int = 0
    oracle: dict = field(default_factory=dict)  # market id -> OracleParams
    sequencer_feed: str = "0x" + "00" * 20
    sequencer_grace: int = 0

    @property
    def adl_pending(self):
        """Each market's oldest pending job, an empty AdlPending for a market
        with none (what PerpEngine.adl_pending(market_id) returns; read-only:
        the jobs live in adl_jobs)."""
        return {mid: (self.adl_jobs.get(mid) or [AdlPending()])[0] for mid in range(self.market_count)}
    mmf_ramp: dict = field(default_factory=dict)  # market id -> (from_mmf, start, end); absent = none


def side_key(mid, size):
    return mid * 2 + (1 if size < 0 else 0)


def addr_int(a):
    return int(a, 16)


def _check_market(w, mid):
    """positions._check_market"""
    check(mid < w.e.market_count, "market: unknown")


def _set_params(w, mid, p):
    """positions._set_params"""
    check(p.feed != "0x" + "00" * 20, "params: feed")
    check(MIN_IMF <= p.imf <= WAD, "params: imf")
    check(0 < p.mmf < p.imf, "params: mmf")
    check(p.trading_fee <= MAX_TRADING_FEE and p.trading_fee < p.mmf, "params: trading fee")
    check(p.liq_fee <= MAX_LIQ_FEE, "params: liquidation fee")
    check(p.keeper_share <= MAX_KEEPER_SHARE, "params: keeper share")
    check(p.insurance_share <= WAD, "params: insurance share")
    check(p.funding_k <= MAX_FUNDING_K and p.max_funding_rate <= MAX_FUNDING_RATE, "params: funding")
    heartbeat = w.e.oracle[mid].heartbeat if mid in w.e.oracle else 0
    check(heartbeat < p.max_price_age <= MAX_PRICE_AGE, "params: price age")
    check(0 < p.max_open_interest <= MAX_OPEN_INTEREST, "params: open interest")
    check(0 < p.min_margin < MAX_AMOUNT, "params: min margin")
    check(p.execution_fee <= MAX_EXECUTION_FEE_TOKENS * (10**36 // w.e.scale), "params: execution fee")
    check(p.trading_fee * w.e.min_notional >= w.e.min_keeper_reward * WAD, "params: trading fee below reward")
    decimals = w.feeds[p.feed].decimals
    check(decimals <= 18, "params: feed decimals")
    feed_scale = 10 ** (18 - decimals)
    old_feed = w.e.params[mid].feed if mid in w.e.params else ZERO
    if old_feed == ZERO:
        # a new market: any sound price, no heartbeat, no fallback (set_oracle)
        w.e.oracle[mid] = OracleParams()
    elif int(old_feed, 16) != int(p.feed, 16):
        old = _primary_up(w, mid)
        o = w.e.oracle[mid]
        new = _feed_round(w, p.feed, feed_scale, o.min_price, o.max_price)[0]
        check(new != 0, "bad price")
        check(old == 0 or _within_jump(old, new), "params: feed jump")
    w.e.feed_scale[mid] = feed_scale
    w.e.params[mid] = replace(p)
    # positions.vy also writes _packed, a five-slot copy its hot paths read
    # (_market_params, _mmf, _price, _pending_index): same values, no model
    # counterpart needed.
    w.log("MarketParamsSet", market_id=mid)


def _mmf(w, mid):
    """positions._mmf: the stored mmf, or a rising ramp's value (floored)."""
    target = w.e.params[mid].mmf
    from_mmf, start, end = w.e.mmf_ramp.get(mid, (0, 0, 0))
    if w.now >= end:
        return target
    return from_mmf + mul_div_down(target - from_mmf, w.now - start, end - start)


def _ramp_mmf(w, mid, old_mmf):
    """positions._ramp_mmf"""
    target = w.e.params[mid].mmf
    if target <= old_mmf:
        w.e.mmf_ramp.pop(mid, None)
        return
    duration = mul_div_up(target - old_mmf, MMF_RAMP_PERIOD, MAX_MMF_RAISE)
    w.e.mmf_ramp[mid] = (old_mmf, w.now, w.now + duration)
    w.log("MmfRamp", market_id=mid, from_mmf=old_mmf, to_mmf=target, start=w.now, end=w.now + duration)


def _price(w, mid, fresh):
    """positions._price"""
    return _round(w, mid, fresh)[0]


def _round(w, mid, fresh):
    """positions._round: (price, updatedAt)"""
    if fresh:
        _check_sequencer(w)
    price, updated, max_age = _oracle_round(w, mid)
    check(price != 0, "bad price")
    if fresh:
        check(w.now - updated <= max_age, "stale price")
    return price, updated


def _oracle_round(w, mid):
    """positions._oracle_round: (price, updatedAt, max age); price 0 when
    no feed gives a sound round"""
    p = w.e.params[mid]
    o = w.e.oracle[mid]
    price, updated = _feed_round(w, p.feed, w.e.feed_scale[mid], o.min_price, o.max_price)
    if not _down(w, price, updated, o.heartbeat):
        return price, updated, p.max_price_age
    if o.fallback != ZERO:
        f_price, f_updated = _feed_round(w, o.fallback, o.fallback_scale, o.min_price, o.max_price, True)
        if f_price != 0 and (price == 0 or f_updated > updated):
            return f_price, f_updated, o.fallback_max_age
    return price, updated, p.max_price_age


def _down(w, price, updated, heartbeat):
    """positions._down"""
    return price == 0 or (heartbeat != 0 and w.now - updated > STALE_HEARTBEATS * heartbeat)


def _feed_round(w, feed, scale, lo, hi, history=False):
    """positions._feed_round: (price, updatedAt) of a sound latest round,
    (0, 0) when the feed is broken; with history (the fallback), also (0, 0)
    unless the previous round of the phase is sound and the latest price is
    within MAX_FEED_JUMP of it (a phase's first round is refused)"""
    f = w.feeds[feed]
    if f.reverts:
        return 0, 0
    latest = latest_updated = 0
    rd = f.latest_round_data()
    for i in range(2):
        round_id, answer, _, updated, answered = rd
        if answer <= 0 or answer >= MAX_PRICE:
            return 0, 0
        if updated == 0 or answered < round_id or updated > w.now:
            return 0, 0
        price = answer * scale
        if price < lo or price > hi:
            return 0, 0
        if i == 1:
            if not _within_jump(price, latest):
                return 0, 0
            break
        latest, latest_updated = price, updated
        if not history:
            break
        if round_id & (2**64 - 1) <= 1:
            return 0, 0
        rd = f.get_round_data(round_id - 1)
    return latest, latest_updated


def _sequencer_status(w):
    """positions._sequencer_status"""
    if w.e.sequencer_feed == ZERO:
        return SEQUENCER_UP
    f = w.feeds[w.e.sequencer_feed]
    check(not f.reverts, "mock: feed down")
    if f.answer != 0 or f.started_at == 0:
        return SEQUENCER_DOWN
    if f.started_at >= w.now or w.now - f.started_at <= w.e.sequencer_grace:
        return SEQUENCER_GRACE
    return SEQUENCER_UP


def _check_sequencer(w):
    """positions._check_sequencer"""
    status = _sequencer_status(w)
    check(status != SEQUENCER_DOWN, "sequencer down")
    check(status != SEQUENCER_GRACE, "sequencer grace")


def _within_jump(old, new):
    """positions._within_jump: |new - old| * 1e18 <= MAX_FEED_JUMP * old"""
    return abs(new - old) * WAD <= MAX_FEED_JUMP * old


def _primary_up(w, mid):
    """positions._primary_up"""
    p = w.e.params[mid]
    o = w.e.oracle[mid]
    price, updated = _feed_round(w, p.feed, w.e.feed_scale[mid], o.min_price, o.max_price)
    if _down(w, price, updated, o.heartbeat):
        return 0
    return price


def _set_oracle(w, mid, o):
    """positions._set_oracle"""
    check(0 < o.min_price < o.max_price < MAX_PRICE, "oracle: bounds")
    p = w.e.params[mid]
    check(0 < o.heartbeat < p.max_price_age, "oracle: heartbeat")
    primary = _primary_up(w, mid)
    check(primary == 0 or o.min_price <= primary <= o.max_price, "oracle: bounds exclude price")
    f_scale = 0
    if o.fallback != ZERO:
        check(int(o.fallback, 16) != int(p.feed, 16), "oracle: fallback is primary")
        check(0 < o.fallback_max_age <= MAX_PRICE_AGE, "oracle: fallback age")
        decimals = w.feeds[o.fallback].decimals
        check(decimals <= 18, "params: feed decimals")
        f_scale = 10 ** (18 - decimals)
        f_price = _feed_round(w, o.fallback, f_scale, o.min_price, o.max_price)[0]
        check(f_price != 0, "oracle: fallback broken")
        check(primary == 0 or _within_jump(primary, f_price), "oracle: fallback jump")
    else:
        check(o.fallback_max_age == 0, "oracle: fallback age")
    w.e.oracle[mid] = OracleParams(o.min_price, o.max_price, o.heartbeat, o.fallback, o.fallback_max_age, f_scale)
    w.log("OracleSet", market_id=mid, min_price=o.min_price, max_price=o.max_price, heartbeat=o.heartbeat,
          fallback=o.fallback, fallback_max_age=o.fallback_max_age)


def _set_sequencer_feed(w, feed, grace):
    """positions._set_sequencer_feed"""
    check(grace <= MAX_SEQUENCER_GRACE and (feed != ZERO or grace == 0), "oracle: sequencer grace")
    w.e.sequencer_feed = feed
    w.e.sequencer_grace = grace
    w.log("SequencerFeedSet", feed=feed, grace=grace)


def _oracle_params(w, mid):
    """positions._oracle_params"""
    return w.e.oracle[mid]


def _indices(w, mid, price):
    """positions._indices"""
    st = w.e.state[mid]
    idx = st.funding_index
    borrow = st.borrow_index
    if w.now > st.last_funding_time:
        p = w.e.params[mid]
        r = funding.rate(st.long_oi, st.short_oi, p.funding_k, p.max_funding_rate)
        idx += funding.index_step(r, price, w.now - st.last_funding_time)
        borrow += funding.borrow_step(st.borrow_rate, price, w.now - st.last_funding_time)
    return idx, borrow


def _pending_index(w, mid, price, size):
    """positions._pending_index"""
    idx, borrow = _indices(w, mid, price)
    return funding.side_index(size, idx, borrow)


def _accrue(w, mid, price, size):
    """positions._accrue"""
    idx, borrow = _indices(w, mid, price)
    check(abs(idx) + borrow < OFFSET, "funding: index overflow")
    st = w.e.state[mid]
    st.funding_index = idx
    st.borrow_index = borrow
    st.last_funding_time = w.now
    return funding.side_index(size, idx, borrow)


def _load(w, account, mid):
    """positions._load (a copy: callers mutate it freely)"""
    pos = w.e.positions.get((account, mid))
    # Position(**vars(pos)) is dataclasses.replace(pos) at a fifth of the cost
    # (every view loads a position; the keeper runs views for every account).
    return Position(**vars(pos)) if pos is not None else Position()


def _write(w, account, mid, old, new):
    """positions._write: store `new` over `old`, keeping aggregates and side sets."""
    check(new.margin < MAX_AMOUNT, "position: margin too large")
    st = w.e.state[mid]
    # Only the side a position is on (the contract reads and writes no more).
    if old.size > 0 or new.size > 0:
        oi, cost = st.long_oi, st.long_cost
        if old.size > 0:
            oi -= old.size
            cost -= old.size * old.entry_price
        if new.size > 0:
            oi += new.size
            cost += new.size * new.entry_price
        st.long_oi, st.long_cost = oi, cost
    if old.size < 0 or new.size < 0:
        oi, cost = st.short_oi, st.short_cost
        if old.size < 0:
            oi -= -old.size
            cost -= -old.size * old.entry_price
        if new.size < 0:
            oi += -new.size
            cost += -new.size * new.entry_price
        st.short_oi, st.short_cost = oi, cost
    st.sum_size_index = st.sum_size_index - old.size * old.funding_index + new.size * new.funding_index
    old_cost, new_cost = abs(old.size) * old.entry_price, abs(new.size) * new.entry_price
    if old_cost != new_cost:
        w.e.total_cost = w.e.total_cost + new_cost - old_cost

    if old.size == 0 and new.size != 0:
        _add_member(w, account, mid, new.size)
    elif old.size != 0 and new.size == 0:
        _remove_member(w, account, mid, old.size)

    if new.size == 0:
        w.e.positions.pop((account, mid), None)
        return
    w.e.positions[(account, mid)] = replace(new)


def _add_member(w, account, mid, size):
    """positions._add_member"""
    lst = w.e.members.setdefault(side_key(mid, size), [])
    check(len(lst) < MAX_SIDE_POSITIONS, "market: side full")
    lst.append(account)


def _remove_member(w, account, mid, size):
    """positions._remove_member: swap-and-pop, the same order as on chain."""
    lst = w.e.members[side_key(mid, size)]
    i = lst.index(account)
    last = lst.pop()
    if i < len(lst):
        lst[i] = last


def _average_entry(size, entry, delta, price):
    """positions._average_entry: up for a long, down for a short."""
    s, d = abs(size), abs(delta)
    if size > 0:
        return mul_div_up(s * entry + d * price, 1, s + d)
    return mul_div_down(s * entry + d * price, 1, s + d)


def _effective_margin(w, pos, mid, price):
    """positions._effective_margin"""
    return pos.margin - funding.owed(pos.size, _pending_index(w, mid, price, pos.size), pos.funding_index, w.e.scale)


def _equity(w, pos, mid, price):
    """positions._equity: the upnl cut at the payout cap"""
    owed = funding.owed(pos.size, _pending_index(w, mid, price, pos.size), pos.funding_index, w.e.scale)
    pnl = _capped_pnl(w, margin.upnl(pos.size, pos.entry_price, price, w.e.scale), owed, pos.size, pos.entry_price)
    return pos.margin - owed + pnl


def _capped_pnl(w, pnl, owed, size, entry):
    """positions._capped_pnl: pnl - owed at most floor(max_profit * |size| * entry / (1e18 * SCALE))"""
    cap = mul_div_down(w.e.max_profit, abs(size) * entry, WAD * w.e.scale)
    return min(pnl, cap + owed)


def _past_cap(w, pos, price, idx):
    """positions._past_cap: profit net of funding at or past a cap above 0"""
    cap = mul_div_down(w.e.max_profit, abs(pos.size) * pos.entry_price, WAD * w.e.scale)
    owed = funding.owed(pos.size, idx, pos.funding_index, w.e.scale)
    return cap > 0 and margin.upnl(pos.size, pos.entry_price, price, w.e.scale) - owed >= cap


def _reserve(w):
    """positions._reserve: ceil(max_profit * total_cost / (1e18 * SCALE))"""
    return mul_div_up(w.e.max_profit, w.e.total_cost, WAD * w.e.scale)


def _pay_keeper_floor(w, keeper, paid):
    """positions._pay_keeper_floor: the fund first, then the vault's free cash; returns the vault's advance"""
    floor = w.e.min_keeper_reward
    if paid >= floor:
        return 0
    top_up = floor - paid
    from_fund = min(top_up, w.token.balance_of(w.e.insurance_fund))
    if from_fund > 0:
        w.fund_cover(w.engine_address, from_fund)
    cash = w.token.balance_of(w.e.vault)
    from_vault = min(top_up - from_fund, cash - min(cash, _reserve(w)))
    if from_vault > 0:
        w.vault_pay(from_vault)
    w.e.free[keeper] = w.e.free.get(keeper, 0) + from_fund + from_vault
    w.log("KeeperPaid", keeper=keeper, from_fund=from_fund, from_vault=from_vault)
    return from_vault


def _check_capacity(w):
    """positions._check_capacity"""
    check(w.token.balance_of(w.e.vault) >= _reserve(w), "vault: capacity")


def _reduce(w, account, mid, old, closed, price, idx, p, keeper):
    """positions._reduce"""
    scale = w.e.scale
    owed = funding.owed(old.size, idx, old.funding_index, scale)
    eff = old.margin - owed
    total_pnl = _capped_pnl(w, margin.upnl(old.size, old.entry_price, price, scale), owed, old.size, old.entry_price)
    check(eff + total_pnl >= margin.requirement(old.size, price, _mmf(w, mid), scale), "position: liquidatable")
    full = closed == old.size
    released = eff
    if not full:
        released = div_floor(eff * abs(closed), abs(old.size))
    pnl = _capped_pnl(w, margin.upnl(closed, old.entry_price, price, scale), owed, closed, old.entry_price)
    fee = margin.requirement(closed, price, p.trading_fee, scale)
    payout = released + pnl - fee
    exec_fee = 0
    if keeper is not None:
        exec_fee = min(p.execution_fee, max(payout, 0))
        payout -= exec_fee
    left = eff - released
    if payout < 0:
        left += payout
        payout = 0
    new = Position()
    if full:
        check(left == 0, "position: insolvent")
    else:
        check(left >= p.min_margin, "position: dust remainder")
        check(margin.notional_down(old.size - closed, old.entry_price, scale) >= w.e.min_notional,
              "position: dust remainder")
        new = replace(old)
        new.size = old.size - closed
        new.margin = left
        new.funding_index = idx
        remaining = left + margin.upnl(new.size, new.entry_price, price, scale)
        check(remaining >= margin.requirement(new.size, price, _mmf(w, mid), scale), "margin: below maintenance")
    _write(w, account, mid, old, new)
    w.e.free[account] = w.e.free.get(account, 0) + payout
    if exec_fee > 0:
        w.e.free[keeper] = w.e.free.get(keeper, 0) + exec_fee
    fund_fee = mul_div_down(fee, p.insurance_share, WAD)
    _settle(w, owed - pnl + (fee - fund_fee), fund_fee)
    w.log("PositionClosed", account=account, market_id=mid, size_closed=closed, price=price, pnl=pnl,
          fee=fee, funding_paid=owed, payout=payout)
    if keeper is not None:
        w.log("TpSlExecuted", account=account, market_id=mid, keeper=keeper, price=price, execution_fee=exec_fee)
    return payout


def _settle(w, vault_delta, fund_amount):
    """positions._settle: positive vault_delta pays the vault."""
    if vault_delta < 0:
        w.vault_pay(-vault_delta)
    elif vault_delta > 0:
        w.token.transfer(w.engine_address, w.e.vault, vault_delta)
    if fund_amount > 0:
        w.token.transfer(w.engine_address, w.e.insurance_fund, fund_amount)


def _load_order(w, order_id):
    """positions._load_order (a copy; an empty Order when there is none)"""
    o = w.e.orders.get(order_id)
    if o is None:
        return Order()
    o = Order(**vars(o))
    o.escrow = _escrow(w, o)
    o.expires_at = w.e.pending.get((o.account, o.market_id), (0, 0))[1]
    return o


def _pending_id(w, account, mid):
    """positions._pending_id: the pending order's id, 0 if none."""
    order_id = w.e.pending.get((account, mid), (0, 0))[0]
    return order_id if order_id in w.e.orders else 0


def _escrow(w, o):
    """positions._escrow: execution fee, plus margin in and the trading fee at
    the acceptable price for an open or increase."""
    e = o.execution_fee
    if o.size_delta != 0 and not o.reduce_only:
        e += o.margin_delta + margin.requirement(o.size_delta, o.acceptable_price, o.trading_fee, w.e.scale)
    return e


def _tp_sl_hit(pos, price):
    """positions._tp_sl_hit: the take-profit or stop-loss is crossed (inclusive)."""
    if pos.size > 0:
        return (pos.take_profit != 0 and price >= pos.take_profit) or (pos.stop_loss != 0 and price <= pos.stop_loss)
    return (pos.take_profit != 0 and price <= pos.take_profit) or (pos.stop_loss != 0 and price >= pos.stop_loss)
