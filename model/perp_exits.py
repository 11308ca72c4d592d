"""Mirror of contracts/PerpExits.vy: TP/SL, liquidation with the
insurance-fund draw, and ADL."""

from dataclasses import replace

from model import adl, funding, margin
from model import positions as P
from model.fixed_point import WAD, check, mul_div_down


def execute_tp_sl(w, account, mid):
    """PerpExits.execute_tp_sl"""
    P._check_market(w, mid)
    old = P._load(w, account, mid)
    check(old.size != 0, "position: none")
    price, updated = P._round(w, mid, True)
    idx = P._accrue(w, mid, price, old.size)
    at_cap = P._past_cap(w, old, price, idx)
    check(at_cap or P._tp_sl_hit(old, price), "not triggered")
    check(at_cap or updated > w.e.tp_sl_at.get((account, mid), 0), "tp_sl: no later price")
    p = w.e.params[mid]
    payout = P._reduce(w, account, mid, old, old.size, price, idx, p, w.sender)
    adl._escape(w, account, mid, old, old.size, payout)


def liquidate(w, account, mid, adl_targets):
    """PerpExits.liquidate"""
    P._check_market(w, mid)
    check(len(adl_targets) <= P.MAX_ADL_TARGETS, None)
    old = P._load(w, account, mid)
    check(old.size != 0, "position: none")
    price = P._price(w, mid, True)
    p = w.e.params[mid]
    scale = w.e.scale
    idx = P._accrue(w, mid, price, old.size)
    owed = funding.owed(old.size, idx, old.funding_index, scale)
    eff = old.margin - owed
    pnl = P._capped_pnl(w, margin.upnl(old.size, old.entry_price, price, scale), owed, old.size, old.entry_price)
    equity = eff + pnl
    check(equity < margin.requirement(old.size, price, P._mmf(w, mid), scale), "position healthy")

    P._write(w, account, mid, old, P.Position())
    penalty = reward = bad_debt = 0
    if equity > 0:
        penalty = min(margin.requirement(old.size, price, p.liq_fee, scale), equity)
        reward = mul_div_down(penalty, p.keeper_share, WAD)
        w.e.free[w.sender] = w.e.free.get(w.sender, 0) + reward
        w.e.free[account] = w.e.free.get(account, 0) + equity - penalty
    else:
        bad_debt = -equity
    P._settle(w, owed - pnl - bad_debt, penalty - reward)
    advanced = P._pay_keeper_floor(w, w.sender, reward)
    w.log("PositionLiquidated", account=account, market_id=mid, size=old.size, price=price, penalty=penalty,
          keeper_reward=reward, bad_debt=bad_debt)
    if bad_debt == 0:
        return

    fund_balance = w.token.balance_of(w.e.insurance_fund)
    covered = min(fund_balance, bad_debt)
    if covered > 0:
        w.fund_cover(w.e.vault, covered)
        w.log("InsuranceFundDrawn", amount=covered, remaining=fund_balance - covered)
    uncovered = bad_debt - covered + advanced
    if uncovered == 0:
        return
    job = P.AdlPending(
        remaining=uncovered,
        bad_debt=bad_debt + advanced,
        bankrupt_size=old.size,
        size_left=abs(old.size),
        bankrupt=account,
        bankruptcy_price=margin.bankruptcy_price(old.size, old.entry_price, eff, scale),
        price=price,
    )
    if len(w.e.adl_jobs.get(mid, [])) == P.MAX_ADL_JOBS:
        # the queue is full: the LPs absorb this deficit now (PerpExits.vy, decision 92)
        w.log("BadDebtSocialized", market_id=mid, amount=uncovered)
        return
    if w.e.adl_jobs.get(mid):
        # jobs queue, oldest first; adl_targets is not used (PerpExits.vy)
        adl._push(w, mid, job)
        w.log("DeleveragePending", market_id=mid, bankrupt=account, remaining=uncovered)
        return
    # the targets are on the other side: they settle against its index
    job = adl._deleverage(w, mid, job, adl_targets, price, P._pending_index(w, mid, price, -old.size), p)
    if job.remaining > 0:
        adl._push(w, mid, job)


def deleverage(w, mid, adl_targets):
    """PerpExits.deleverage"""
    P._check_market(w, mid)
    check(len(adl_targets) <= P.MAX_ADL_TARGETS, None)
    check(bool(w.e.adl_jobs.get(mid)), "adl: nothing pending")
    job = replace(w.e.adl_jobs[mid][0])
    price = P._price(w, mid, True)
    p = w.e.params[mid]
    idx = P._accrue(w, mid, price, -job.bankrupt_size)  # the targets' side
    job.remaining += P._pay_keeper_floor(w, w.sender, 0)
    job = adl._deleverage(w, mid, job, adl_targets, price, idx, p)
    if job.remaining > 0:
        w.e.adl_jobs[mid][0] = job
    else:
        adl._remove(w, mid, 0)
