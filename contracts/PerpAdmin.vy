# pragma version 0.4.3
"""
@title PerpAdmin
@notice The verbs of PerpEngine that read no price: the owner's and the
        pauser's (wiring, markets and their parameters, the engine-wide
        settings, the pauser, pause, the two-step ownership transfer) and
        the trader's order book (`request_order`, `cancel_order`) and
        `set_tp_sl`. It runs only by delegatecall
        from PerpEngine, on PerpEngine's storage (same modules initialized
        in the same order), under PerpEngine's reentrancy lock, so its
        events are emitted by the engine's address. It exists because the
        engine alone would not fit EIP-170 (docs/architecture.md).
        model/perp_engine.py mirrors every function.
@custom:security Called directly, every function reverts
        "admin: delegatecall only": its own storage is never used. Every
        verb checks its caller itself (ownable._check_owner, or the pauser).
"""

from ethereum.ercs import IERC20
from snekmate.auth import ownable
from snekmate.auth import ownable_2step
from snekmate.utils import pausable

import margin
import positions
import adl
from interfaces import ILiquidityVault
from interfaces import IInsuranceFund

initializes: ownable
initializes: ownable_2step[ownable := ownable]
initializes: pausable
initializes: positions
initializes: adl[positions := positions]

SELF: immutable(address)


@deploy
def __init__(collateral: IERC20):
    """
    @notice Deploy with the same collateral as the engine that will use it
            (immutables live in code, so they must match).
    """
    ownable.__init__()
    ownable_2step.__init__()
    pausable.__init__()
    positions.__init__(collateral)
    SELF = self


@internal
@view
def _only_delegated():
    assert self != SELF, "admin: delegatecall only"


# ---------------------------------------------------------------- orders: request and cancel (no price read)


@external
def request_order(market_id: uint256, size_delta: int256, margin_delta: int256, acceptable_price: uint256) -> uint256:
    """
    @notice Request a trade, executed later by anyone at a price published
            after this block (see execute_order). One order at a time per
            account and market (`order: pending`): while it waits, nothing
            the account can do changes how it executes. Escrows from free
            collateral the execution fee and, for an open or increase, the
            margin moving in and the trading fee at `acceptable_price`.
    @param size_delta Signed size. Against the current position it is a
            reduce (executed as a full close when larger than what is left
            at execution); otherwise an open or increase. 0 with a negative
            `margin_delta` is a margin removal.
    @param margin_delta > 0 margin in (opens and increases only); < 0 margin
            out (with size_delta 0 only); 0 otherwise.
    @param acceptable_price A buy (long open, short close) is cancelled above
            it, a sell below it.
    @return The order id (from 1).
    """
    self._only_delegated()
    positions._check_market(market_id)
    assert positions._pending_id(msg.sender, market_id) == 0, "order: pending"
    assert size_delta > -positions.MAX_SIZE and size_delta < positions.MAX_SIZE, "position: size too large"
    assert margin_delta > -positions.MAX_ORDER_MARGIN and margin_delta < positions.MAX_ORDER_MARGIN, "order: margin too large"
    assert acceptable_price < positions.MAX_PRICE, "order: price too large"
    # 2**35 s is the year 3058: a bound the packing needs, never a revert.
    assert block.timestamp < positions.MAX_ORDER_TIME, "order: clock"
    size: int256 = positions._load(msg.sender, market_id).size
    reduce: bool = size != 0 and size_delta != 0 and (size_delta > 0) != (size > 0)
    if size_delta == 0:
        assert margin_delta < 0, "position: zero size"
        assert size != 0, "position: none"
        pausable._require_not_paused()
    elif reduce:
        assert margin_delta == 0, "order: margin on reduce"
    else:
        assert margin_delta >= 0, "order: margin out on increase"
        pausable._require_not_paused()
    s: uint256[5] = positions._packed[market_id]
    o: positions.Order = positions.Order(
        account=msg.sender,
        market_id=market_id,
        size_delta=size_delta,
        margin_delta=margin_delta,
        acceptable_price=acceptable_price,
        requested_at=block.timestamp,
        reduce_only=reduce,
        trading_fee=(s[1] >> 128) & positions.MASK64,
        execution_fee=s[4],
        escrow=0,
        expires_at=block.timestamp + positions.order_expiry,
    )
    escrow: uint256 = positions._escrow(o)
    free: uint256 = positions._free[msg.sender]
    assert escrow <= free, "collateral: insufficient"
    positions._free[msg.sender] = free - escrow
    order_id: uint256 = positions.order_count + 1
    positions.order_count = order_id
    positions._store_order(order_id, o)
    positions._pending[msg.sender][market_id] = order_id | (o.expires_at << 128)
    log positions.OrderRequested(
        order_id=order_id,
        account=msg.sender,
        market_id=market_id,
        size_delta=size_delta,
        margin_delta=margin_delta,
        acceptable_price=acceptable_price,
    )
    return order_id




