"""The funding property, checked on the model after every successful call
(the chain equals the model after every step, so it holds there too).

    before = funding_before(w)          just before the call
    check_funding(w, before, events)    just after it, with the call's events

For each market, with idx_b / idx_a a side's index before / after the call
(the stored funding index plus the borrow index for longs, minus it for
shorts: funding.side_index, decision 96), OI and the sum of
size * funding_index the stored aggregates:

  (1) each side's accrued funding moves with the index: over the positions
      open before the call, the sum of funding.owed at idx_a less the sum at
      idx_b equals (idx_a - idx_b) * that side's open interest / scale, to
      less than one unit per position (funding.owed rounds each position
      up: the difference of two ceilings is within one unit of the exact
      difference);
  (2) what the positions settled matches the aggregates: the funding owed
      by the positions settled in the call (closed, liquidated, ADL'd,
      increased, reduced, margin removed: their stored funding index
      changed or they are gone), times scale, exceeds the drop of the
      market's unsettled funding, F * (long_oi - short_oi) + B * (long_oi +
      short_oi) - sum_size_index after accrual (F, B the two indices), by at least 0 and less than scale per settled position
      (the ceiling);
  (3) the vault received exactly that: the vault's balance change in the
      call, less the insurance fund's draws into it, less every non-funding
      flow the call's events account for (the vault's share of trading
      fees, the negated PnL of closed parts, bad debt, ADL haircuts and an
      ADL target's negative part equity), equals the sum of funding.owed
      over the settled positions, to the unit.

A bug that makes longs pay twice what they owe keeps token conservation (the
surplus lands in the vault) but breaks (1) and (2) when funding.owed itself
doubles, and (3) when only the settlement takes twice.
"""

from model import funding, margin
from model import positions as P
from model.fixed_point import WAD, div_floor, mul_div_down


class FundingViolation(AssertionError):
    pass


def funding_before(w):
    """What the check needs from before the call: per market (index,
    long_oi, short_oi, sum_size_index), each position's (size, entry,
    margin, funding_index), the vault's balance."""
    markets = {mid: (s.funding_index, s.borrow_index, s.long_oi, s.short_oi, s.sum_size_index)
               for mid, s in w.e.state.items()}
    positions = {k: (p.size, p.entry_price, p.margin, p.funding_index) for k, p in w.e.positions.items()}
    # each pending ADL job's price (a fill's PnL is the lower of it at the job's price and at the oracle)
    job_prices = {(mid, j.bankrupt): j.price for mid, jobs in w.e.adl_jobs.items() for j in jobs}
    return markets, positions, w.token.balance_of(w.vault_address), job_prices


def _side(size, index, borrow):
    """The index a position of `size` settles against, written here and not
    taken from the model (funding.side_index), so that the same wrong sign
    in contract and model is still caught: F + B long, F - B short."""
    return index - borrow if size < 0 else index + borrow


def _unsettled(idx, borrow, long_oi, short_oi, ssi):
    """Sum over a market's positions of size * (side index - funding_index):
    the funding and borrowing fee they owe the vault, exact (times scale)."""
    return idx * (long_oi - short_oi) + borrow * (long_oi + short_oi) - ssi


