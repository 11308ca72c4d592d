# pragma version 0.4.3
# pragma nonreentrancy on
"""
@title PerpEngine
@notice The Backstop clearinghouse: free collateral, markets, isolated
        positions, skew-based funding and fees. Liquidation, ADL and TP/SL
        live in PerpExits, orders in PerpOrders, the owner's and pauser's
        verbs in PerpAdmin, which this contract reaches by delegatecall
        (one address, one storage; see docs/architecture.md): the whole
        engine does not fit EIP-170's 24,576-byte limit as one contract.
        model/perp_engine.py mirrors every external function.
@custom:security Every external function is non-reentrant (pragma); the
        forwarders hold the lock while a facet's code runs, and every
        facet refuses to run outside a delegatecall. Tokens are only
        pushed to the vault and the insurance fund; traders and keepers are
        credited free collateral and withdraw it themselves. Every pull
        checks the balance change (fee-on-transfer tokens revert).
"""

from ethereum.ercs import IERC20
from snekmate.auth import ownable
from snekmate.auth import ownable_2step
from snekmate.utils import pausable

import fixed_point as fp
import margin
import funding
import positions
import adl

initializes: ownable
initializes: ownable_2step[ownable := ownable]
initializes: pausable
initializes: positions
initializes: adl[positions := positions]

# first_round_after walks back at most this many rounds (docs/lp-epochs.md)
MAX_ROUND_WALK: public(constant(uint256)) = 32

exports: (
    ownable_2step.owner,
    ownable_2step.pending_owner,
    pausable.paused,
    positions.COLLATERAL,
    positions.SCALE,
    positions.vault,
    positions.insurance_fund,
    positions.pauser,
    positions.market_count,
    positions.order_count,
    positions.order_expiry,
    positions.max_profit,
    positions.total_cost,
    positions.min_keeper_reward,
    positions.min_notional,
    positions.sequencer_feed,
    positions.sequencer_grace,
)

EXITS: public(immutable(address))
ORDERS: public(immutable(address))
ADMIN: public(immutable(address))


@deploy
def __init__(collateral: IERC20, exits: address, orders: address, admin: address):
    """
    @notice Deploy the engine for one collateral token, with the facets it
            delegates to: PerpExits (liquidation, ADL, TP/SL), PerpOrders
            (request, execution and cancellation of orders) and PerpAdmin
            (the owner's and the pauser's verbs). The vault and the
            insurance fund are wired once by `initialize`.
    """
    ownable.__init__()
    ownable_2step.__init__()
    pausable.__init__()
    positions.__init__(collateral)
    assert exits.is_contract and orders.is_contract and admin.is_contract, "engine: facets"
    EXITS = exits
    ORDERS = orders
    ADMIN = admin


# ---------------------------------------------------------------- forwarded to PerpOrders


@external
def request_order(market_id: uint256, size_delta: int256, margin_delta: int256, acceptable_price: uint256) -> uint256:
    """
    @notice Request an open, increase, reduce, close or margin removal,
            executed later by anyone at a price published after this block;
            see PerpAdmin.request_order and docs/architecture.md ("Orders").
    @return The order id.
    """
    response: Bytes[32] = raw_call(ADMIN, msg.data, max_outsize=32, is_delegate_call=True)
    return convert(response, uint256)


@external
def execute_order(order_id: uint256):
    """
    @notice Permissionless: apply a pending order at a fresh price from a
            round later than its request, or cancel it with the reason a
            failed check gives; the caller earns the execution fee.
    """
    raw_call(ORDERS, msg.data, is_delegate_call=True)


@external
@reentrant
def execute_order_inner(order_id: uint256, executor: address, price: uint256):
    """
    @notice execute_order's second half; only the engine itself may call it
            (PerpOrders checks), while execute_order holds the lock.
    """
    raw_call(ORDERS, msg.data, is_delegate_call=True)


