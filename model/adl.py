"""Mirror of contracts/adl.vy: ranking check, fills at the bankruptcy price,
and the ranking helper the keeper uses."""

from dataclasses import replace

from model import funding, margin
from model import positions as P
from model.fixed_point import Revert, check, mul_div_down, mul_div_up, div_floor


def _target_score(w, account, mid, price):
    """adl._target_score: (upnl, score) from size, entry and margin."""
    pos = w.e.positions.get((account, mid)) or P.Position()
    pnl = margin.upnl(pos.size, pos.entry_price, price, w.e.scale)
    return pnl, margin.adl_score(pnl, pos.margin, margin.notional_down(pos.size, price, w.e.scale))


def _outranks(score, account, other_score, other):
    """adl._outranks: higher score first; equal scores, lower address first."""
    return score > other_score or (score == other_score and P.addr_int(account) < P.addr_int(other))


def _deleverage(w, mid, job, targets, price, idx, p):
    """adl._deleverage: ranked, tested for profit and scanned at the job's
    price; the closed part's PnL the lower of it at the job's price and at
    the oracle `price`. Returns the job as it stands (remaining 0: ended)."""
    scale = w.e.scale
    abs_bankrupt = abs(job.bankrupt_size)
    remaining = job.remaining
    size_left = job.size_left
    vault_delta = 0
    used = 0
    last_score = 0
    last_target = "0x" + "00" * 20
    listed = set()
    for t in targets:
        if remaining == 0 or size_left == 0:
            break
        check(t not in listed, "adl: duplicate target")
        listed.add(t)
        pos = P._load(w, t, mid)
        check(pos.size != 0, "adl: no position")
        check((pos.size > 0) != (job.bankrupt_size > 0), "adl: wrong side")
        pnl_all, score = _target_score(w, t, mid, job.price)
        check(pnl_all > 0, "adl: not in profit")
        if used > 0:
            check(_outranks(last_score, last_target, score, t), "adl: unsorted")
        used += 1
        last_score, last_target = score, t

        abs_size = abs(pos.size)
        q = min(min(abs_size, size_left), mul_div_up(remaining, abs_bankrupt, job.bad_debt))
        closed = q if pos.size > 0 else -q
        owed = funding.owed(pos.size, idx, pos.funding_index, scale)
        eff = pos.margin - owed
        released = eff
        if q < abs_size:
            released = div_floor(eff * q, abs_size)
        left = eff - released
        # the vault's payment for the closed part is capped (adl.vy)
        pnl = P._capped_pnl(w, min(margin.upnl(closed, pos.entry_price, job.price, scale),
                                   margin.upnl(closed, pos.entry_price, price, scale)),
                            owed + min(left, 0), closed, pos.entry_price)
        part_equity = released + pnl
        if left < 0:
            # The rest owes more funding than its margin: the closed part's
            # proceeds settle that debt first (adl.vy says why).
            part_equity += left
            left = 0
        haircut = min(mul_div_up(q, job.bad_debt, abs_bankrupt), remaining)
        if haircut > part_equity:
            haircut = max(part_equity, 0)
        payout = part_equity - haircut
        if payout < 0:
            left += payout
            payout = 0
        new = P.Position()
        if q < abs_size:
            new = replace(pos)
            new.size = pos.size - closed
            new.margin = max(left, 0)
            new.funding_index = idx
        P._write(w, t, mid, pos, new)
        w.e.free[t] = w.e.free.get(t, 0) + payout
        # A target whose funding debt exceeds its margin plus the closed
        # part's PnL: the vault absorbs the shortfall (adl.vy says why).
        vault_delta += owed - pnl + haircut + min(left, 0)
        remaining -= haircut
        size_left -= min(q, mul_div_down(haircut, abs_bankrupt, job.bad_debt))  # in proportion to the haircut
        w.log("AutoDeleveraged", bankrupt=job.bankrupt, target=t, market_id=mid, size=closed,
              bankruptcy_price=job.bankruptcy_price, haircut=haircut)
    P._settle(w, vault_delta, 0)

    key = mid * 2 + (1 if job.bankrupt_size > 0 else 0)
    unlisted_profitable = False
    for m in list(w.e.members.get(key, [])):
        if m in listed:
            continue
        pnl_m, score_m = _target_score(w, m, mid, job.price)
        if pnl_m <= 0:
            continue
        unlisted_profitable = True
        if used > 0:
            check(not _outranks(score_m, m, last_score, last_target), "adl: not ranked")

    job = replace(job, remaining=remaining, size_left=size_left)
    if remaining > 0 and size_left > 0 and unlisted_profitable:
        check(len(targets) == P.MAX_ADL_TARGETS, "adl: more targets needed")
        w.log("DeleveragePending", market_id=mid, bankrupt=job.bankrupt, remaining=remaining)
        return job
    if remaining > 0:
        w.log("BadDebtSocialized", market_id=mid, amount=remaining)
    job.remaining = 0
    return job


