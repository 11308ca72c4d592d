"""Mirror of contracts/PerpEngine.vy: admin, collateral, opening and margin
adds, and every view. Each function names the one it replicates."""

from dataclasses import replace

from model import adl, funding, margin
from model import positions as P
from model.fixed_point import WAD, check, mul_div_down

ZERO = "0x" + "00" * 20


def _check_owner(w):
    """snekmate ownable._check_owner"""
    check(w.sender == w.e.owner, "ownable: caller is not the owner")


def transfer_ownership(w, new_owner):
    """PerpEngine.transfer_ownership (snekmate ownable_2step)"""
    _check_owner(w)
    w.e.pending_owner = new_owner
    w.log("OwnershipTransferStarted", previous_owner=w.e.owner, new_owner=new_owner)


def accept_ownership(w):
    """PerpEngine.accept_ownership (snekmate ownable_2step)"""
    check(w.e.pending_owner == w.sender, "ownable_2step: caller is not the new owner")
    w.e.pending_owner = ZERO
    previous, w.e.owner = w.e.owner, w.sender
    w.log("OwnershipTransferred", previous_owner=previous, new_owner=w.sender)


def initialize(w, vault, insurance_fund):
    """PerpEngine.initialize"""
    _check_owner(w)
    check(w.e.vault == ZERO, "engine: initialized")
    check(vault != ZERO and insurance_fund != ZERO, "engine: zero address")
    w.e.vault = vault
    w.e.insurance_fund = insurance_fund


def _as_params(params):
    """Accept the ABI tuple as well as MarketParams."""
    return params if isinstance(params, P.MarketParams) else P.MarketParams(*params)


def add_market(w, params):
    """PerpEngine.add_market"""
    params = _as_params(params)
    _check_owner(w)
    mid = w.e.market_count
    check(mid < P.MAX_MARKETS, "params: too many markets")
    w.e.state[mid] = P.MarketState()
    P._set_params(w, mid, params)
    w.e.state[mid].last_funding_time = w.now
    w.e.market_count = mid + 1
    w.log("MarketAdded", market_id=mid, feed=params.feed)
    return mid


def set_market_params(w, mid, params):
    """PerpEngine.set_market_params"""
    params = _as_params(params)
    _check_owner(w)
    P._check_market(w, mid)
    old = w.e.params[mid]
    P._set_params(w, mid, params)
    new = w.e.params[mid]
    # accrue under the old funding parameters, at the new feed's price
    w.e.params[mid] = replace(new, funding_k=old.funding_k, max_funding_rate=old.max_funding_rate)
    P._accrue(w, mid, P._price(w, mid, False))
    w.e.params[mid] = new


def set_order_expiry(w, expiry):
    """PerpEngine.set_order_expiry"""
    _check_owner(w)
    check(P.MIN_ORDER_EXPIRY <= expiry <= P.MAX_ORDER_EXPIRY, "params: order expiry")
    w.e.order_expiry = expiry
    w.log("OrderExpirySet", expiry=expiry)


def set_max_profit(w, max_profit):
    """PerpEngine.set_max_profit"""
    _check_owner(w)
    check(P.MIN_MAX_PROFIT <= max_profit <= P.MAX_MAX_PROFIT, "params: max profit")
    w.e.max_profit = max_profit
    P._check_capacity(w)
    w.log("MaxProfitSet", max_profit=max_profit)


def set_keeper_reward(w, min_keeper_reward, min_notional):
    """PerpEngine.set_keeper_reward"""
    _check_owner(w)
    check(min_keeper_reward <= P.MAX_KEEPER_REWARD_TOKENS * (10**36 // w.e.scale), "params: keeper reward")
    check(min_notional < P.MAX_AMOUNT, "params: min notional")
    for mid in range(w.e.market_count):
        check(w.e.params[mid].trading_fee * min_notional >= min_keeper_reward * WAD, "params: trading fee below reward")
    w.e.min_keeper_reward = min_keeper_reward
    w.e.min_notional = min_notional
    w.log("KeeperRewardSet", min_keeper_reward=min_keeper_reward, min_notional=min_notional)


def set_pauser(w, pauser):
    """PerpEngine.set_pauser"""
    _check_owner(w)
    w.e.pauser = pauser
    w.log("PauserSet", pauser=pauser)


def pause(w):
    """PerpEngine.pause (snekmate pausable._pause)"""
    check(w.sender == w.e.pauser or w.sender == w.e.owner, "engine: not pauser")
    check(not w.e.paused, "pausable: contract is paused")
    w.e.paused = True
    w.log("Paused", account=w.sender)


def unpause(w):
    """PerpEngine.unpause (snekmate pausable._unpause)"""
    check(w.sender == w.e.pauser or w.sender == w.e.owner, "engine: not pauser")
    check(w.e.paused, "pausable: contract is not paused")
    w.e.paused = False
    w.log("Unpaused", account=w.sender)


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
    idx = P._pending_index(w, mid, P._price(w, mid, False))
    return funding.owed(pos.size, idx, pos.funding_index, w.e.scale)


def equity(w, account, mid):
    """PerpEngine.equity"""
    pos = P._load(w, account, mid)
    if pos.size == 0:
        return 0
    return P._equity(w, pos, mid, P._price(w, mid, False))


def is_liquidatable(w, account, mid):
    """PerpEngine.is_liquidatable"""
    pos = P._load(w, account, mid)
    if pos.size == 0:
        return False
    price = P._price(w, mid, False)
    return P._equity(w, pos, mid, price) < margin.requirement(pos.size, price, w.e.params[mid].mmf, w.e.scale)


def liquidation_price(w, account, mid):
    """PerpEngine.liquidation_price"""
    pos = P._load(w, account, mid)
    if pos.size == 0:
        return 0
    eff = P._effective_margin(w, pos, mid, P._price(w, mid, False))
    return margin.liquidation_price(pos.size, pos.entry_price, eff, w.e.params[mid].mmf, w.e.scale)


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


def traders_claim(w):
    """PerpEngine.traders_claim"""
    return _valuation(w)[0]


def traders_gain(w):
    """PerpEngine.traders_gain"""
    return min(_valuation(w)[1], P._reserve(w))


def traders_reserve(w):
    """PerpEngine.traders_reserve"""
    return P._reserve(w)


def _valuation(w):
    """PerpEngine._valuation"""
    from model.fixed_point import div_ceil
    claim = gain = 0
    scale = w.e.scale
    for mid in range(w.e.market_count):
        price = P._price(w, mid, False)
        st = w.e.state[mid]
        idx = P._pending_index(w, mid, price)
        long_pnl = price * st.long_oi - st.long_cost
        short_pnl = st.short_cost - price * st.short_oi
        owed = idx * (st.long_oi - st.short_oi) - st.sum_size_index
        claim += div_ceil(long_pnl + short_pnl - owed, scale)
        gain += max(div_ceil(long_pnl, scale), 0) + max(div_ceil(short_pnl, scale), 0) + max(div_ceil(-owed, scale), 0)
    return claim, gain