@external
def cancel_order(order_id: uint256):
    """
    @notice The requester's refund of an order that expired unexecuted.
    """
    raw_call(ADMIN, msg.data, is_delegate_call=True)


@external
@view
def get_order(order_id: uint256) -> positions.Order:
    """
    @notice A pending order (every field 0 once executed or cancelled).
    """
    return positions._load_order(order_id)


@external
@view
def pending_order(account: address, market_id: uint256) -> uint256:
    """
    @notice The id of `account`'s pending order in the market, 0 if none.
    """
    return positions._pending_id(account, market_id)


# ---------------------------------------------------------------- forwarded to PerpExits


@external
def set_tp_sl(market_id: uint256, take_profit_price: uint256, stop_loss_price: uint256):
    """
    @notice Set (or clear with 0) the take-profit and stop-loss prices. A
            long's TP must be above entry and its SL below entry and above
            the liquidation price; mirrored for a short.
    """
    raw_call(ADMIN, msg.data, is_delegate_call=True)


@external
def execute_tp_sl(account: address, market_id: uint256):
    """
    @notice Permissionless: fully close `account`'s position at the oracle
            price once its take-profit or stop-loss is crossed; the caller
            earns the market's fixed execution fee from the position.
    """
    raw_call(EXITS, msg.data, is_delegate_call=True)


@external
def liquidate(account: address, market_id: uint256, adl_targets: DynArray[address, positions.MAX_ADL_TARGETS]):
    """
    @notice Permissionless liquidation with insurance-fund draw and ADL; see
            PerpExits.liquidate and docs/liquidation.md.
    """
    raw_call(EXITS, msg.data, is_delegate_call=True)


@external
def deleverage(market_id: uint256, adl_targets: DynArray[address, positions.MAX_ADL_TARGETS]):
    """
    @notice Permissionless: continue an ADL that needed more targets than one
            call takes; see PerpExits.deleverage.
    """
    raw_call(EXITS, msg.data, is_delegate_call=True)


# ---------------------------------------------------------------- forwarded to PerpAdmin


@external
def transfer_ownership(new_owner: address):
    """
    @notice Start a two-step ownership transfer (snekmate ownable_2step).
    """
    raw_call(ADMIN, msg.data, is_delegate_call=True)


@external
def accept_ownership():
    """
    @notice Complete a two-step ownership transfer; only the pending owner.
    """
    raw_call(ADMIN, msg.data, is_delegate_call=True)


@external
def initialize(vault: address, insurance_fund: address):
    """
    @notice Wire the liquidity vault and the insurance fund, once (owner).
    """
    raw_call(ADMIN, msg.data, is_delegate_call=True)


@external
def add_market(params: positions.MarketParams) -> uint256:
    """
    @notice Add a market (owner); ids run from 0 in the order markets were
            added. See PerpAdmin.add_market.
    @return The new market's id.
    """
    response: Bytes[32] = raw_call(ADMIN, msg.data, max_outsize=32, is_delegate_call=True)
    return convert(response, uint256)


@external
def set_market_params(market_id: uint256, params: positions.MarketParams):
    """
    @notice Change a market's parameters within bounds (owner); see
            PerpAdmin.set_market_params.
    """
    raw_call(ADMIN, msg.data, is_delegate_call=True)


@external
def set_borrow_rate(market_id: uint256, rate: uint256):
    """
    @notice A market's borrowing fee rate (owner, bounded); see
            PerpAdmin.set_borrow_rate.
    """
    raw_call(ADMIN, msg.data, is_delegate_call=True)


@external
def set_order_expiry(expiry: uint256):
    """
    @notice How long an order may wait for a later price (owner, bounded).
    """
    raw_call(ADMIN, msg.data, is_delegate_call=True)


@external
def set_max_profit(max_profit: uint256):
    """
    @notice The payout cap, a fraction (1e18) of entry notional (owner,
            bounded to [25%, 1000%]).
    """
    raw_call(ADMIN, msg.data, is_delegate_call=True)


