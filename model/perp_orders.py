"""Mirror of two-step orders: the request and the cancellation of expired
orders (contracts/PerpAdmin.vy, the verbs that read no price) and the
execution at a later price round (contracts/PerpOrders.vy). Each function
names the one it replicates."""

from dataclasses import replace

from model import adl, funding, margin
from model import positions as P
from model.fixed_point import Revert, WAD, check, mul_div_down

ZERO = "0x" + "00" * 20


def request_order(w, mid, size_delta, margin_delta, acceptable_price):
    """PerpAdmin.request_order"""
    P._check_market(w, mid)
    check(P._pending_id(w, w.sender, mid) == 0, "order: pending")
    check(-P.MAX_SIZE < size_delta < P.MAX_SIZE, "position: size too large")
    check(-P.MAX_ORDER_MARGIN < margin_delta < P.MAX_ORDER_MARGIN, "order: margin too large")
    check(acceptable_price < P.MAX_PRICE, "order: price too large")
    check(w.now < P.MAX_ORDER_TIME, "order: clock")
    size = P._load(w, w.sender, mid).size
    reduce = size != 0 and size_delta != 0 and (size_delta > 0) != (size > 0)
    if size_delta == 0:
        check(margin_delta < 0, "position: zero size")
        check(size != 0, "position: none")
        check(not w.e.paused, "pausable: contract is paused")
    elif reduce:
        check(margin_delta == 0, "order: margin on reduce")
    else:
        check(margin_delta >= 0, "order: margin out on increase")
        check(not w.e.paused, "pausable: contract is paused")
    p = w.e.params[mid]
    o = P.Order(account=w.sender, market_id=mid, size_delta=size_delta, margin_delta=margin_delta,
                acceptable_price=acceptable_price, requested_at=w.now, reduce_only=reduce,
                trading_fee=p.trading_fee, execution_fee=p.execution_fee)
    escrow = P._escrow(w, o)
    free = w.e.free.get(w.sender, 0)
    check(escrow <= free, "collateral: insufficient")
    w.e.free[w.sender] = free - escrow
    order_id = w.e.order_count + 1
    w.e.order_count = order_id
    w.e.orders[order_id] = o
    w.e.pending[(w.sender, mid)] = (order_id, w.now + w.e.order_expiry)
    w.log("OrderRequested", order_id=order_id, account=w.sender, market_id=mid, size_delta=size_delta,
          margin_delta=margin_delta, acceptable_price=acceptable_price)
    return order_id


def execute_order(w, order_id):
    """PerpOrders.execute_order: the inner half runs in a nested snapshot; a
    Revert with a reason cancels the order, one without reverts it all."""
    o = P._load_order(w, order_id)
    check(o.account != ZERO, "order: unknown")
    check(w.now <= o.expires_at, "order: expired")
    price, updated = P._round(w, o.market_id, True)
    check(updated > o.requested_at, "order: no later price")
    snap = w._snapshot()
    caller, w.caller = w.caller, w.engine_address  # the engine calls itself
    try:
        execute_order_inner(w, order_id, w.sender, price)
    except Revert as exc:
        w.caller = caller
        w._restore(snap)
        if exc.reason is None:
            raise
        if len(exc.reason.encode()) > 64:
            # the chain reads at most 64 bytes of reason: decoding fails
            raise Revert(None) from exc
        w.e.orders.pop(order_id, None)
        w.e.free[o.account] = w.e.free.get(o.account, 0) + o.escrow - o.execution_fee
        w.e.free[w.sender] = w.e.free.get(w.sender, 0) + o.execution_fee
        w.log("OrderCancelled", order_id=order_id, reason=exc.reason)
        return
    w.caller = caller
    w.log("OrderExecuted", order_id=order_id, price=price)


def execute_order_inner(w, order_id, executor, price):
    """PerpOrders.execute_order_inner (reached only from execute_order)"""
    check(w.caller == w.engine_address, "orders: internal")
    o = P._load_order(w, order_id)
    w.e.orders.pop(order_id, None)
    p = replace(w.e.params[o.market_id], trading_fee=o.trading_fee)
    if o.size_delta == 0:
        _remove_margin(w, o, price, p)
    elif o.reduce_only:
        _reduce(w, o, price, p)
    else:
        _open(w, o, price, p)
    w.e.free[executor] = w.e.free.get(executor, 0) + o.execution_fee


def cancel_order(w, order_id):
    """PerpAdmin.cancel_order"""
    o = P._load_order(w, order_id)
    check(o.account != ZERO, "order: unknown")
    check(o.account == w.sender, "order: not yours")
    check(w.now > o.expires_at, "order: not expired")
    w.e.orders.pop(order_id, None)
    w.e.free[o.account] = w.e.free.get(o.account, 0) + o.escrow
    w.log("OrderCancelled", order_id=order_id, reason="order: expired")


