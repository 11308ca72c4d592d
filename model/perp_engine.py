"""Mirror of contracts/PerpEngine.vy: collateral, margin adds and every view
(the admin verbs, which the engine forwards to PerpAdmin, are in
model/perp_admin.py). Each function names the one it replicates."""

from dataclasses import replace

from model import adl, funding, margin
from model import positions as P
from model.fixed_point import WAD, check, mul_div_down, mul_div_up

ZERO = "0x" + "00" * 20



def oracle_params(w, mid):
    """PerpEngine.oracle_params"""
    P._check_market(w, mid)
    return P._oracle_params(w, mid).as_tuple()


def oracle_round(w, mid):
    """PerpEngine.oracle_round"""
    P._check_market(w, mid)
    return P._oracle_round(w, mid)


def sequencer_status(w):
    """PerpEngine.sequencer_status"""
    return P._sequencer_status(w)


def deposit(w, amount):
    """PerpEngine.deposit"""
    check(amount > 0, "collateral: zero amount")
    w.token.transfer_from(w.engine_address, w.sender, w.engine_address, amount)
    w.e.free[w.sender] = w.e.free.get(w.sender, 0) + amount
    w.log("Deposited", account=w.sender, amount=amount)


def withdraw(w, amount):
    """PerpEngine.withdraw"""
    check(amount > 0, "collateral: zero amount")
    check(w.e.free.get(w.sender, 0) >= amount, "collateral: insufficient")
    w.e.free[w.sender] -= amount
    w.token.transfer(w.engine_address, w.sender, amount)
    w.log("Withdrawn", account=w.sender, amount=amount)


def add_margin(w, mid, amount):
    """PerpEngine.add_margin"""
    P._check_market(w, mid)
    check(amount > 0, "collateral: zero amount")
    old = P._load(w, w.sender, mid)
    check(old.size != 0, "position: none")
    check(P._pending_id(w, w.sender, mid) == 0, "order: pending")
    free = w.e.free.get(w.sender, 0)
    check(amount <= free, "collateral: insufficient")
    new = replace(old)
    new.margin = old.margin + amount
    w.e.free[w.sender] = free - amount
    P._write(w, w.sender, mid, old, new)
    w.log("MarginChanged", account=w.sender, market_id=mid, delta=amount, funding_paid=0)


# ---------------------------------------------------------------- views

def get_position(w, account, mid):
    """PerpEngine.get_position"""
    return P._load(w, account, mid)


def get_order(w, order_id):
    """PerpEngine.get_order"""
    return P._load_order(w, order_id)


def pending_order(w, account, mid):
    """PerpEngine.pending_order"""
    return P._pending_id(w, account, mid)


def order_count(w):
    """PerpEngine.order_count (positions.order_count)"""
    return w.e.order_count


def order_expiry(w):
    """PerpEngine.order_expiry (positions.order_expiry)"""
    return w.e.order_expiry


def free_collateral(w, account):
    """PerpEngine.free_collateral"""
    return w.e.free.get(account, 0)


def open_interest(w, mid):
    """PerpEngine.open_interest"""
    st = w.e.state.get(mid, P.MarketState())
    return (st.long_oi, st.short_oi)


def funding_rate(w, mid):
    """PerpEngine.funding_rate"""
    p, st = w.e.params[mid], w.e.state[mid]
    return funding.rate(st.long_oi, st.short_oi, p.funding_k, p.max_funding_rate)


def funding_owed(w, account, mid):
    """PerpEngine.funding_owed"""
    pos = P._load(w, account, mid)
    idx = P._pending_index(w, mid, P._price(w, mid, False), pos.size)
    return funding.owed(pos.size, idx, pos.funding_index, w.e.scale)


def equity(w, account, mid):
    """PerpEngine.equity"""
    pos = P._load(w, account, mid)
    if pos.size == 0:
        return 0
    return P._equity(w, pos, mid, P._price(w, mid, False))


def effective_mmf(w, mid):
    """PerpEngine.effective_mmf"""
    return P._mmf(w, mid)


def mmf_ramp(w, mid):
    """PerpEngine.mmf_ramp"""
    return w.e.mmf_ramp.get(mid, (0, 0, 0))


def is_liquidatable(w, account, mid):
    """PerpEngine.is_liquidatable"""
    pos = P._load(w, account, mid)
    if pos.size == 0:
        return False
    price = P._price(w, mid, False)
    return P._equity(w, pos, mid, price) < margin.requirement(pos.size, price, P._mmf(w, mid), w.e.scale)


def liquidation_price(w, account, mid):
    """PerpEngine.liquidation_price"""
    pos = P._load(w, account, mid)
    if pos.size == 0:
        return 0
    eff = P._effective_margin(w, pos, mid, P._price(w, mid, False))
    return margin.liquidation_price(pos.size, pos.entry_price, eff, P._mmf(w, mid), w.e.scale)


def bankruptcy_price(w, account, mid):
    """PerpEngine.bankruptcy_price"""
    pos = P._load(w, account, mid)
    if pos.size == 0:
        return 0
    eff = P._effective_margin(w, pos, mid, P._price(w, mid, False))
    return margin.bankruptcy_price(pos.size, pos.entry_price, eff, w.e.scale)