@external
def cancel_order(order_id: uint256):
    """
    @notice The account's own cancel, once the order has expired unexecuted:
            the whole escrow, execution fee included, goes back to free
            collateral. A pending order cannot be cancelled earlier: that
            would let the requester wait for the next price and back out.
    """
    self._only_delegated()
    o: positions.Order = positions._load_order(order_id)
    assert o.account != empty(address), "order: unknown"
    assert o.account == msg.sender, "order: not yours"
    assert block.timestamp > o.expires_at, "order: not expired"
    positions._orders[order_id] = empty(uint256[3])
    positions._free[o.account] += o.escrow
    log positions.OrderCancelled(order_id=order_id, reason="order: expired")


# ---------------------------------------------------------------- ownership


@external
def transfer_ownership(new_owner: address):
    """
    @notice Start a two-step ownership transfer (snekmate ownable_2step).
    """
    self._only_delegated()
    ownable._check_owner()
    ownable_2step.pending_owner = new_owner
    log ownable_2step.OwnershipTransferStarted(previous_owner=ownable.owner, new_owner=new_owner)


@external
def accept_ownership():
    """
    @notice Complete a two-step ownership transfer; only the pending owner.
    """
    self._only_delegated()
    assert ownable_2step.pending_owner == msg.sender, "ownable_2step: caller is not the new owner"
    ownable_2step._transfer_ownership(msg.sender)


# ---------------------------------------------------------------- wiring and markets


@external
def initialize(vault: address, insurance_fund: address):
    """
    @notice Wire the liquidity vault and the insurance fund, once.
    """
    self._only_delegated()
    ownable._check_owner()
    assert positions.vault.address == empty(address), "engine: initialized"
    assert vault != empty(address) and insurance_fund != empty(address), "engine: zero address"
    positions.vault = ILiquidityVault(vault)
    positions.insurance_fund = IInsuranceFund(insurance_fund)


@external
def add_market(params: positions.MarketParams) -> uint256:
    """
    @notice Add a market; ids run from 0 in the order markets were added.
    """
    self._only_delegated()
    ownable._check_owner()
    mid: uint256 = positions.market_count
    assert mid < positions.MAX_MARKETS, "params: too many markets"
    positions._set_params(mid, params)
    positions._state[mid].clock = block.timestamp  # borrow rate and index 0
    positions.market_count = mid + 1
    log positions.MarketAdded(market_id=mid, feed=params.feed)
    return mid