@external
def set_keeper_reward(min_keeper_reward: uint256, min_notional: uint256):
    """
    @notice The keeper's floor per liquidation and deleverage, and the least
            entry notional of a new position (owner, bounded).
    """
    raw_call(ADMIN, msg.data, is_delegate_call=True)


@external
def set_oracle(market_id: uint256, oracle: positions.OracleParams):
    """
    @notice A market's price bounds, heartbeat and fallback feed (owner,
            bounded; PerpAdmin.set_oracle).
    """
    raw_call(ADMIN, msg.data, is_delegate_call=True)


@external
def set_sequencer_feed(feed: address, grace: uint256):
    """
    @notice The network's sequencer-uptime feed and grace period (owner,
            bounded; PerpAdmin.set_sequencer_feed).
    """
    raw_call(ADMIN, msg.data, is_delegate_call=True)


@external
def set_pauser(pauser: address):
    """
    @notice Name the account that may pause and unpause new risk (owner).
    """
    raw_call(ADMIN, msg.data, is_delegate_call=True)


@external
def pause():
    """
    @notice Stop opening and adding risk (pauser or owner). Closing, margin
            adds, withdrawals, liquidation, ADL and TP/SL keep working.
    """
    raw_call(ADMIN, msg.data, is_delegate_call=True)


@external
def unpause():
    """
    @notice Resume opening and adding risk (pauser or owner).
    """
    raw_call(ADMIN, msg.data, is_delegate_call=True)


# ---------------------------------------------------------------- collateral


@external
def deposit(amount: uint256):
    """
    @notice Move `amount` collateral from the caller into free collateral.
    """
    assert amount > 0, "collateral: zero amount"
    before: uint256 = staticcall positions.COLLATERAL.balanceOf(self)
    assert extcall positions.COLLATERAL.transferFrom(msg.sender, self, amount, default_return_value=True), "collateral: transfer failed"
    assert staticcall positions.COLLATERAL.balanceOf(self) - before == amount, "collateral: balance mismatch"
    positions._free[msg.sender] += amount
    log positions.Deposited(account=msg.sender, amount=amount)


@external
def withdraw(amount: uint256):
    """
    @notice Withdraw free collateral (works while paused).
    """
    assert amount > 0, "collateral: zero amount"
    assert positions._free[msg.sender] >= amount, "collateral: insufficient"
    positions._free[msg.sender] -= amount
    assert extcall positions.COLLATERAL.transfer(msg.sender, amount, default_return_value=True), "collateral: transfer failed"
    log positions.Withdrawn(account=msg.sender, amount=amount)


# ---------------------------------------------------------------- positions


@external
def add_margin(market_id: uint256, amount: uint256):
    """
    @notice Move free collateral into a position (works while paused and
            without a price).
    """
    positions._check_market(market_id)
    assert amount > 0, "collateral: zero amount"
    old: positions.Position = positions._load(msg.sender, market_id)
    assert old.size != 0, "position: none"
    # Margin that arrives after the next round could decide a pending
    # order's margin checks: the account would choose whether it fills.
    assert positions._pending_id(msg.sender, market_id) == 0, "order: pending"
    free: uint256 = positions._free[msg.sender]
    assert amount <= free, "collateral: insufficient"
    new: positions.Position = old
    new.margin = old.margin + amount
    positions._free[msg.sender] = free - amount
    positions._write(msg.sender, market_id, old, new)
    log positions.MarginChanged(account=msg.sender, market_id=market_id, delta=convert(amount, int256), funding_paid=0)


@external
@view
def get_position(account: address, market_id: uint256) -> positions.Position:
    """
    @notice The stored position (funding not yet settled).
    """
    return positions._load(account, market_id)


@external
@view
def free_collateral(account: address) -> uint256:
    """
    @notice Collateral held for `account` outside any position.
    """
    return positions._free[account]


@external
@view
def market_params(market_id: uint256) -> positions.MarketParams:
    """
    @notice A market's parameters (fractions in 1e18).
    """
    return positions._params[market_id]