def check_funding(w, before, events, where=""):
    markets, positions, vault_before, job_prices = before
    job_prices = dict(job_prices)
    closed_here = set()
    for name, f in events:
        if name == "PositionLiquidated":  # a job this call starts has the liquidation's price
            job_prices.setdefault((f["market_id"], f["account"]), f["price"])
        elif name == "PositionClosed":
            closed_here.add((f["account"], f["market_id"]))
    scale = w.e.scale
    owed = funding.owed  # looked up at call time: a patched model is checked as it runs
    settled_by_market = {}
    for mid, (f_b, b_b, long_oi, short_oi, ssi_b) in markets.items():
        s = w.e.state[mid]
        f_a, b_a = s.funding_index, s.borrow_index
        mine = [(k, v) for k, v in positions.items() if k[1] == mid]
        # (1) per side
        for side, sign, oi in (("long", 1, long_oi), ("short", -1, short_oi)):
            group = [v for _, v in mine if (v[0] > 0) == (sign > 0)]
            idx_b, idx_a = _side(sign, f_b, b_b), _side(sign, f_a, b_a)
            if idx_a == idx_b or not group:
                continue
            accrued = sum(owed(size, idx_a, fi, scale) - owed(size, idx_b, fi, scale) for size, _, _, fi in group)
            exact = sign * (idx_a - idx_b) * oi
            if not -len(group) * scale < accrued * scale - exact < len(group) * scale:
                raise FundingViolation(
                    f"funding{where}: market {mid} {side}s accrued {accrued} from index {idx_b} to {idx_a}, but the "
                    f"index change times their open interest {oi} is {exact / scale:.3f} ({len(group)} positions)")
        # (2) settled against the aggregates
        settled = []
        for k, (size, entry, m, fi) in mine:
            p = w.e.positions.get(k)
            if p is None or p.funding_index != fi or p.size != size:
                settled.append((k, owed(size, _side(size, f_a, b_a), fi, scale)))
        settled_by_market[mid] = settled
        drop = (_unsettled(f_a, b_a, long_oi, short_oi, ssi_b)
                - _unsettled(f_a, b_a, s.long_oi, s.short_oi, s.sum_size_index))
        paid = sum(o for _, o in settled)
        if not 0 <= paid * scale - drop < max(len(settled), 1) * scale:
            raise FundingViolation(
                f"funding{where}: market {mid}: positions settled {paid} of funding ({len(settled)} settled), but "
                f"the market's unsettled funding fell by {drop / scale:.3f}")
    # (3) the vault's cash
    nonfunding = 0
    drawn = 0
    for name, f in events:
        if name == "PositionOpened":
            nonfunding += f["fee"] - mul_div_down(f["fee"], w.e.params[f["market_id"]].insurance_share, WAD)
        elif name == "PositionClosed":
            nonfunding += -f["pnl"] + f["fee"] - mul_div_down(f["fee"], w.e.params[f["market_id"]].insurance_share, WAD)
        elif name == "PositionLiquidated":
            size, entry, _, fi = positions[(f["account"], f["market_id"])]
            # the PnL under the payout cap (docs/solvency.md), as liquidate computes it
            st = w.e.state[f["market_id"]]
            o = owed(size, _side(size, st.funding_index, st.borrow_index), fi, scale)
            pnl = P._capped_pnl(w, margin.upnl(size, entry, f["price"], scale), o, size, entry)
            nonfunding += -pnl - f["bad_debt"]
        elif name == "AutoDeleveraged" and (f["target"], f["market_id"]) in closed_here:
            nonfunding += f["haircut"]  # the escape pays: a haircut out of a close's payout (adl._escape)
        elif name == "AutoDeleveraged":
            mid = f["market_id"]
            size, entry, m, fi = positions[(f["target"], mid)]
            idx_a = _side(size, w.e.state[mid].funding_index, w.e.state[mid].borrow_index)
            price = P._price(w, mid, False)
            q, closed = abs(f["size"]), f["size"]
            o = owed(size, idx_a, fi, scale)
            eff = m - o
            released = eff if q == abs(size) else div_floor(eff * q, abs(size))
            at = job_prices[(mid, f["bankrupt"])]
            pnl = P._capped_pnl(w, min(margin.upnl(closed, entry, at, scale), margin.upnl(closed, entry, price, scale)),
                                o + min(eff - released, 0), closed, entry)
            # what the rest of the target's margin cannot cover lands on the
            # vault: a funding debt beyond the margin first, then a closed
            # part worth less than nothing (adl._deleverage's `left`)
            left, part = eff - released, released + pnl
            if left < 0:
                part, left = part + left, 0
            if part - f["haircut"] < 0:
                left += part - f["haircut"]
            nonfunding += -pnl + f["haircut"] + min(left, 0)
        elif name == "InsuranceFundDrawn":
            drawn += f["amount"]
        elif name == "KeeperPaid":
            nonfunding -= f["from_vault"]  # the keeper's floor advanced by the vault
    received = w.token.balance_of(w.vault_address) - vault_before - drawn - nonfunding
    paid = sum(o for settled in settled_by_market.values() for _, o in settled)
    if received != paid:
        raise FundingViolation(
            f"funding{where}: the vault received {received} of funding net, the positions settled {paid} "
            f"({[(k[0][:8], k[1], o) for s in settled_by_market.values() for k, o in s][:8]})")