@external
def set_market_params(market_id: uint256, params: positions.MarketParams):
    """
    @notice Change a market's parameters, within bounds. A higher mmf
            ramps in from the one in force at most 1 bp of notional an hour
            (positions._ramp_mmf); a lower one applies at once. Funding accrues
            first, under the old funding parameters, at the price of the
            feed the market will use: a feed that broke (answers 0, an
            incomplete round) can be replaced, since only the new one is read.
    """
    self._only_delegated()
    ownable._check_owner()
    positions._check_market(market_id)
    old_mmf: uint256 = positions._mmf(market_id)  # in force now, mid-ramp included
    funding_word: uint256 = positions._packed[market_id][2]  # old funding_k, max_funding_rate
    positions._set_params(market_id, params)
    positions._ramp_mmf(market_id, old_mmf)
    new_word: uint256 = positions._packed[market_id][2]
    positions._packed[market_id][2] = funding_word
    positions._accrue(market_id, positions._price(market_id, False), 0)
    positions._packed[market_id][2] = new_word


@external
def set_borrow_rate(market_id: uint256, rate: uint256):
    """
    @notice A market's borrowing fee, per second (1e18 = 100% of notional
            at the oracle price), paid by longs and shorts alike to the
            vault for the capacity their payout caps hold (decision 96);
            at most MAX_BORROW_RATE. Both indices accrue first, at the old
            rate.
    """
    self._only_delegated()
    ownable._check_owner()
    positions._check_market(market_id)
    assert rate <= positions.MAX_BORROW_RATE, "params: borrow rate"
    positions._accrue(market_id, positions._price(market_id, False), 0)
    clock: uint256 = positions._state[market_id].clock
    positions._state[market_id].clock = (clock & positions.MASK64) | (rate << 64) | ((clock >> 128) << 128)
    log positions.BorrowRateSet(market_id=market_id, rate=rate)


# ---------------------------------------------------------------- engine-wide settings


@external
def set_oracle(market_id: uint256, oracle: positions.OracleParams):
    """
    @notice A market's price bounds (1e18, inclusive), its primary feed's
            heartbeat (below max_price_age: the age limit leaves a buffer)
            and its fallback feed (empty: none) with the fallback's maximum
            age; see positions._set_oracle and docs/trust.md "Oracles".
    """
    self._only_delegated()
    ownable._check_owner()
    positions._check_market(market_id)
    positions._set_oracle(market_id, oracle)


@external
def set_sequencer_feed(feed: address, grace: uint256):
    """
    @notice The network's L2 sequencer-uptime feed (empty: none) and the
            grace period after the sequencer comes back up during which
            fresh prices are refused.
    """
    self._only_delegated()
    ownable._check_owner()
    positions._set_sequencer_feed(feed, grace)


@external
def set_order_expiry(expiry: uint256):
    """
    @notice How long an order may wait for a later price before it can only
            be cancelled (bounded). Applies to orders requested afterwards:
            a pending order keeps the deadline it was given.
    """
    self._only_delegated()
    ownable._check_owner()
    assert expiry >= positions.MIN_ORDER_EXPIRY and expiry <= positions.MAX_ORDER_EXPIRY, "params: order expiry"
    positions.order_expiry = expiry
    log positions.OrderExpirySet(expiry=expiry)


@external
def set_max_profit(max_profit: uint256):
    """
    @notice The payout cap, a fraction (1e18) of each position's entry
            notional, bounded to [25%, 1000%]. Applies to every open position;
            raising it raises the vault's reserve and reverts
            "vault: capacity" when the vault's cash would not cover it.
    """
    self._only_delegated()
    ownable._check_owner()
    assert max_profit >= positions.MIN_MAX_PROFIT and max_profit <= positions.MAX_MAX_PROFIT, "params: max profit"
    positions.max_profit = max_profit
    positions._check_capacity()
    log positions.MaxProfitSet(max_profit=max_profit)