@external
@view
def effective_mmf(market_id: uint256) -> uint256:
    """
    @notice The maintenance fraction in force now (1e18): market_params'
            mmf, or, while a raise ramps in, the ramp's value.
    """
    return positions._mmf(market_id)


@external
@view
def mmf_ramp(market_id: uint256) -> (uint256, uint256, uint256):
    """
    @notice A rising mmf's ramp: (from_mmf, start, end); all 0 when none
            was set (market_params' mmf applies once block time >= end).
    """
    r: uint256 = positions._mmf_ramp[market_id]
    return (r & positions.MASK64, (r >> 64) & positions.MASK64, r >> 128)


@external
@view
def market_state(market_id: uint256) -> positions.MarketStateView:
    """
    @notice A market's open interest, cost and funding aggregates, as
            stored, the clock slot unpacked (last accrual time, borrow
            index and borrow rate).
    """
    st: positions.MarketState = positions._state[market_id]
    return positions.MarketStateView(
        long_oi=st.long_oi,
        short_oi=st.short_oi,
        long_cost=st.long_cost,
        short_cost=st.short_cost,
        sum_size_index=st.sum_size_index,
        funding_index=st.funding_index,
        last_funding_time=st.clock & positions.MASK64,
        borrow_index=convert(st.clock >> 128, int256),
        borrow_rate=(st.clock >> 64) & positions.MASK64,
    )


@external
@view
def open_interest(market_id: uint256) -> (uint256, uint256):
    """
    @notice (long, short) open interest, in size units.
    """
    return (positions._state[market_id].long_oi, positions._state[market_id].short_oi)


@external
@view
def funding_rate(market_id: uint256) -> int256:
    """
    @notice The current per-second funding rate (1e18), from the stored skew.
    """
    p: positions.MarketParams = positions._market_params(market_id)
    return funding.rate(positions._state[market_id].long_oi, positions._state[market_id].short_oi, p.funding_k, p.max_funding_rate)


@external
@view
def funding_owed(account: address, market_id: uint256) -> int256:
    """
    @notice Funding and borrowing fee the position would settle now, at
            the latest answer (negative: it would receive).
    """
    pos: positions.Position = positions._load(account, market_id)
    idx: int256 = positions._pending_index(market_id, positions._price(market_id, False), pos.size)
    return funding.owed(pos.size, idx, pos.funding_index, positions.SCALE)


@external
@view
def equity(account: address, market_id: uint256) -> int256:
    """
    @notice margin + upnl - funding owed, at the latest answer (no age check).
    """
    pos: positions.Position = positions._load(account, market_id)
    if pos.size == 0:
        return 0
    price: uint256 = positions._price(market_id, False)
    return positions._equity(pos, market_id, price)


@external
@view
def is_liquidatable(account: address, market_id: uint256) -> bool:
    """
    @notice Whether `liquidate` would accept the position at the latest
            answer (it also needs that answer to be fresh).
    """
    pos: positions.Position = positions._load(account, market_id)
    if pos.size == 0:
        return False
    price: uint256 = positions._price(market_id, False)
    return positions._equity(pos, market_id, price) < convert(
        margin.requirement(pos.size, price, positions._mmf(market_id), positions.SCALE), int256
    )


@external
@view
def liquidation_price(account: address, market_id: uint256) -> uint256:
    """
    @notice Price at which equity meets maintenance (funding owed included,
            fees excluded). Long rounds up, short rounds down.
    """
    pos: positions.Position = positions._load(account, market_id)
    if pos.size == 0:
        return 0
    eff: int256 = positions._effective_margin(pos, market_id, positions._price(market_id, False))
    return margin.liquidation_price(pos.size, pos.entry_price, eff, positions._mmf(market_id), positions.SCALE)


