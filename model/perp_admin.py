"""Mirror of contracts/PerpAdmin.vy: the owner's and the pauser's verbs,
which PerpEngine forwards by delegatecall. Each function names the one it
replicates."""

from dataclasses import replace

from model import margin
from model import positions as P
from model.fixed_point import WAD, check

ZERO = "0x" + "00" * 20


def _check_owner(w):
    """snekmate ownable._check_owner"""
    check(w.sender == w.e.owner, "ownable: caller is not the owner")


def transfer_ownership(w, new_owner):
    """PerpAdmin.transfer_ownership (snekmate ownable_2step)"""
    _check_owner(w)
    w.e.pending_owner = new_owner
    w.log("OwnershipTransferStarted", previous_owner=w.e.owner, new_owner=new_owner)


def accept_ownership(w):
    """PerpAdmin.accept_ownership (snekmate ownable_2step)"""
    check(w.e.pending_owner == w.sender, "ownable_2step: caller is not the new owner")
    w.e.pending_owner = ZERO
    previous, w.e.owner = w.e.owner, w.sender
    w.log("OwnershipTransferred", previous_owner=previous, new_owner=w.sender)


def initialize(w, vault, insurance_fund):
    """PerpAdmin.initialize"""
    _check_owner(w)
    check(w.e.vault == ZERO, "engine: initialized")
    check(vault != ZERO and insurance_fund != ZERO, "engine: zero address")
    w.e.vault = vault
    w.e.insurance_fund = insurance_fund


def _as_params(params):
    """Accept the ABI tuple as well as MarketParams."""
    return params if isinstance(params, P.MarketParams) else P.MarketParams(*params)


def add_market(w, params):
    """PerpAdmin.add_market"""
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
    """PerpAdmin.set_market_params"""
    params = _as_params(params)
    _check_owner(w)
    P._check_market(w, mid)
    old_mmf = P._mmf(w, mid)  # in force now, mid-ramp included
    old = w.e.params[mid]
    P._set_params(w, mid, params)
    P._ramp_mmf(w, mid, old_mmf)
    new = w.e.params[mid]
    # accrue under the old funding parameters, at the new feed's price
    w.e.params[mid] = replace(new, funding_k=old.funding_k, max_funding_rate=old.max_funding_rate)
    P._accrue(w, mid, P._price(w, mid, False), 0)
    w.e.params[mid] = new


def set_oracle(w, mid, oracle):
    """PerpAdmin.set_oracle"""
    if not isinstance(oracle, P.OracleParams):
        oracle = P.OracleParams(*oracle)
    _check_owner(w)
    P._check_market(w, mid)
    P._set_oracle(w, mid, oracle)


def set_sequencer_feed(w, feed, grace):
    """PerpAdmin.set_sequencer_feed"""
    _check_owner(w)
    P._set_sequencer_feed(w, feed, grace)


def set_order_expiry(w, expiry):
    """PerpAdmin.set_order_expiry"""
    _check_owner(w)
    check(P.MIN_ORDER_EXPIRY <= expiry <= P.MAX_ORDER_EXPIRY, "params: order expiry")
    w.e.order_expiry = expiry
    w.log("OrderExpirySet", expiry=expiry)


def set_borrow_rate(w, mid, rate):
    """PerpAdmin.set_borrow_rate"""
    _check_owner(w)
    P._check_market(w, mid)
    check(rate <= P.MAX_BORROW_RATE, "params: borrow rate")
    P._accrue(w, mid, P._price(w, mid, False), 0)
    w.e.state[mid].borrow_rate = rate
    w.log("BorrowRateSet", market_id=mid, rate=rate)


def set_max_profit(w, max_profit):
    """PerpAdmin.set_max_profit"""
    _check_owner(w)
    check(P.MIN_MAX_PROFIT <= max_profit <= P.MAX_MAX_PROFIT, "params: max profit")
    w.e.max_profit = max_profit
    P._check_capacity(w)
    w.log("MaxProfitSet", max_profit=max_profit)


def set_keeper_reward(w, min_keeper_reward, min_notional):
    """PerpAdmin.set_keeper_reward"""
    _check_owner(w)
    check(min_keeper_reward <= P.MAX_KEEPER_REWARD_TOKENS * (10**36 // w.e.scale), "params: keeper reward")
    check(min_notional < P.MAX_AMOUNT, "params: min notional")
    for mid in range(w.e.market_count):
        check(w.e.params[mid].trading_fee * min_notional >= min_keeper_reward * WAD, "params: trading fee below reward")
    w.e.min_keeper_reward = min_keeper_reward
    w.e.min_notional = min_notional
    w.log("KeeperRewardSet", min_keeper_reward=min_keeper_reward, min_notional=min_notional)


def set_pauser(w, pauser):
    """PerpAdmin.set_pauser"""
    _check_owner(w)
    w.e.pauser = pauser
    w.log("PauserSet", pauser=pauser)


def pause(w):
    """PerpAdmin.pause (snekmate pausable._pause)"""
    check(w.sender == w.e.pauser or w.sender == w.e.owner, "engine: not pauser")
    check(not w.e.paused, "pausable: contract is paused")
    w.e.paused = True
    w.log("Paused", account=w.sender)


def unpause(w):
    """PerpAdmin.unpause (snekmate pausable._unpause)"""
    check(w.sender == w.e.pauser or w.sender == w.e.owner, "engine: not pauser")
    check(w.e.paused, "pausable: contract is not paused")
    w.e.paused = False
    w.log("Unpaused", account=w.sender)


def set_tp_sl(w, mid, take_profit_price, stop_loss_price):
    """PerpAdmin.set_tp_sl"""
    P._check_market(w, mid)
    old = P._load(w, w.sender, mid)
    check(old.size != 0, "position: none")
    check(P._pending_id(w, w.sender, mid) == 0, "order: pending")
    if old.take_profit != 0 or old.stop_loss != 0:
        price, updated = P._round(w, mid, False)
        check(not (P._tp_sl_hit(old, price) and updated > w.e.tp_sl_at.get((w.sender, mid), 0)), "tp_sl: triggered")
    check(take_profit_price < P.MAX_PRICE and stop_loss_price < P.MAX_PRICE, "tp_sl: price too large")
    liq = margin.liquidation_price(old.size, old.entry_price, old.margin, P._mmf(w, mid), w.e.scale)
    tp, sl = take_profit_price, stop_loss_price
    if old.size > 0:
        check(tp == 0 or tp > old.entry_price, "tp_sl: take profit on wrong side")
        check(sl == 0 or sl < old.entry_price, "tp_sl: stop loss on wrong side")
        check(sl == 0 or sl > liq, "tp_sl: stop beyond liquidation")
    else:
        check(tp == 0 or tp < old.entry_price, "tp_sl: take profit on wrong side")
        check(sl == 0 or sl > old.entry_price, "tp_sl: stop loss on wrong side")
        check(sl == 0 or sl < liq, "tp_sl: stop beyond liquidation")
    pos = w.e.positions[(w.sender, mid)]
    pos.take_profit, pos.stop_loss = tp, sl
    w.e.tp_sl_at[(w.sender, mid)] = w.now
    w.log("TpSlSet", account=w.sender, market_id=mid, take_profit=tp, stop_loss=sl)
