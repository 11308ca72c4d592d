# pragma version 0.4.3
"""
@title positions
@notice The engine's state and the helpers every verb shares: markets and
        their parameters, the oracle read, funding accrual, packed position
        storage with its aggregates and side sets, the pro-rata reduce, and
        token settlement with the vault and the insurance fund.
        PerpEngine and PerpExits both initialize this module first
        after the auth modules, so their storage layouts are identical
        (tests/unit/test_layout.py checks it); PerpExits runs only by
        delegatecall from PerpEngine. model/positions.py mirrors it.
"""

from ethereum.ercs import IERC20
from ethereum.ercs import IERC20Detailed

import fixed_point as fp
import margin
import funding
from interfaces import AggregatorV3
from interfaces import ILiquidityVault
from interfaces import IInsuranceFund

# ---------------------------------------------------------------- constants

WAD: constant(uint256) = 10**18
# Bounds that keep every product of the math modules inside int256.
MAX_SIZE: constant(int256) = 2**120
MAX_PRICE: constant(uint256) = 2**128
MAX_AMOUNT: constant(uint256) = 2**128
OFFSET: constant(int256) = 2**127
MASK: constant(uint256) = 2**128 - 1
MASK64: constant(uint256) = 2**64 - 1
MASK160: constant(uint256) = 2**160 - 1
MASK32: constant(uint256) = 2**32 - 1

# The per-side position cap bounds the ADL completeness scan (about 6.5k gas
# per scanned position, so about 6.5M gas at a full side).
MAX_SIDE_POSITIONS: constant(uint256) = 1000
MAX_ADL_TARGETS: constant(uint256) = 20
# Pending ADL jobs queue per market, oldest first (docs/liquidation.md): a
# profitable opposite position that closes pays its share of each one, so
# the queue is bounded; a liquidation that would start a fifth job reverts
# "adl: queue full" until a `deleverage` (anyone, paid the keeper's floor)
# ends the oldest.
MAX_ADL_JOBS: constant(uint256) = 4
MAX_MARKETS: constant(uint256) = 64

# Parameter caps.
MIN_IMF: constant(uint256) = 10**16  # 1%: 100x
MAX_TRADING_FEE: constant(uint256) = 10**16  # 1%
MAX_LIQ_FEE: constant(uint256) = 5 * 10**16  # 5%
MAX_KEEPER_SHARE: constant(uint256) = 5 * 10**17  # 50%: no profit in self-liquidation
MAX_FUNDING_K: constant(uint256) = 10**14  # per second, at 100% skew
MAX_FUNDING_RATE: constant(uint256) = 10**14  # per second
MAX_PRICE_AGE: constant(uint256) = 86400
MAX_OPEN_INTEREST: constant(uint256) = 2**120

# Orders (PerpOrders): |margin_delta| < 2**127 and requested_at < 2**35
# keep an order in three slots (see _store_order).
MAX_ORDER_MARGIN: constant(int256) = 2**127
MAX_ORDER_TIME: constant(uint256) = 2**35
MIN_ORDER_EXPIRY: constant(uint256) = 60
MAX_ORDER_EXPIRY: constant(uint256) = 7 * 86400
DEFAULT_ORDER_EXPIRY: constant(uint256) = 7200  # two of a feed's 3,600 s heartbeats
# The execution fee's cap, in whole tokens (100 USDC on a 6-decimal token):
# it is paid from every order's escrow and every TP/SL payout.
MAX_EXECUTION_FEE_TOKENS: constant(uint256) = 100
# Solvency (docs/solvency.md): what a position can take from the vault, its
# profit net of funding, is capped at max_profit times its entry notional.
# 25% keeps every winner of a 20% move paid in full at any leverage.
MIN_MAX_PROFIT: constant(uint256) = 25 * 10**16  # 25%
MAX_MAX_PROFIT: constant(uint256) = 10 * 10**18  # 1000%
DEFAULT_MAX_PROFIT: constant(uint256) = 5 * 10**17  # 50%
# Keepers (docs/liquidation.md): every liquidation and deleverage pays its
# caller at least min_keeper_reward (at most 100 whole tokens); positions
# are at least min_notional of entry notional, and every market's trading
# fee on min_notional pays at least that reward (a position opened only to
# be liquidated for the reward loses money).
MAX_KEEPER_REWARD_TOKENS: constant(uint256) = 100
# Oracle hygiene (docs/decisions.md, docs/trust.md "Oracles"): a feed is
# "down" when broken (reverts, malformed, answer <= 0, incomplete, from the
# future, outside the market's [min_price, max_price]) or when its latest
# round is older than STALE_HEARTBEATS heartbeats; then a registered fallback
# with a later sound round prices the market. A feed change (and a fallback's
# registration) must land within MAX_FEED_JUMP of the current feed's answer
# unless that feed is down.
STALE_HEARTBEATS: constant(uint256) = 2
MAX_FEED_JUMP: constant(uint256) = 5 * 10**16  # 5%
# An L2 sequencer-uptime feed (answer 0 = up, 1 = down, startedAt = when the
# status changed) gates every fresh price; the grace period after it comes
# back up is at most a day.
MAX_SEQUENCER_GRACE: constant(uint256) = 86400
SEQUENCER_UP: constant(uint256) = 0
SEQUENCER_DOWN: constant(uint256) = 1
SEQUENCER_GRACE: constant(uint256) = 2
# Raising a market's mmf never makes a healthy position liquidatable at
# once: the maintenance fraction in force (_mmf) moves linearly from its
# value at the change to the new one, at most MAX_MMF_RAISE (1 bp of
# notional) every MMF_RAMP_PERIOD (an hour). Lowering applies at once.
MAX_MMF_RAISE: constant(uint256) = 10**14
MMF_RAMP_PERIOD: constant(uint256) = 3600
# The borrowing fee's ceiling, per second (1e18 = 100% of notional a
# second): 1 bp of notional an hour, the mmf ramp's pace, so the owner's fee
# lever erodes a position's buffer no faster than its mmf lever (decision
# 75); about 87.6% of notional a year (decision 96).
MAX_BORROW_RATE: constant(uint256) = MAX_MMF_RAISE // MMF_RAMP_PERIOD