@external
@view
def bankruptcy_price(account: address, market_id: uint256) -> uint256:
    """
    @notice Price at which equity is zero (funding owed included).
    """
    pos: positions.Position = positions._load(account, market_id)
    if pos.size == 0:
        return 0
    eff: int256 = positions._effective_margin(pos, market_id, positions._price(market_id, False))
    return margin.bankruptcy_price(pos.size, pos.entry_price, eff, positions.SCALE)


@external
@view
def adl_score(account: address, market_id: uint256) -> uint256:
    """
    @notice (upnl / margin) * (notional / (margin + upnl)) at the latest
            answer, 1e18 fixed point; 0 when not in profit.
    """
    pos: positions.Position = positions._load(account, market_id)
    if pos.size == 0:
        return 0
    price: uint256 = positions._price(market_id, False)
    return margin.adl_score(
        margin.upnl(pos.size, pos.entry_price, price, positions.SCALE), pos.margin, margin.notional_down(pos.size, price, positions.SCALE)
    )


@external
@view
def adl_ranking(account: address, market_id: uint256) -> DynArray[address, positions.MAX_ADL_TARGETS]:
    """
    @notice The first positions.MAX_ADL_TARGETS profitable positions opposite to
            `account`'s, in the order `liquidate` requires: score
            descending, ties by lower address. The keeper uses the model's
            twin of this (model.perp_engine.adl_ranking).
    """
    pos: positions.Position = positions._load(account, market_id)
    if pos.size == 0:
        return []
    return adl._ranking(market_id, pos.size, positions._price(market_id, False))


@external
@view
def adl_pending(market_id: uint256, index: uint256 = 0) -> positions.AdlPending:
    """
    @notice The market's pending ADL jobs, oldest (the one `deleverage`
            continues) at index 0; empty past the last.
    """
    return positions._adl_jobs[market_id][index]


@external
@view
def position_count(market_id: uint256, is_long: bool) -> uint256:
    """
    @notice Number of open positions on one side of a market.
    """
    return positions._member_count[market_id * 2 + convert(not is_long, uint256)]


@external
@view
def position_at(market_id: uint256, is_long: bool, index: uint256) -> address:
    """
    @notice The account at `index` of a side's open-position set.
    """
    return positions._members[market_id * 2 + convert(not is_long, uint256)][index]


@external
@view
def traders_claim() -> int256:
    """
    @notice What all traders together would receive from the vault if every
            position closed now at the latest answers: net unrealised PnL
            minus funding owed, from the aggregates, rounded up. It counts
            losers' losses in full (even beyond their margin): the vault
            values deposits with it, never redemptions (docs/solvency.md).
    """
    claim: int256 = 0
    gain: uint256 = 0
    past: bool = False
    claim, gain, past = self._valuation([])
    return claim


@external
@view
def traders_gain() -> uint256:
    """
    @notice What winners could claim now, counting no loss as an asset: per
            market, the long side's and the short side's unrealised profit,
            each floored at zero, plus net funding owed to traders; each
            rounded up; at most traders_reserve (no position is paid beyond
            its cap). The vault values redemptions with it.
    """
    claim: int256 = 0
    gain: uint256 = 0
    past: bool = False
    claim, gain, past = self._valuation([])
    return min(gain, positions._reserve())


@external
@view
def valuation_at(prices: DynArray[uint256, positions.MAX_MARKETS]) -> (int256, uint256, bool):
    """
    @notice (traders_claim, traders_gain, past_cap) with market i valued at
            prices[i] (1e18) instead of its latest answer (markets past the
            list at their latest answer), funding pending to now at that
            price. past_cap: some market side's price gain exceeds its side's
            reserve (ceil(max_profit * side cost / (1e18 * SCALE))), the
            state in which zero-PnL positions would move the reserve-capped
            valuations (decision 94). The vault prices an epoch at the first
            round later than its last request with it (docs/lp-epochs.md),
            and waits while past_cap.
    """
    claim: int256 = 0
    gain: uint256 = 0
    past: bool = False
    claim, gain, past = self._valuation(prices)
    return (claim, min(gain, positions._reserve()), past)