def adl_score(w, account, mid):
    """PerpEngine.adl_score"""
    pos = P._load(w, account, mid)
    if pos.size == 0:
        return 0
    price = P._price(w, mid, False)
    return margin.adl_score(margin.upnl(pos.size, pos.entry_price, price, w.e.scale), pos.margin,
                            margin.notional_down(pos.size, price, w.e.scale))


def adl_ranking(w, account, mid, limit=P.MAX_ADL_TARGETS):
    """PerpEngine.adl_ranking (limit=None: the whole ranking, for planning)"""
    pos = P._load(w, account, mid)
    if pos.size == 0:
        return []
    return adl._ranking(w, mid, pos.size, P._price(w, mid, False), limit)


def adl_pending(w, mid, index=0):
    """PerpEngine.adl_pending: the market's pending ADL jobs, oldest at 0;
    empty past the last."""
    jobs = w.e.adl_jobs.get(mid, [])
    return jobs[index] if index < len(jobs) else P.AdlPending()


MAX_ROUND_WALK = 32


def traders_claim(w):
    """PerpEngine.traders_claim"""
    return _valuation(w)[0]


def traders_gain(w):
    """PerpEngine.traders_gain"""
    return min(_valuation(w)[1], P._reserve(w))


def traders_reserve(w):
    """PerpEngine.traders_reserve"""
    return P._reserve(w)


def valuation_at(w, prices):
    """PerpEngine.valuation_at: (traders_claim, traders_gain, past_cap) at prices[i]"""
    claim, gain, past = _valuation(w, prices)
    return claim, min(gain, P._reserve(w)), past


def first_round_after(w, mid, t):
    """PerpEngine.first_round_after: (price, updatedAt) of the first round
    later than t on the feed the market prices from, walking back at most
    MAX_ROUND_WALK rounds within the phase; (0, 0) when the latest round is
    unsound or not later than t"""
    P._check_market(w, mid)
    p = w.e.params[mid]
    o = w.e.oracle[mid]
    feed, scale = p.feed, w.e.feed_scale[mid]
    rid, price, updated = _round_data(w, feed, None, scale, o.min_price, o.max_price)
    if P._down(w, price, updated, o.heartbeat) and o.fallback != ZERO:
        f_rid, f_price, f_updated = _round_data(w, o.fallback, None, o.fallback_scale, o.min_price, o.max_price)
        # PerpEngine.first_round_after: the same history rule as _oracle_round
        f_price, f_updated = P._feed_round(w, o.fallback, o.fallback_scale, o.min_price, o.max_price, True)
        if f_price != 0 and (price == 0 or f_updated > updated):
            feed, scale, rid, price, updated = o.fallback, o.fallback_scale, f_rid, f_price, f_updated
    if price == 0 or updated <= t:
        return 0, 0
    for _ in range(MAX_ROUND_WALK):
        if rid & (2**64 - 1) <= 1:
            break
        rid -= 1
        _, p_price, p_updated = _round_data(w, feed, rid, scale, o.min_price, o.max_price)
        if p_price == 0 or p_updated <= t:
            break
        price, updated = p_price, p_updated
    return price, updated


def _round_data(w, feed, round_id, scale, lo, hi):
    """PerpEngine._round_data: (round id, price, updatedAt) of the latest
    round (round_id None) or of round_id; price 0 when unsound"""
    f = w.feeds[feed]
    if f.reverts:
        return 0, 0, 0
    if round_id is None:
        rid, answer, _, updated, answered = f.latest_round_data()
    else:
        rid, answer, _, updated, answered = f.get_round_data(round_id)
    if answer <= 0 or answer >= P.MAX_PRICE:
        return rid, 0, 0
    if updated == 0 or answered < rid or updated > w.now:
        return rid, 0, 0
    price = answer * scale
    if price < lo or price > hi:
        return rid, 0, 0
    return rid, price, updated


def _valuation(w, prices=()):
    """PerpEngine._valuation: (net claim, gain, past_cap), market i at
    prices[i] where given"""
    from model.fixed_point import div_ceil
    claim = gain = 0
    past = False
    mp = w.e.max_profit
    scale = w.e.scale
    for mid in range(w.e.market_count):
        price = prices[mid] if mid < len(prices) else P._price(w, mid, False)
        st = w.e.state[mid]
        idx, borrow = P._indices(w, mid, price)
        long_pnl = price * st.long_oi - st.long_cost
        short_pnl = st.short_cost - price * st.short_oi
        # longs settle against idx + borrow, shorts against idx - borrow
        owed = idx * (st.long_oi - st.short_oi) + borrow * (st.long_oi + st.short_oi) - st.sum_size_index
        claim += div_ceil(long_pnl + short_pnl - owed, scale)
        long_gain = div_ceil(long_pnl, scale)
        short_gain = div_ceil(short_pnl, scale)
        gain += max(long_gain, 0) + max(short_gain, 0) + max(div_ceil(-owed, scale), 0)
        # each side against its own reserve: a side's positions can only be paid its caps
        if long_gain > mul_div_up(mp, st.long_cost, WAD * scale):
            past = True
        if short_gain > mul_div_up(mp, st.short_cost, WAD * scale):
            past = True
    return claim, gain, past