def _open(w, o, price, p):
    """PerpOrders._open"""
    check(not w.e.paused, "pausable: contract is paused")
    account, mid, size_delta = o.account, o.market_id, o.size_delta
    if size_delta > 0:
        check(price <= o.acceptable_price, "position: price above acceptable")
    else:
        check(price >= o.acceptable_price, "position: price below acceptable")
    scale = w.e.scale
    fee = margin.requirement(size_delta, price, p.trading_fee, scale)
    pool = o.escrow - o.execution_fee
    check(fee <= pool, "collateral: insufficient")
    margin_in = min(o.margin_delta, pool - fee)

    old = P._load(w, account, mid)
    adl._check_not_bankrupt(w, account, mid, old)
    idx = P._accrue(w, mid, price, size_delta)
    new = replace(old)
    owed = 0
    if old.size == 0:
        new.entry_price = price
    else:
        check((old.size > 0) == (size_delta > 0), "position: opposite direction")
        owed = funding.owed(old.size, idx, old.funding_index, scale)
        eff = old.margin - owed
        check(eff >= 0, "position: funding exceeds margin")
        new.margin = eff
        new.entry_price = P._average_entry(old.size, old.entry_price, size_delta, price)
    new.size = old.size + size_delta
    check(-P.MAX_SIZE < new.size < P.MAX_SIZE, "position: size too large")
    new.margin += margin_in
    new.funding_index = idx
    check(new.margin >= p.min_margin, "position: margin below minimum")
    check(margin.notional_down(new.size, new.entry_price, scale) >= w.e.min_notional,
          "position: notional below minimum")
    st = w.e.state[mid]
    if size_delta > 0:
        check(st.long_oi + size_delta <= p.max_open_interest, "market: open interest cap")
    else:
        check(st.short_oi + -size_delta <= p.max_open_interest, "market: open interest cap")
    equity_ = new.margin + margin.upnl(new.size, new.entry_price, price, scale)
    check(equity_ >= margin.requirement(new.size, price, p.imf, scale), "margin: below initial")

    w.e.free[account] = w.e.free.get(account, 0) + pool - fee - margin_in
    P._write(w, account, mid, old, new)
    fund_fee = mul_div_down(fee, p.insurance_share, WAD)
    P._settle(w, owed + (fee - fund_fee), fund_fee)
    P._check_capacity(w)
    w.log("PositionOpened", account=account, market_id=mid, size_delta=size_delta, price=price,
          margin_added=margin_in, fee=fee, funding_paid=owed, size=new.size, entry_price=new.entry_price)


def _reduce(w, o, price, p):
    """PerpOrders._reduce"""
    old = P._load(w, o.account, o.market_id)
    check(old.size != 0 and (old.size > 0) != (o.size_delta > 0), "position: none")
    if old.size > 0:
        check(price >= o.acceptable_price, "position: price below acceptable")
    else:
        check(price <= o.acceptable_price, "position: price above acceptable")
    closed = -o.size_delta
    if abs(closed) >= abs(old.size):
        closed = old.size
    idx = P._accrue(w, o.market_id, price, old.size)
    payout = P._reduce(w, o.account, o.market_id, old, closed, price, idx, p, None)
    adl._escape(w, o.account, o.market_id, old, closed, payout)


def _remove_margin(w, o, price, p):
    """PerpOrders._remove_margin"""
    check(not w.e.paused, "pausable: contract is paused")
    account, mid, amount = o.account, o.market_id, -o.margin_delta
    old = P._load(w, account, mid)
    check(old.size != 0, "position: none")
    scale = w.e.scale
    idx = P._accrue(w, mid, price, old.size)
    owed = funding.owed(old.size, idx, old.funding_index, scale)
    new = replace(old)
    new.funding_index = idx
    if owed < 0:
        # funding received stays accrued: paid only at a close, under the cap
        owed = 0
        new.funding_index = old.funding_index
    left = old.margin - owed - amount
    check(left >= p.min_margin, "margin: insufficient")
    pnl = min(margin.upnl(old.size, old.entry_price, price, scale), 0)
    check(left + pnl >= margin.requirement(old.size, price, p.imf, scale), "margin: below initial")
    new.margin = left
    w.e.free[account] = w.e.free.get(account, 0) + amount
    P._write(w, account, mid, old, new)
    P._settle(w, owed, 0)
    w.log("MarginChanged", account=account, market_id=mid, delta=-amount, funding_paid=owed)