@external
@view
def first_round_after(market_id: uint256, t: uint256) -> (uint256, uint256):
    """
    @notice (price in 1e18, updatedAt) of the first round later than `t` on
            the feed the market prices from now (oracle_round's choice:
            the primary, or the fallback while the primary is down and its
            latest round is within MAX_FEED_JUMP of its previous one), found
            by walking back with getRoundData from its latest round, at most
            MAX_ROUND_WALK rounds, within the latest round's phase (round id
            phaseId << 64 | aggregatorRoundId). The walk stops at the first
            round not later than `t`, and also at the walk's bound, at the
            phase's first round, or at a round that is missing or unsound
            (reverts, answer out of bounds, incomplete): then the earliest
            sound round found later than `t` is used. (0, 0) when the latest
            round is unsound or not later than `t`. Reverts only "market:
            unknown".
    """
    positions._check_market(market_id)
    s0: uint256 = positions._packed[market_id][0]  # feed | max_price_age | feed_scale
    bounds: uint256 = positions._oracle[market_id][0]
    o1: uint256 = positions._oracle[market_id][1]  # fallback | fallback_scale | heartbeat
    feed: address = convert(s0 & positions.MASK160, address)
    scale: uint256 = s0 >> 192
    rid: uint256 = 0
    price: uint256 = 0
    updated: uint256 = 0
    rid, price, updated = self._round_data(feed, method_id("latestRoundData()"), scale, bounds)
    fallback: address = convert(o1 & positions.MASK160, address)
    if positions._down(price, updated, o1 >> 224) and fallback != empty(address):
        # positions._oracle_round's choice
        f_scale: uint256 = (o1 >> 160) & positions.MASK64
        f_rid: uint256 = 0
        f_price: uint256 = 0
        f_updated: uint256 = 0
        f_rid, f_price, f_updated = self._round_data(fallback, method_id("latestRoundData()"), f_scale, bounds)
        # the same rule: the fallback's latest round within MAX_FEED_JUMP of
        # the previous one in its phase (positions._feed_round's history)
        f_price, f_updated = positions._feed_round(fallback, f_scale, bounds, True)
        if f_price != 0 and (price == 0 or f_updated > updated):
            feed = fallback
            scale = f_scale
            rid = f_rid
            price = f_price
            updated = f_updated
    if price == 0 or updated <= t:
        return (0, 0)
    for i: uint256 in range(MAX_ROUND_WALK):
        if rid & positions.MASK64 <= 1:
            break  # the phase's first round: no earlier round in this phase
        rid -= 1
        p_price: uint256 = 0
        p_updated: uint256 = 0
        call: Bytes[36] = concat(method_id("getRoundData(uint80)"), convert(rid, bytes32))
        _unused: uint256 = 0
        _unused, p_price, p_updated = self._round_data(feed, call, scale, bounds)
        if p_price == 0 or p_updated <= t:
            break
        price = p_price
        updated = p_updated
    return (price, updated)


@external
@view
def oracle_params(market_id: uint256) -> positions.OracleParams:
    """
    @notice The market's price bounds, heartbeat and fallback feed.
    """
    positions._check_market(market_id)
    return positions._oracle_params(market_id)


@external
@view
def oracle_round(market_id: uint256) -> (uint256, uint256, uint256):
    """
    @notice (price in 1e18, updatedAt, maximum age) of the round the market
            prices from: the primary feed, or the fallback while the primary
            is down; price 0 when no feed gives a sound round. Reverts only
            "market: unknown". The vault's settle reads it.
    """
    positions._check_market(market_id)
    return positions._oracle_round(market_id)


@external
@view
def sequencer_status() -> uint256:
    """
    @notice 0 when fresh prices are allowed (no sequencer-uptime feed, or up
            past the grace period), 1 while the sequencer is down, 2 during
            the grace period after it comes back up.
    """
    return positions._sequencer_status()