# ---------------------------------------------------------------- structs

struct Position:
    size: int256
    entry_price: uint256
    margin: uint256
    funding_index: int256
    take_profit: uint256
    stop_loss: uint256

struct MarketParams:
    feed: address
    imf: uint256
    mmf: uint256
    liq_fee: uint256
    keeper_share: uint256
    trading_fee: uint256
    insurance_share: uint256
    funding_k: uint256
    max_funding_rate: uint256
    max_price_age: uint256
    max_open_interest: uint256
    min_margin: uint256
    execution_fee: uint256

struct OracleParams:
    min_price: uint256
    max_price: uint256
    heartbeat: uint256
    fallback: address
    fallback_max_age: uint256

struct Order:
    account: address
    market_id: uint256
    size_delta: int256
    margin_delta: int256
    acceptable_price: uint256
    requested_at: uint256
    reduce_only: bool
    trading_fee: uint256
    execution_fee: uint256
    escrow: uint256
    expires_at: uint256

struct MarketState:
    long_oi: uint256
    short_oi: uint256
    long_cost: uint256
    short_cost: uint256
    sum_size_index: int256
    funding_index: int256
    # last_funding_time | borrow_rate << 64 | borrow_index << 128: one slot,
    # read and written by every accrual anyway (decision 96). Bounds:
    # timestamps < 2**64, borrow_rate <= MAX_BORROW_RATE < 2**64, and
    # 0 <= borrow_index < 2**127 (_accrue).
    clock: uint256

# What market_state returns: the stored state with the clock unpacked.
struct MarketStateView:
    long_oi: uint256
    short_oi: uint256
    long_cost: uint256
    short_cost: uint256
    sum_size_index: int256
    funding_index: int256
    last_funding_time: uint256
    borrow_index: int256
    borrow_rate: uint256

struct AdlPending:
    remaining: uint256
    bad_debt: uint256
    bankrupt_size: int256
    size_left: uint256
    bankrupt: address
    bankruptcy_price: uint256
    price: uint256

# ---------------------------------------------------------------- events

event Deposited:
    account: indexed(address)
    amount: uint256

event Withdrawn:
    account: indexed(address)
    amount: uint256

event PositionOpened:
    account: indexed(address)
    market_id: indexed(uint256)
    size_delta: int256
    price: uint256
    margin_added: uint256
    fee: uint256
    funding_paid: int256
    size: int256
    entry_price: uint256

event PositionClosed:
    account: indexed(address)
    market_id: indexed(uint256)
    size_closed: int256
    price: uint256
    pnl: int256
    fee: uint256
    funding_paid: int256
    payout: uint256

event MarginChanged:
    account: indexed(address)
    market_id: indexed(uint256)
    delta: int256
    funding_paid: int256

event TpSlSet:
    account: indexed(address)
    market_id: indexed(uint256)
    take_profit: uint256
    stop_loss: uint256

event TpSlExecuted:
    account: indexed(address)
    market_id: indexed(uint256)
    keeper: indexed(address)
    price: uint256
    execution_fee: uint256

event OrderRequested:
    order_id: indexed(uint256)
    account: indexed(address)
    market_id: indexed(uint256)
    size_delta: int256
    margin_delta: int256
    acceptable_price: uint256

event OrderExecuted:
    order_id: indexed(uint256)
    price: uint256

event OrderCancelled:
    order_id: indexed(uint256)
    reason: String[64]

event OrderExpirySet:
    expiry: uint256

event PositionLiquidated:
    account: indexed(address)
    market_id: indexed(uint256)
    size: int256
    price: uint256
    penalty: uint256
    keeper_reward: uint256
    bad_debt: uint256

event InsuranceFundDrawn:
    amount: uint256
    remaining: uint256

event AutoDeleveraged:
    bankrupt: indexed(address)
    target: indexed(address)
    market_id: indexed(uint256)
    size: int256
    bankruptcy_price: uint256
    haircut: uint256

event BadDebtSocialized:
    market_id: indexed(uint256)
    amount: uint256

event DeleveragePending:
    market_id: indexed(uint256)
    bankrupt: indexed(address)
    remaining: uint256

event MarketAdded:
    market_id: indexed(uint256)
    feed: address

event MarketParamsSet:
    market_id: indexed(uint256)

event OracleSet:
    market_id: indexed(uint256)
    min_price: uint256
    max_price: uint256
    heartbeat: uint256
    fallback: address
    fallback_max_age: uint256

event SequencerFeedSet:
    feed: address
    grace: uint256

event PauserSet:
    pauser: indexed(address)

event MmfRamp:
    market_id: indexed(uint256)
    from_mmf: uint256
    to_mmf: uint256
    start: uint256
    end: uint256

event BorrowRateSet:
    market_id: indexed(uint256)
    rate: uint256

event MaxProfitSet:
    max_profit: uint256

event KeeperRewardSet:
    min_keeper_reward: uint256
    min_notional: uint256

event KeeperPaid:
    keeper: indexed(address)
    from_fund: uint256
    from_vault: uint256

# ---------------------------------------------------------------- immutables

COLLATERAL: public(immutable(IERC20))
SCALE: public(immutable(uint256))

# ---------------------------------------------------------------- storage

vault: public(ILiquidityVault)
insurance_fund: public(IInsuranceFund)
pauser: public(address)

market_count: public(uint256)
_params: HashMap[uint256, MarketParams]
_state: HashMap[uint256, MarketState]

_free: HashMap[address, uint256]

# A position is packed into three slots (the ADL scan reads only the first
# two): a = (size + 2**127) | margin << 128; b = entry | (index + 2**127) << 128;
# c = take_profit | stop_loss << 128. a == 0 means no position.
_pos_a: HashMap[address, HashMap[uint256, uint256]]
_pos_b: HashMap[address, HashMap[uint256, uint256]]
_pos_c: HashMap[address, HashMap[uint256, uint256]]

# Open positions per market side (key = market_id * 2 + side, side 0 long,
# 1 short), swap-and-pop on removal; _member_index is 1-based.
_members: HashMap[uint256, HashMap[uint256, address]]
_member_count: HashMap[uint256, uint256]
_member_index: HashMap[address, HashMap[uint256, uint256]]