@external
def set_keeper_reward(min_keeper_reward: uint256, min_notional: uint256):
    """
    @notice The least every liquidation and deleverage pays its caller (at
            most 100 whole tokens), and the least entry notional of a
            position; every market's trading fee on min_notional must pay
            at least the reward. New positions only: an open position below
            a raised min_notional stays until it is reduced or closed.
    """
    self._only_delegated()
    ownable._check_owner()
    assert min_keeper_reward <= positions.MAX_KEEPER_REWARD_TOKENS * (10**36 // positions.SCALE), "params: keeper reward"
    assert min_notional < positions.MAX_AMOUNT, "params: min notional"
    for mid: uint256 in range(positions.MAX_MARKETS):
        if mid >= positions.market_count:
            break
        fee: uint256 = (positions._packed[mid][1] >> 128) & positions.MASK64
        assert fee * min_notional >= min_keeper_reward * positions.WAD, "params: trading fee below reward"
    positions.min_keeper_reward = min_keeper_reward
    positions.min_notional = min_notional
    log positions.KeeperRewardSet(min_keeper_reward=min_keeper_reward, min_notional=min_notional)


# ---------------------------------------------------------------- pauser


@external
def set_pauser(pauser: address):
    """
    @notice Name the account that may pause and unpause new risk.
    """
    self._only_delegated()
    ownable._check_owner()
    positions.pauser = pauser
    log positions.PauserSet(pauser=pauser)


@external
def pause():
    """
    @notice Stop opening and adding risk. Closing, margin adds, withdrawals,
            liquidation, ADL and TP/SL keep working.
    """
    self._only_delegated()
    assert msg.sender == positions.pauser or msg.sender == ownable.owner, "engine: not pauser"
    pausable._pause()


@external
def unpause():
    """
    @notice Resume opening and adding risk.
    """
    self._only_delegated()
    assert msg.sender == positions.pauser or msg.sender == ownable.owner, "engine: not pauser"
    pausable._unpause()


@external
def set_tp_sl(market_id: uint256, take_profit_price: uint256, stop_loss_price: uint256):
    """
    @notice Set (or clear with 0) the take-profit and stop-loss prices (a
            trader's verb, here rather than in PerpExits for EIP-170 room).
            A long's TP must be above entry and its SL below entry and above
            the liquidation price; mirrored for a short.
    """
    self._only_delegated()
    positions._check_market(market_id)
    old: positions.Position = positions._load(msg.sender, market_id)
    assert old.size != 0, "position: none"
    assert positions._pending_id(msg.sender, market_id) == 0, "order: pending"
    if old.take_profit != 0 or old.stop_loss != 0:
        # A trigger that a round after its setting has crossed belongs to
        # the keeper: re-setting it would let the account keep the exit only
        # when the next move goes its way.
        price: uint256 = 0
        updated: uint256 = 0
        price, updated = positions._round(market_id, False)
        assert not (positions._tp_sl_hit(old, price) and updated > positions._tp_sl_at[msg.sender][market_id]), "tp_sl: triggered"
    assert take_profit_price < positions.MAX_PRICE and stop_loss_price < positions.MAX_PRICE, "tp_sl: price too large"
    liq: uint256 = margin.liquidation_price(
        old.size, old.entry_price, convert(old.margin, int256), positions._mmf(market_id), positions.SCALE
    )
    if old.size > 0:
        assert take_profit_price == 0 or take_profit_price > old.entry_price, "tp_sl: take profit on wrong side"
        assert stop_loss_price == 0 or stop_loss_price < old.entry_price, "tp_sl: stop loss on wrong side"
        assert stop_loss_price == 0 or stop_loss_price > liq, "tp_sl: stop beyond liquidation"
    else:
        assert take_profit_price == 0 or take_profit_price < old.entry_price, "tp_sl: take profit on wrong side"
        assert stop_loss_price == 0 or stop_loss_price > old.entry_price, "tp_sl: stop loss on wrong side"
        assert stop_loss_price == 0 or stop_loss_price < liq, "tp_sl: stop beyond liquidation"
    positions._pos_c[msg.sender][market_id] = take_profit_price | (stop_loss_price << 128)
    positions._tp_sl_at[msg.sender][market_id] = block.timestamp
    log positions.TpSlSet(account=msg.sender, market_id=market_id, take_profit=take_profit_price, stop_loss=stop_loss_price)