def _push(w, mid, job):
    """adl._push"""
    jobs = w.e.adl_jobs.setdefault(mid, [])
    check(len(jobs) < P.MAX_ADL_JOBS, "adl: queue full")
    jobs.append(replace(job))


def _remove(w, mid, i):
    """adl._remove"""
    jobs = w.e.adl_jobs[mid]
    del jobs[i]
    if not jobs:
        del w.e.adl_jobs[mid]


def _check_not_bankrupt(w, account, mid, old):
    """adl._check_not_bankrupt: no new risk for a pending job's bankrupt, nor
    for a position that is a target of a pending job (decision 93)"""
    for job in w.e.adl_jobs.get(mid, []):
        check(job.bankrupt != account, "adl: bankrupt while pending")
        check(old.size == 0 or (old.size > 0) == (job.bankrupt_size > 0)
              or margin.upnl(old.size, old.entry_price, job.price, w.e.scale) <= 0, "adl: target while pending")


def _escape(w, account, mid, old, closed, payout):
    """adl._escape: the escape pays its share of each pending job it is a
    target of (opposite side, in profit at the job's price), out of the
    close's payout, to the vault."""
    scale = w.e.scale
    jobs = w.e.adl_jobs.get(mid, [])
    taken = 0
    i = 0
    while i < len(jobs):
        job = jobs[i]
        if (old.size > 0) == (job.bankrupt_size > 0) or margin.upnl(old.size, old.entry_price, job.price, scale) <= 0:
            i += 1
            continue
        abs_bankrupt = abs(job.bankrupt_size)
        q = min(min(abs(closed), job.size_left), mul_div_up(job.remaining, abs_bankrupt, job.bad_debt))
        haircut = min(min(mul_div_up(q, job.bad_debt, abs_bankrupt), job.remaining), payout - taken)
        if haircut == 0:
            i += 1
            continue
        taken += haircut
        job.remaining -= haircut
        job.size_left -= min(q, mul_div_down(haircut, abs_bankrupt, job.bad_debt))
        w.log("AutoDeleveraged", bankrupt=job.bankrupt, target=account, market_id=mid,
              size=q if old.size > 0 else -q, bankruptcy_price=job.bankruptcy_price, haircut=haircut)
        if job.remaining == 0 or job.size_left == 0:
            if job.remaining > 0:
                w.log("BadDebtSocialized", market_id=mid, amount=job.remaining)
            _remove(w, mid, i)
        else:
            i += 1
    if taken > 0:
        w.e.free[account] -= taken
        P._settle(w, taken, 0)


def _ranking(w, mid, bankrupt_size, price, limit=P.MAX_ADL_TARGETS):
    """adl._ranking: profitable opposite positions, best first, at most `limit`.

    The contract's view keeps MAX_ADL_TARGETS; the keeper may ask for more
    (limit=None) to plan a deleverage that spans several calls."""
    key = mid * 2 + (1 if bankrupt_size > 0 else 0)
    scored = []
    for m in w.e.members.get(key, []):
        pnl_m, score_m = _target_score(w, m, mid, price)
        if pnl_m > 0:
            scored.append((-score_m, P.addr_int(m), m))
    scored.sort()
    out = [m for _, _, m in scored]
    return out if limit is None else out[:limit]


def job_ranking(w, mid, limit=P.MAX_ADL_TARGETS):
    """The targets of the market's oldest pending job, best first, at the
    job's price (what the next `deleverage` must be given); [] with none.
    A keeper helper: no contract twin (PerpEngine.adl_ranking ranks at the
    oracle price for an open position)."""
    jobs = w.e.adl_jobs.get(mid)
    if not jobs:
        return []
    return _ranking(w, mid, jobs[0].bankrupt_size, jobs[0].price, limit)