@external
@view
def traders_reserve() -> uint256:
    """
    @notice The most every open position together could take from the vault
            at any price and any time: the sum of their payout caps,
            ceil(max_profit * total_cost / (1e18 * SCALE)). Needs no price,
            so it never reverts. Opening or increasing risk reverts
            "vault: capacity" when the vault's cash would fall below it, and
            LP withdrawals cannot take the vault's cash below it.
    """
    return positions._reserve()


@internal
@view
def _round_data(feed: address, call: Bytes[36], scale: uint256, bounds: uint256) -> (uint256, uint256, uint256):
    """
    @notice (round id, price in 1e18, updatedAt) of the round `call`
            (latestRoundData or getRoundData) returns; price 0 when it is
            unsound, by positions._feed_round's rules (a revert, a short
            answer, an answer <= 0 or out of bounds, no or a future
            timestamp, an incomplete round).
    """
    ok: bool = False
    response: Bytes[160] = b""
    ok, response = raw_call(feed, call, max_outsize=160, is_static_call=True, revert_on_failure=False)
    if not ok or len(response) < 160:
        return (0, 0, 0)
    round_id: uint256 = 0
    answer: int256 = 0
    started: uint256 = 0
    updated: uint256 = 0
    answered: uint256 = 0
    round_id, answer, started, updated, answered = abi_decode(response, (uint256, int256, uint256, uint256, uint256))
    if answer <= 0 or answer >= convert(positions.MAX_PRICE, int256):
        return (round_id, 0, 0)
    if updated == 0 or answered < round_id or updated > block.timestamp:
        return (round_id, 0, 0)
    price: uint256 = convert(answer, uint256) * scale
    if price < bounds & positions.MASK or price > bounds >> 128:
        return (round_id, 0, 0)
    return (round_id, price, updated)


@internal
@view
def _valuation(prices: DynArray[uint256, positions.MAX_MARKETS]) -> (int256, uint256, bool):
    """
    @notice (net claim, gain, past_cap) with market i at prices[i] where
            given, else at its latest answer. past_cap: some side's price
            gain, rounded up, exceeds its side's reserve, rounded up
            (decision 94).
    """
    claim: int256 = 0
    gain: int256 = 0
    past: bool = False
    mp: uint256 = positions.max_profit
    scale: int256 = convert(positions.SCALE, int256)
    for mid: uint256 in range(positions.MAX_MARKETS):
        if mid >= positions.market_count:
            break
        price: int256 = 0
        if mid < len(prices):
            price = convert(prices[mid], int256)
        else:
            price = convert(positions._price(mid, False), int256)
        st: positions.MarketState = positions._state[mid]
        idx: int256 = 0
        borrow: int256 = 0
        idx, borrow = positions._indices(mid, convert(price, uint256))
        long_pnl: int256 = price * convert(st.long_oi, int256) - convert(st.long_cost, int256)
        short_pnl: int256 = convert(st.short_cost, int256) - price * convert(st.short_oi, int256)
        # longs settle against idx + borrow, shorts against idx - borrow
        owed: int256 = idx * (convert(st.long_oi, int256) - convert(st.short_oi, int256)) + borrow * convert(st.long_oi + st.short_oi, int256) - st.sum_size_index
        claim += fp.div_ceil(long_pnl + short_pnl - owed, scale)
        long_gain: int256 = fp.div_ceil(long_pnl, scale)
        short_gain: int256 = fp.div_ceil(short_pnl, scale)
        gain += max(long_gain, 0) + max(short_gain, 0) + max(fp.div_ceil(-owed, scale), 0)
        # each side against its own reserve: a side's positions can only be paid its caps
        if long_gain > convert(fp.mul_div_up(mp, st.long_cost, positions.WAD * positions.SCALE), int256):
            past = True
        if short_gain > convert(fp.mul_div_up(mp, st.short_cost, positions.WAD * positions.SCALE), int256):
            past = True
    return (claim, convert(gain, uint256), past)


# ---------------------------------------------------------------- internal: markets