# The market's pending ADL jobs, oldest at index 0 (see _adl_count). A job
# keeps the oracle price of its liquidation (`price`): every fill of it is
# ranked, tested for profit and priced there (adl._deleverage).
_adl_jobs: HashMap[uint256, HashMap[uint256, AdlPending]]

# The hot-path copy of _params and the feed scale, five slots instead of
# fourteen (each field is bounded by _set_params, which writes both copies):
# [0] feed | max_price_age << 160 | feed_scale << 192
# [1] imf | mmf << 64 | trading_fee << 128 | insurance_share << 192
# [2] liq_fee | keeper_share << 64 | funding_k << 128 | max_funding_rate << 192
# [3] max_open_interest | min_margin << 128
# [4] execution_fee
# _params stays the readable copy (market_params, storage readers); declared
# last, so every other slot keeps its place.
_packed: HashMap[uint256, uint256[5]]
_listed: transient(HashMap[address, bool])

# Orders, ids from 1 (0 is never an order). Three slots each (see
# _store_order); all zero once executed or cancelled.
order_count: public(uint256)
order_expiry: public(uint256)
_orders: HashMap[uint256, uint256[3]]
# The block time at which each position's TP/SL triggers were last set:
# execute_tp_sl needs a price round later than it.
_tp_sl_at: HashMap[address, HashMap[uint256, uint256]]
# The last order of each (account, market): order id | expires_at << 128.
# It is pending while that order's slots are still set (_pending_id); the
# word is never cleared, so every request after an account's first in a
# market rewrites a warm slot instead of a fresh one. While an order is
# pending, nothing its account does can change how it executes (no second
# order, no add_margin, no TP/SL change).
_pending: HashMap[address, HashMap[uint256, uint256]]
# Solvency: the payout cap (a fraction of entry notional, 1e18) and the sum
# of |size| * entry_price over every open position of every market, so the
# vault's reserve, ceil(max_profit * total_cost / (1e18 * SCALE)), is one
# multiplication (docs/solvency.md).
max_profit: public(uint256)
total_cost: public(uint256)
# The keeper's floor and the position floor (set_keeper_reward).
min_keeper_reward: public(uint256)
min_notional: public(uint256)
# Oracle hygiene, per market (set_oracle; add_market writes the defaults:
# bounds [1, MAX_PRICE - 1], no heartbeat, no fallback):
# [0] min_price | max_price << 128 (1e18, inclusive)
# [1] fallback | fallback_scale << 160 (64 bits) | heartbeat << 224 (32 bits)
# [2] fallback_max_age
_oracle: HashMap[uint256, uint256[3]]
# The network's sequencer-uptime feed (empty: none) and its grace period.
sequencer_feed: public(address)
sequencer_grace: public(uint256)
# How many ADL jobs each market has pending (_adl_jobs[mid][0 .. count)).
_adl_count: HashMap[uint256, uint256]
# A rising mmf's ramp per market: from_mmf | start << 64 | end << 128 (0:
# none). The target is the stored mmf; _mmf interpolates (docs/trust.md).
_mmf_ramp: HashMap[uint256, uint256]


@deploy
def __init__(collateral: IERC20):
    COLLATERAL = collateral
    decimals: uint8 = staticcall IERC20Detailed(collateral.address).decimals()
    assert decimals <= 36, "engine: token decimals"
    SCALE = 10 ** (36 - convert(decimals, uint256))
    self.order_expiry = DEFAULT_ORDER_EXPIRY
    self.max_profit = DEFAULT_MAX_PROFIT


@internal
@view
def _check_market(market_id: uint256):
    assert market_id < self.market_count, "market: unknown"


