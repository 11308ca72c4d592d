# pragma version 0.4.3
"""
@title PerpOrders
@notice The execution half of every trading verb that adds risk or
        realises PnL: `execute_order` (anyone) applies a requested order at
        the market's price from a round published after the request. Opens,
        increases, reduces, closes and margin removals all execute here
        (docs/architecture.md, "Orders"); `request_order` and `cancel_order`,
        which read no price, live in PerpAdmin (EIP-170: this facet had no
        room left for the oracle's checks). It runs only by delegatecall from
        PerpEngine, on PerpEngine's storage (same modules initialized in the
        same order), under PerpEngine's reentrancy lock.
        model/perp_orders.py mirrors every function.
@custom:security Called directly, every function reverts
        "orders: delegatecall only". `execute_order` applies the order in a
        call to the engine's own `execute_order_inner` so that a failed check
        cancels the order instead of reverting: only a revert that carries a
        reason string cancels; any other failure (out of gas, a call that
        failed without data) reverts the whole execution and the order stays
        pending, so an executor cannot cancel an order by starving it of gas.
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

SELF: immutable(address)

# Error(string) with a reason of up to 64 bytes: 4 + 32 + 32 + 64.
MAX_REVERT: constant(uint256) = 132


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
    assert self != SELF, "orders: delegatecall only"


# ---------------------------------------------------------------- execute


@external
def execute_order(order_id: uint256):
    """
    @notice Permissionless. Apply a pending order at the market's latest
            price, which must be fresh and from a round whose updatedAt is
            later than the request. Reverts (the order stays pending) on an
            unknown or expired order, a stale or broken feed, or no later
            round yet. Any check of the trade itself that fails cancels the
            order instead: `OrderCancelled(order_id, reason)` with the reason
            the check reverts with, the escrow refunded less the execution
            fee. Either way the caller earns the execution fee.
    """
    self._only_delegated()
    o: positions.Order = positions._load_order(order_id)
    assert o.account != empty(address), "order: unknown"
    assert block.timestamp <= o.expires_at, "order: expired"
    price: uint256 = 0
    updated: uint256 = 0
    price, updated = positions._round(o.market_id, True)
    assert updated > o.requested_at, "order: no later price"

    ok: bool = False
    response: Bytes[MAX_REVERT] = b""
    ok, response = raw_call(
        self,
        abi_encode(order_id, msg.sender, price, method_id=method_id("execute_order_inner(uint256,address,uint256)")),
        max_outsize=MAX_REVERT,
        revert_on_failure=False,
    )
    if ok:
        log positions.OrderExecuted(order_id=order_id, price=price)
        return
    # Only a reason string cancels; anything else is not the order's fault.
    if len(response) < 68 or slice(response, 0, 4) != method_id("Error(string)"):
        raw_revert(response)
    reason: String[64] = abi_decode(slice(response, 4, len(response) - 4), String[64])
    positions._orders[order_id] = empty(uint256[3])
    positions._free[o.account] += o.escrow - o.execution_fee
    positions._free[msg.sender] += o.execution_fee
    log positions.OrderCancelled(order_id=order_id, reason=reason)


@external
def execute_order_inner(order_id: uint256, executor: address, price: uint256):
    """
    @notice execute_order's second half, callable only by the engine itself
            (from execute_order): apply the order at `price` or revert with
            the reason that cancels it.
    """
    self._only_delegated()
    assert msg.sender == self, "orders: internal"
    o: positions.Order = positions._load_order(order_id)
    positions._orders[order_id] = empty(uint256[3])
    p: positions.MarketParams = positions._market_params(o.market_id)
    p.trading_fee = o.trading_fee  # the order's terms are fixed at request
    if o.size_delta == 0:
        self._remove_margin(o, price, p)
    elif o.reduce_only:
        self._reduce(o, price, p)
    else:
        self._open(o, price, p)
    positions._free[executor] += o.execution_fee


# ---------------------------------------------------------------- internal


@internal
def _open(o: positions.Order, price: uint256, p: positions.MarketParams):
    """
    @notice Open or increase. The trading fee comes out of the escrow first;
            the margin moved in is what is left of the rest, up to
            margin_delta (a sell executed above its acceptable price pays a
            fee above the escrowed one out of its margin), and the remainder
            is refunded.
    """
    pausable._require_not_paused()
    account: address = o.account
    mid: uint256 = o.market_id
    size_delta: int256 = o.size_delta
    if size_delta > 0:
        assert price <= o.acceptable_price, "position: price above acceptable"
    else:
        assert price >= o.acceptable_price, "position: price below acceptable"
    fee: uint256 = margin.requirement(size_delta, price, p.trading_fee, positions.SCALE)
    pool: uint256 = o.escrow - o.execution_fee
    assert fee <= pool, "collateral: insufficient"
    margin_in: uint256 = min(convert(o.margin_delta, uint256), pool - fee)

    # An account whose bankruptcy is still being deleveraged in this market
    # cannot take new risk there: it could become a target of its own debt.
    old: positions.Position = positions._load(account, mid)
    adl._check_not_bankrupt(account, mid, old)
    idx: int256 = positions._accrue(mid, price, size_delta)
    new: positions.Position = old
    owed: int256 = 0
    if old.size == 0:
        new.entry_price = price
    else:
        assert (old.size > 0) == (size_delta > 0), "position: opposite direction"
        owed = funding.owed(old.size, idx, old.funding_index, positions.SCALE)
        eff: int256 = convert(old.margin, int256) - owed
        assert eff >= 0, "position: funding exceeds margin"
        new.margin = convert(eff, uint256)
        new.entry_price = positions._average_entry(old.size, old.entry_price, size_delta, price)
    new.size = old.size + size_delta
    assert new.size > -positions.MAX_SIZE and new.size < positions.MAX_SIZE, "position: size too large"
    new.margin += margin_in
    new.funding_index = idx
    assert new.margin >= p.min_margin, "position: margin below minimum"
    assert margin.notional_down(new.size, new.entry_price, positions.SCALE) >= positions.min_notional, "position: notional below minimum"
    if size_delta > 0:
        assert positions._state[mid].long_oi + convert(size_delta, uint256) <= p.max_open_interest, "market: open interest cap"
    else:
        assert positions._state[mid].short_oi + convert(-size_delta, uint256) <= p.max_open_interest, "market: open interest cap"
    equity: int256 = convert(new.margin, int256) + margin.upnl(new.size, new.entry_price, price, positions.SCALE)
    assert equity >= convert(margin.requirement(new.size, price, p.imf, positions.SCALE), int256), "margin: below initial"

    positions._free[account] += pool - fee - margin_in
    positions._write(account, mid, old, new)
    fund_fee: uint256 = fp.mul_div_down(fee, p.insurance_share, positions.WAD)
    positions._settle(owed + convert(fee - fund_fee, int256), fund_fee)
    positions._check_capacity()
    log positions.PositionOpened(
        account=account,
        market_id=mid,
        size_delta=size_delta,
        price=price,
        margin_added=margin_in,
        fee=fee,
        funding_paid=owed,
        size=new.size,
        entry_price=new.entry_price,
    )


@internal
def _reduce(o: positions.Order, price: uint256, p: positions.MarketParams):
    """
    @notice Reduce toward zero; a reduce larger than what is left of the
            position (after ADL, TP/SL or liquidation) closes it in full.
            Works while paused.
    """
    old: positions.Position = positions._load(o.account, o.market_id)
    assert old.size != 0 and (old.size > 0) != (o.size_delta > 0), "position: none"
    if old.size > 0:
        assert price >= o.acceptable_price, "position: price below acceptable"
    else:
        assert price <= o.acceptable_price, "position: price above acceptable"
    closed: int256 = -o.size_delta
    if abs(closed) >= abs(old.size):
        closed = old.size
    idx: int256 = positions._accrue(o.market_id, price, old.size)
    payout: uint256 = positions._reduce(o.account, o.market_id, old, closed, price, idx, p, empty(address))
    # The escape pays (adl._escape): a profitable opposite position closing
    # while ADL jobs are pending pays its share of each first.
    adl._escape(o.account, o.market_id, old, closed, payout)


@internal
def _remove_margin(o: positions.Order, price: uint256, p: positions.MarketParams):
    """
    @notice Move margin back to free collateral while the initial-margin
            check still holds; unrealised profit does not count toward it.
    """
    pausable._require_not_paused()
    account: address = o.account
    mid: uint256 = o.market_id
    amount: uint256 = convert(-o.margin_delta, uint256)
    old: positions.Position = positions._load(account, mid)
    assert old.size != 0, "position: none"
    idx: int256 = positions._accrue(mid, price, old.size)
    owed: int256 = funding.owed(old.size, idx, old.funding_index, positions.SCALE)
    new: positions.Position = old
    new.funding_index = idx
    if owed < 0:
        # Funding received stays accrued (the index is kept): the vault pays
        # it only at a close, under the payout cap (docs/solvency.md).
        owed = 0
        new.funding_index = old.funding_index
    left: int256 = convert(old.margin, int256) - owed - convert(amount, int256)
    assert left >= convert(p.min_margin, int256), "margin: insufficient"
    pnl: int256 = min(margin.upnl(old.size, old.entry_price, price, positions.SCALE), 0)
    assert left + pnl >= convert(margin.requirement(old.size, price, p.imf, positions.SCALE), int256), "margin: below initial"
    new.margin = convert(left, uint256)
    positions._free[account] += amount
    positions._write(account, mid, old, new)
    positions._settle(owed, 0)
    log positions.MarginChanged(account=account, market_id=mid, delta=-convert(amount, int256), funding_paid=owed)