@internal
def _set_params(mid: uint256, p: MarketParams):
    assert p.feed != empty(address), "params: feed"
    assert p.imf >= MIN_IMF and p.imf <= WAD, "params: imf"
    assert p.mmf > 0 and p.mmf < p.imf, "params: mmf"
    assert p.trading_fee <= MAX_TRADING_FEE and p.trading_fee < p.mmf, "params: trading fee"
    assert p.liq_fee <= MAX_LIQ_FEE, "params: liquidation fee"
    assert p.keeper_share <= MAX_KEEPER_SHARE, "params: keeper share"
    assert p.insurance_share <= WAD, "params: insurance share"
    assert p.funding_k <= MAX_FUNDING_K and p.max_funding_rate <= MAX_FUNDING_RATE, "params: funding"
    assert p.max_price_age > self._oracle[mid][1] >> 224 and p.max_price_age <= MAX_PRICE_AGE, "params: price age"
    assert p.max_open_interest > 0 and p.max_open_interest <= MAX_OPEN_INTEREST, "params: open interest"
    assert p.min_margin > 0 and p.min_margin < MAX_AMOUNT, "params: min margin"
    assert p.execution_fee <= MAX_EXECUTION_FEE_TOKENS * (10**36 // SCALE), "params: execution fee"
    assert p.trading_fee * self.min_notional >= self.min_keeper_reward * WAD, "params: trading fee below reward"
    decimals: uint8 = staticcall AggregatorV3(p.feed).decimals()
    assert decimals <= 18, "params: feed decimals"
    feed_scale: uint256 = 10 ** (18 - convert(decimals, uint256))
    old_feed: address = convert(self._packed[mid][0] & MASK160, address)
    if old_feed == empty(address):
        # a new market: any sound price, no heartbeat, no fallback (set_oracle)
        self._oracle[mid][0] = 1 | ((MAX_PRICE - 1) << 128)
    elif old_feed != p.feed:
        # a feed change needs a sound new feed (a fallback would otherwise
        # hide a broken one) that lands within MAX_FEED_JUMP of the old
        # feed's price unless the old feed is down
        old: uint256 = self._primary_up(mid)
        new: uint256 = 0
        updated: uint256 = 0
        new, updated = self._feed_round(p.feed, feed_scale, self._oracle[mid][0], False)
        assert new != 0, "bad price"
        assert old == 0 or self._within_jump(old, new), "params: feed jump"
    self._params[mid] = p
    self._packed[mid] = [
        convert(p.feed, uint256) | (p.max_price_age << 160) | (feed_scale << 192),
        p.imf | (p.mmf << 64) | (p.trading_fee << 128) | (p.insurance_share << 192),
        p.liq_fee | (p.keeper_share << 64) | (p.funding_k << 128) | (p.max_funding_rate << 192),
        p.max_open_interest | (p.min_margin << 128),
        p.execution_fee,
    ]
    log MarketParamsSet(market_id=mid)


@internal
@view
def _market_params(mid: uint256) -> MarketParams:
    """
    @notice The market's parameters from the packed copy (five SLOADs).
    """
    s: uint256[5] = self._packed[mid]
    return MarketParams(
        feed=convert(s[0] & MASK160, address),
        imf=s[1] & MASK64,
        mmf=(s[1] >> 64) & MASK64,
        liq_fee=s[2] & MASK64,
        keeper_share=(s[2] >> 64) & MASK64,
        trading_fee=(s[1] >> 128) & MASK64,
        insurance_share=s[1] >> 192,
        funding_k=(s[2] >> 128) & MASK64,
        max_funding_rate=s[2] >> 192,
        max_price_age=(s[0] >> 160) & (2**32 - 1),
        max_open_interest=s[3] & MASK,
        min_margin=s[3] >> 128,
        execution_fee=s[4],
    )


@internal
@view
def _mmf(mid: uint256) -> uint256:
    """
    @notice The maintenance fraction in force: the stored mmf, or, while a
            raise ramps in, from_mmf + (mmf - from_mmf) * elapsed / duration,
            rounded down (the requirement never runs ahead of its speed
            bound). Every maintenance check and view reads it.
    """
    target: uint256 = (self._packed[mid][1] >> 64) & MASK64
    r: uint256 = self._mmf_ramp[mid]
    end: uint256 = r >> 128
    if block.timestamp >= end:
        return target
    start: uint256 = (r >> 64) & MASK64
    from_mmf: uint256 = r & MASK64
    return from_mmf + fp.mul_div_down(target - from_mmf, block.timestamp - start, end - start)


@internal
def _ramp_mmf(mid: uint256, old_mmf: uint256):
    """
    @notice After a parameter change: a raise of mmf above `old_mmf` (the
            fraction in force before it) ramps in over
            ceil((new - old) * MMF_RAMP_PERIOD / MAX_MMF_RAISE) seconds;
            anything else applies at once.
    """
    target: uint256 = (self._packed[mid][1] >> 64) & MASK64
    if target <= old_mmf:
        self._mmf_ramp[mid] = 0
        return
    # up: a ramp never faster than its bound
    duration: uint256 = fp.mul_div_up(target - old_mmf, MMF_RAMP_PERIOD, MAX_MMF_RAISE)
    self._mmf_ramp[mid] = old_mmf | (block.timestamp << 64) | ((block.timestamp + duration) << 128)
    log MmfRamp(market_id=mid, from_mmf=old_mmf, to_mmf=target, start=block.timestamp, end=block.timestamp + duration)


@internal
@view
def _price(mid: uint256, fresh: bool) -> uint256:
    """
    @notice The market's price normalised to 1e18 (see _round).
    """
    price: uint256 = 0
    updated: uint256 = 0
    price, updated = self._round(mid, fresh)
    return price


@internal
@view
def _round(mid: uint256, fresh: bool) -> (uint256, uint256):
    """
    @notice The market's price normalised to 1e18 and its round's updatedAt,
            from the primary feed or, while the primary is down, a fallback
            with a later sound round (_oracle_round). Reverts "bad price"
            when neither gives a sound round; when `fresh`, first
            "sequencer down" / "sequencer grace" (_check_sequencer), then
            "stale price" past the chosen feed's maximum age.
    """
    if fresh:
        self._check_sequencer()
    price: uint256 = 0
    updated: uint256 = 0
    max_age: uint256 = 0
    price, updated, max_age = self._oracle_round(mid)
    assert price != 0, "bad price"
    if fresh:
        assert block.timestamp - updated <= max_age, "stale price"
    return (price, updated)


@internal
@view
def _oracle_round(mid: uint256) -> (uint256, uint256, uint256):
    """
    @notice (price, updatedAt, max age) of the round the market prices
            from; price 0 when no feed gives a sound round. The primary
            unless it is down (broken, or older than STALE_HEARTBEATS
            heartbeats when a heartbeat is set); then the fallback, if one
            is registered and has a sound round later than the primary's
            (any sound round when the primary is broken); else the primary
            as it is.
    """
    s0: uint256 = self._packed[mid][0]  # feed | max_price_age | feed_scale
    bounds: uint256 = self._oracle[mid][0]
    o1: uint256 = self._oracle[mid][1]  # fallback | fallback_scale | heartbeat
    price: uint256 = 0
    updated: uint256 = 0
    price, updated = self._feed_round(convert(s0 & MASK160, address), s0 >> 192, bounds, False)
    if not self._down(price, updated, o1 >> 224):
        return (price, updated, (s0 >> 160) & MASK32)
    fallback: address = convert(o1 & MASK160, address)
    if fallback != empty(address):
        f_price: uint256 = 0
        f_updated: uint256 = 0
        f_price, f_updated = self._feed_round(fallback, (o1 >> 160) & MASK64, bounds, True)
        if f_price != 0 and (price == 0 or f_updated > updated):
            return (f_price, f_updated, self._oracle[mid][2])
    return (price, updated, (s0 >> 160) & MASK32)


@internal
@view
def _down(price: uint256, updated: uint256, heartbeat: uint256) -> bool:
    """
    @notice Whether a feed's round (price 0: broken) counts as down: broken,
            or older than STALE_HEARTBEATS heartbeats (never, for age, when
            no heartbeat is set).
    """
    return price == 0 or (heartbeat != 0 and block.timestamp - updated > STALE_HEARTBEATS * heartbeat)


@internal
@view
def _feed_round(feed: address, scale: uint256, bounds: uint256, history: bool) -> (uint256, uint256):
    """
    @notice A feed's latest round as (price in 1e18, updatedAt), or (0, 0)
            when it is broken: the call reverts or returns fewer than five
            words, the answer is <= 0, the round is incomplete (answeredInRound
            < roundId) or has no or a future timestamp, or the price is
            outside the market's [min_price, max_price] (bounds = min | max
            << 128; max_price < MAX_PRICE). With `history` (the fallback,
            when it would price the market), also (0, 0) unless the previous
            round of the same phase (round id phaseId << 64 |
            aggregatorRoundId; getRoundData(roundId - 1)) is sound by the
            same rules and the latest price is within MAX_FEED_JUMP of it:
            a phase's first round is refused (docs/decisions.md 80). Never
            reverts, so a broken primary leaves the fallback to be read.
    """
    call: Bytes[36] = method_id("latestRoundData()")
    latest: uint256 = 0
    latest_updated: uint256 = 0
    for i: uint256 in range(2):
        ok: bool = False
        response: Bytes[160] = b""
        ok, response = raw_call(feed, call, max_outsize=160, is_static_call=True, revert_on_failure=False)
        if not ok or len(response) < 160:
            return (0, 0)
        round_id: uint256 = 0
        answer: int256 = 0
        started: uint256 = 0
        updated: uint256 = 0
        answered: uint256 = 0
        # round ids decoded as uint256: a malformed uint80 cannot make the decode revert
        round_id, answer, started, updated, answered = abi_decode(response, (uint256, int256, uint256, uint256, uint256))
        if answer <= 0 or answer >= convert(MAX_PRICE, int256):
            return (0, 0)
        if updated == 0 or answered < round_id or updated > block.timestamp:
            return (0, 0)
        # answer < 2**128 and scale <= 10**18: the product fits
        price: uint256 = convert(answer, uint256) * scale
        if price < bounds & MASK or price > bounds >> 128:
            return (0, 0)
        if i == 1:
            # the previous round: the latest must be within the jump bound of it
            if not self._within_jump(price, latest):
                return (0, 0)
            break
        latest = price
        latest_updated = updated
        if not history:
            break
        if round_id & MASK64 <= 1:
            return (0, 0)  # a phase's first round: no previous round to bound it
        call = concat(method_id("getRoundData(uint80)"), convert(round_id - 1, bytes32))
    return (latest, latest_updated)


@internal
@view
def _sequencer_status() -> uint256:
    """
    @notice SEQUENCER_UP when no sequencer-uptime feed is set or the
            sequencer has been up for longer than the grace period;
            SEQUENCER_DOWN while its answer is not 0 (1 = down) or its
            startedAt is 0 (an invalid round); SEQUENCER_GRACE while
            startedAt (when it came back up) is within sequencer_grace
            seconds of now, or in the future.
    """
    feed: address = self.sequencer_feed
    if feed == empty(address):
        return SEQUENCER_UP
    round_id: uint80 = 0
    answer: int256 = 0
    started: uint256 = 0
    updated: uint256 = 0
    answered: uint80 = 0
    (round_id, answer, started, updated, answered) = staticcall AggregatorV3(feed).latestRoundData()
    if answer != 0 or started == 0:
        return SEQUENCER_DOWN
    if started >= block.timestamp or block.timestamp - started <= self.sequencer_grace:
        return SEQUENCER_GRACE
    return SEQUENCER_UP


@internal
@view
def _check_sequencer():
    status: uint256 = self._sequencer_status()
    assert status != SEQUENCER_DOWN, "sequencer down"
    assert status != SEQUENCER_GRACE, "sequencer grace"


@internal
@view
def _within_jump(old: uint256, new: uint256) -> bool:
    """
    @notice |new - old| <= MAX_FEED_JUMP * old / 1e18, compared exactly
            (both sides multiplied out, no division).
    """
    d: uint256 = new - old if new > old else old - new
    return d * WAD <= MAX_FEED_JUMP * old


@internal
@view
def _primary_up(mid: uint256) -> uint256:
    """
    @notice The primary feed's sound price when it is not down, else 0:
            a feed change or a fallback registration is bounded against it.
    """
    s0: uint256 = self._packed[mid][0]
    price: uint256 = 0
    updated: uint256 = 0
    price, updated = self._feed_round(convert(s0 & MASK160, address), s0 >> 192, self._oracle[mid][0], False)
    if self._down(price, updated, self._oracle[mid][1] >> 224):
        return 0
    return price


@internal
def _set_oracle(mid: uint256, o: OracleParams):
    """
    @notice Set a market's price bounds, its primary feed's heartbeat and
            its fallback feed (empty: none). The bounds must hold the
            primary's current price when the primary is up (so new bounds
            cannot declare a sound primary broken and hand the market to
            the fallback); a fallback must differ from the primary, give a
            sound round within the bounds now, and land within
            MAX_FEED_JUMP of the primary's price when the primary is up.
    """
    assert o.min_price > 0 and o.min_price < o.max_price and o.max_price < MAX_PRICE, "oracle: bounds"
    s0: uint256 = self._packed[mid][0]
    assert o.heartbeat > 0 and o.heartbeat < (s0 >> 160) & MASK32, "oracle: heartbeat"
    primary: uint256 = self._primary_up(mid)
    bounds: uint256 = o.min_price | (o.max_price << 128)
    assert primary == 0 or (primary >= o.min_price and primary <= o.max_price), "oracle: bounds exclude price"
    f_scale: uint256 = 0
    if o.fallback != empty(address):
        assert o.fallback != convert(s0 & MASK160, address), "oracle: fallback is primary"
        assert o.fallback_max_age > 0 and o.fallback_max_age <= MAX_PRICE_AGE, "oracle: fallback age"
        decimals: uint8 = staticcall AggregatorV3(o.fallback).decimals()
        assert decimals <= 18, "params: feed decimals"
        f_scale = 10 ** (18 - convert(decimals, uint256))
        f_price: uint256 = 0
        f_updated: uint256 = 0
        f_price, f_updated = self._feed_round(o.fallback, f_scale, bounds, False)
        assert f_price != 0, "oracle: fallback broken"
        assert primary == 0 or self._within_jump(primary, f_price), "oracle: fallback jump"
    else:
        assert o.fallback_max_age == 0, "oracle: fallback age"
    self._oracle[mid] = [bounds, convert(o.fallback, uint256) | (f_scale << 160) | (o.heartbeat << 224), o.fallback_max_age]
    log OracleSet(
        market_id=mid,
        min_price=o.min_price,
        max_price=o.max_price,
        heartbeat=o.heartbeat,
        fallback=o.fallback,
        fallback_max_age=o.fallback_max_age,
    )


@internal
def _set_sequencer_feed(feed: address, grace: uint256):
    """
    @notice Set (or clear with the empty address and grace 0) the network's
            sequencer-uptime feed and its grace period.
    """
    assert grace <= MAX_SEQUENCER_GRACE and (feed != empty(address) or grace == 0), "oracle: sequencer grace"
    self.sequencer_feed = feed
    self.sequencer_grace = grace
    log SequencerFeedSet(feed=feed, grace=grace)


@internal
@view
def _oracle_params(mid: uint256) -> OracleParams:
    o: uint256[3] = self._oracle[mid]
    return OracleParams(
        min_price=o[0] & MASK,
        max_price=o[0] >> 128,
        heartbeat=o[1] >> 224,
        fallback=convert(o[1] & MASK160, address),
        fallback_max_age=o[2],
    )


@internal
@view
def _indices(mid: uint256, price: uint256) -> (int256, int256):
    """
    @notice (funding index, borrow index) accrued to now at `price`.
    """
    idx: int256 = self._state[mid].funding_index
    clock: uint256 = self._state[mid].clock
    borrow: int256 = convert(clock >> 128, int256)
    last: uint256 = clock & MASK64
    if block.timestamp > last:
        s2: uint256 = self._packed[mid][2]  # ... | funding_k << 128 | max_funding_rate << 192
        r: int256 = funding.rate(self._state[mid].long_oi, self._state[mid].short_oi, (s2 >> 128) & MASK64, s2 >> 192)
        idx += funding.index_step(r, price, block.timestamp - last)
        borrow += funding.borrow_step((clock >> 64) & MASK64, price, block.timestamp - last)
    return (idx, borrow)


@internal
@view
def _pending_index(mid: uint256, price: uint256, size: int256) -> int256:
    """
    @notice The index a position of `size`'s side settles against now
            (funding.side_index).
    """
    idx: int256 = 0
    borrow: int256 = 0
    idx, borrow = self._indices(mid, price)
    return funding.side_index(size, idx, borrow)


@internal
def _accrue(mid: uint256, price: uint256, size: int256) -> int256:
    """
    @notice Store both indices at now; return the one `size`'s side settles
            against. Both side indices stay inside a position's 128-bit
            field: |funding index| + borrow index < 2**127.
    """
    idx: int256 = 0
    borrow: int256 = 0
    idx, borrow = self._indices(mid, price)
    assert abs(idx) + borrow < OFFSET, "funding: index overflow"
    self._state[mid].funding_index = idx
    rate: uint256 = (self._state[mid].clock >> 64) & MASK64
    self._state[mid].clock = block.timestamp | (rate << 64) | (convert(borrow, uint256) << 128)
    return funding.side_index(size, idx, borrow)


# ---------------------------------------------------------------- internal: positions


@internal
@view
def _load(account: address, mid: uint256) -> Position:
    a: uint256 = self._pos_a[account][mid]
    if a == 0:
        return empty(Position)
    b: uint256 = self._pos_b[account][mid]
    c: uint256 = self._pos_c[account][mid]
    return Position(
        size=convert(a & MASK, int256) - OFFSET,
        entry_price=b & MASK,
        margin=a >> 128,
        funding_index=convert(b >> 128, int256) - OFFSET,
        take_profit=c & MASK,
        stop_loss=c >> 128,
    )


@internal
def _write(account: address, mid: uint256, old: Position, new: Position):
    """
    @notice Store `new` over `old`, keeping open interest, cost and funding
            aggregates and the side sets equal to the sums over positions.
    """
    assert new.margin < MAX_AMOUNT, "position: margin too large"
    # Only the side a position is on is read and written (a position never
    # changes side; a new or closed one has size 0 on one end).
    if old.size > 0 or new.size > 0:
        oi: uint256 = self._state[mid].long_oi
        cost: uint256 = self._state[mid].long_cost
        if old.size > 0:
            oi -= convert(old.size, uint256)
            cost -= convert(old.size, uint256) * old.entry_price
        if new.size > 0:
            oi += convert(new.size, uint256)
            cost += convert(new.size, uint256) * new.entry_price
        self._state[mid].long_oi = oi
        self._state[mid].long_cost = cost
    if old.size < 0 or new.size < 0:
        oi: uint256 = self._state[mid].short_oi
        cost: uint256 = self._state[mid].short_cost
        if old.size < 0:
            oi -= convert(-old.size, uint256)
            cost -= convert(-old.size, uint256) * old.entry_price
        if new.size < 0:
            oi += convert(-new.size, uint256)
            cost += convert(-new.size, uint256) * new.entry_price
        self._state[mid].short_oi = oi
        self._state[mid].short_cost = cost
    self._state[mid].sum_size_index = self._state[mid].sum_size_index - old.size * old.funding_index + new.size * new.funding_index
    old_cost: uint256 = convert(abs(old.size), uint256) * old.entry_price
    new_cost: uint256 = convert(abs(new.size), uint256) * new.entry_price
    if old_cost != new_cost:
        self.total_cost = self.total_cost + new_cost - old_cost

    if old.size == 0 and new.size != 0:
        self._add_member(account, mid, new.size)
    elif old.size != 0 and new.size == 0:
        self._remove_member(account, mid, old.size)

    if new.size == 0:
        self._pos_a[account][mid] = 0
        self._pos_b[account][mid] = 0
        self._pos_c[account][mid] = 0
        return
    self._pos_a[account][mid] = convert(new.size + OFFSET, uint256) | (new.margin << 128)
    self._pos_b[account][mid] = new.entry_price | (convert(new.funding_index + OFFSET, uint256) << 128)
    if new.take_profit != old.take_profit or new.stop_loss != old.stop_loss:
        self._pos_c[account][mid] = new.take_profit | (new.stop_loss << 128)


@internal
def _add_member(account: address, mid: uint256, size: int256):
    key: uint256 = mid * 2 + convert(size < 0, uint256)
    n: uint256 = self._member_count[key]
    assert n < MAX_SIDE_POSITIONS, "market: side full"
    self._members[key][n] = account
    self._member_count[key] = n + 1
    self._member_index[account][mid] = n + 1


@internal
def _remove_member(account: address, mid: uint256, size: int256):
    key: uint256 = mid * 2 + convert(size < 0, uint256)
    i: uint256 = self._member_index[account][mid] - 1
    last: uint256 = self._member_count[key] - 1
    if i != last:
        moved: address = self._members[key][last]
        self._members[key][i] = moved
        self._member_index[moved][mid] = i + 1
    self._members[key][last] = empty(address)
    self._member_count[key] = last
    self._member_index[account][mid] = 0


@internal
@pure
def _average_entry(size: int256, entry: uint256, delta: int256, price: uint256) -> uint256:
    """
    @notice Size-weighted entry, rounded against the trader: up for a long,
            down for a short.
    """
    s: uint256 = convert(abs(size), uint256)
    d: uint256 = convert(abs(delta), uint256)
    if size > 0:
        return fp.mul_div_up(s * entry + d * price, 1, s + d)
    return fp.mul_div_down(s * entry + d * price, 1, s + d)


@internal
@view
def _effective_margin(pos: Position, mid: uint256, price: uint256) -> int256:
    return convert(pos.margin, int256) - funding.owed(pos.size, self._pending_index(mid, price, pos.size), pos.funding_index, SCALE)


@internal
@view
def _equity(pos: Position, mid: uint256, price: uint256) -> int256:
    """
    @notice margin - funding owed + upnl, the upnl cut at the payout cap.
    """
    owed: int256 = funding.owed(pos.size, self._pending_index(mid, price, pos.size), pos.funding_index, SCALE)
    pnl: int256 = self._capped_pnl(margin.upnl(pos.size, pos.entry_price, price, SCALE), owed, pos.size, pos.entry_price)
    return convert(pos.margin, int256) - owed + pnl


@internal
@view
def _capped_pnl(pnl: int256, owed: int256, size: int256, entry: uint256) -> int256:
    """
    @notice `pnl` of `size` (or the closed part of a position) cut so that
            what the vault pays for it, pnl - owed (price profit plus funding
            received), is at most max_profit times the part's entry notional,
            rounded down: cap = floor(max_profit * |size| * entry / (1e18 * SCALE)).
    """
    cap: uint256 = fp.mul_div_down(self.max_profit, convert(abs(size), uint256) * entry, WAD * SCALE)
    return min(pnl, convert(cap, int256) + owed)


@internal
@view
def _past_cap(pos: Position, price: uint256, idx: int256) -> bool:
    """
    @notice Whether the position's profit net of funding, at `price` and the
            funding index `idx`, has reached its payout cap (a cap above 0):
            the most it can ever be paid. Anyone may then close it at that
            cap (PerpExits.execute_tp_sl, decision 95).
    """
    cap: uint256 = fp.mul_div_down(self.max_profit, convert(abs(pos.size), uint256) * pos.entry_price, WAD * SCALE)
    owed: int256 = funding.owed(pos.size, idx, pos.funding_index, SCALE)
    return cap > 0 and margin.upnl(pos.size, pos.entry_price, price, SCALE) - owed >= convert(cap, int256)


@internal
@view
def _reserve() -> uint256:
    """
    @notice The most every open position together could take from the vault
            at any price: the sum of their payout caps, rounded up:
            ceil(max_profit * total_cost / (1e18 * SCALE)).
    """
    return fp.mul_div_up(self.max_profit, self.total_cost, WAD * SCALE)


@internal
def _pay_keeper_floor(keeper: address, paid: uint256) -> uint256:
    """
    @notice Top `keeper`'s reward `paid` up to min_keeper_reward: from the
            insurance fund first, then from the vault's free cash (cash above
            the reserve, so invariant 7 holds). Returns what the vault
            advanced, which the caller adds to the deficit ADL covers.
    """
    least: uint256 = self.min_keeper_reward
    if paid >= least:
        return 0
    top_up: uint256 = least - paid
    from_fund: uint256 = min(top_up, staticcall COLLATERAL.balanceOf(self.insurance_fund.address))
    if from_fund > 0:
        extcall self.insurance_fund.cover(self, from_fund)
    cash: uint256 = staticcall COLLATERAL.balanceOf(self.vault.address)
    from_vault: uint256 = min(top_up - from_fund, cash - min(cash, self._reserve()))
    if from_vault > 0:
        extcall self.vault.pay(from_vault)
    self._free[keeper] += from_fund + from_vault
    log KeeperPaid(keeper=keeper, from_fund=from_fund, from_vault=from_vault)
    return from_vault


@internal
@view
def _check_capacity():
    """
    @notice The solvency invariant: the vault's cash covers the reserve.
    """
    assert staticcall COLLATERAL.balanceOf(self.vault.address) >= self._reserve(), "vault: capacity"


@internal
def _reduce(
    account: address, mid: uint256, old: Position, closed: int256, price: uint256, idx: int256, p: MarketParams, keeper: address
) -> uint256:
    """
    @notice Close `closed` (same sign as the position) at `price`: settle the
            whole position's funding, release margin pro rata (floored),
            realise the PnL of the closed part, charge the trading fee (and,
            for a TP/SL execution by `keeper`, the keeper's execution fee
            from the payout; orders pass the empty address, since their
            execution fee was escrowed at request). Returns the payout
            credited to the account's free collateral.
    """
    owed: int256 = funding.owed(old.size, idx, old.funding_index, SCALE)
    eff: int256 = convert(old.margin, int256) - owed
    total_pnl: int256 = self._capped_pnl(margin.upnl(old.size, old.entry_price, price, SCALE), owed, old.size, old.entry_price)
    assert eff + total_pnl >= convert(margin.requirement(old.size, price, self._mmf(mid), SCALE), int256), "position: liquidatable"
    full: bool = closed == old.size
    released: int256 = eff
    if not full:
        released = fp.div_floor(eff * abs(closed), abs(old.size))
    # The whole position's funding settles now: what the vault pays, the
    # closed part's PnL less that funding, is capped by the closed part.
    pnl: int256 = self._capped_pnl(margin.upnl(closed, old.entry_price, price, SCALE), owed, closed, old.entry_price)
    fee: uint256 = margin.requirement(closed, price, p.trading_fee, SCALE)
    payout: int256 = released + pnl - convert(fee, int256)
    exec_fee: uint256 = 0
    if keeper != empty(address):
        exec_fee = min(p.execution_fee, convert(max(payout, 0), uint256))
        payout -= convert(exec_fee, int256)
    left: int256 = eff - released
    if payout < 0:
        left += payout
        payout = 0
    new: Position = empty(Position)
    if full:
        assert left == 0, "position: insolvent"
    else:
        assert left >= convert(p.min_margin, int256), "position: dust remainder"
        assert margin.notional_down(old.size - closed, old.entry_price, SCALE) >= self.min_notional, "position: dust remainder"
        new = old
        new.size = old.size - closed
        new.margin = convert(left, uint256)
        new.funding_index = idx
        remaining: int256 = left + margin.upnl(new.size, new.entry_price, price, SCALE)
        assert remaining >= convert(margin.requirement(new.size, price, self._mmf(mid), SCALE), int256), "margin: below maintenance"
    self._write(account, mid, old, new)
    self._free[account] += convert(payout, uint256)
    if exec_fee > 0:
        self._free[keeper] += exec_fee
    fund_fee: uint256 = fp.mul_div_down(fee, p.insurance_share, WAD)
    self._settle(owed - pnl + convert(fee - fund_fee, int256), fund_fee)
    log PositionClosed(
        account=account,
        market_id=mid,
        size_closed=closed,
        price=price,
        pnl=pnl,
        fee=fee,
        funding_paid=owed,
        payout=convert(payout, uint256),
    )
    if keeper != empty(address):
        log TpSlExecuted(account=account, market_id=mid, keeper=keeper, price=price, execution_fee=exec_fee)
    return convert(payout, uint256)


@internal
def _settle(vault_delta: int256, fund_amount: uint256):
    """
    @notice Move tokens between the engine and the vault (positive: the vault
            receives) and from the engine to the insurance fund.
    """
    if vault_delta < 0:
        extcall self.vault.pay(convert(-vault_delta, uint256))
    elif vault_delta > 0:
        assert extcall COLLATERAL.transfer(self.vault.address, convert(vault_delta, uint256), default_return_value=True), "collateral: transfer failed"
    if fund_amount > 0:
        assert extcall COLLATERAL.transfer(self.insurance_fund.address, fund_amount, default_return_value=True), "collateral: transfer failed"


# ---------------------------------------------------------------- internal: ADL


# ---------------------------------------------------------------- internal: orders


@internal
@view
def _load_order(order_id: uint256) -> Order:
    """
    @notice The order stored under `order_id` (account empty when there is
            none), with its escrow worked out (see _escrow).
    """
    s: uint256[3] = self._orders[order_id]
    if s[0] == 0:
        return empty(Order)
    o: Order = Order(
        account=convert(s[0] & MASK160, address),
        market_id=(s[0] >> 195) & 63,
        size_delta=convert(s[1] & MASK, int256) - MAX_SIZE,
        margin_delta=convert(s[2] & MASK, int256) - MAX_ORDER_MARGIN,
        acceptable_price=s[1] >> 128,
        requested_at=(s[0] >> 160) & (MAX_ORDER_TIME - 1),
        reduce_only=(s[0] >> 201) & 1 == 1,
        trading_fee=s[0] >> 202,
        execution_fee=s[2] >> 128,
        escrow=0,
        expires_at=0,
    )
    o.escrow = self._escrow(o)
    o.expires_at = self._pending[o.account][o.market_id] >> 128
    return o


@internal
@view
def _pending_id(account: address, mid: uint256) -> uint256:
    """
    @notice The id of the account's pending order in the market, 0 if none.
    """
    order_id: uint256 = self._pending[account][mid] & MASK
    if order_id == 0 or self._orders[order_id][0] == 0:
        return 0
    return order_id


@internal
def _store_order(order_id: uint256, o: Order):
    """
    @notice Pack an order into three slots:
            [0] account | requested_at << 160 (35 bits) | market_id << 195
                (6 bits) | reduce_only << 201 | trading_fee << 202 (54 bits)
            [1] (size_delta + 2**120) | acceptable_price << 128
            [2] (margin_delta + 2**127) | execution_fee << 128
            Every field is bounded by request_order or _set_params:
            market ids < MAX_MARKETS = 64, trading_fee <= 1e16 < 2**54,
            |size| < 2**120, prices and fees < 2**128.
    """
    self._orders[order_id] = [
        convert(o.account, uint256) | (o.requested_at << 160) | (o.market_id << 195)
        | (convert(o.reduce_only, uint256) << 201) | (o.trading_fee << 202),
        convert(o.size_delta + MAX_SIZE, uint256) | (o.acceptable_price << 128),
        convert(o.margin_delta + MAX_ORDER_MARGIN, uint256) | (o.execution_fee << 128),
    ]


@internal
@view
def _escrow(o: Order) -> uint256:
    """
    @notice What an order holds of its account's collateral: the execution
            fee, and for an open or increase also the margin moving in and
            the trading fee at the acceptable price (rounded up), the most a
            buy can cost. A reduce pays its trading fee from the position;
            a margin removal pays none.
    """
    e: uint256 = o.execution_fee
    if o.size_delta != 0 and not o.reduce_only:
        e += convert(o.margin_delta, uint256) + margin.requirement(o.size_delta, o.acceptable_price, o.trading_fee, SCALE)
    return e


@internal
@pure
def _tp_sl_hit(pos: Position, price: uint256) -> bool:
    """
    @notice Whether `price` crosses the position's take-profit or stop-loss
            (inclusive; 0 means none).
    """
    if pos.size > 0:
        return (pos.take_profit != 0 and price >= pos.take_profit) or (pos.stop_loss != 0 and price <= pos.stop_loss)
    return (pos.take_profit != 0 and price <= pos.take_profit) or (pos.stop_loss != 0 and price >= pos.stop_loss)
