# pragma version 0.4.3
"""
@title adl
@notice Auto-deleveraging: the on-chain ranking check, the fills at the
        bankruptcy price, and the ranking helper. model/adl.py mirrors it.
@dev score = (upnl / margin) * (notional / (margin + upnl)); targets must be
     opposite, in profit, strictly descending by (score, then lower address
     first), and no profitable opposite position left out of the list may
     outrank the last target used (a bounded scan of the side set).
"""

import fixed_point as fp
import margin
import funding
import positions

uses: positions


@internal
@view
def _target_score(account: address, mid: uint256, price: uint256) -> (int256, uint256):
    """
    @notice (upnl, score) of a position from its first two slots only.
    """
    a: uint256 = positions._pos_a[account][mid]
    size: int256 = convert(a & positions.MASK, int256) - positions.OFFSET
    entry: uint256 = positions._pos_b[account][mid] & positions.MASK
    pnl: int256 = margin.upnl(size, entry, price, positions.SCALE)
    return (pnl, margin.adl_score(pnl, a >> 128, margin.notional_down(size, price, positions.SCALE)))


@internal
@pure
def _outranks(score: uint256, account: address, other_score: uint256, other: address) -> bool:
    """
    @notice Higher score first; equal scores, lower address first.
    """
    return score > other_score or (score == other_score and convert(account, uint256) < convert(other, uint256))


@internal
def _deleverage(
    mid: uint256, job: positions.AdlPending, targets: DynArray[address, positions.MAX_ADL_TARGETS], price: uint256, idx: int256, p: positions.MarketParams
) -> positions.AdlPending:
    """
    @notice Reduce ranked opposite-side profitable positions at the bankrupt
            position's bankruptcy price until the uncovered bad debt is
            covered. A target closing q of the bankrupt size s pays a haircut
            ceil(q * bad_debt / |s|) (q * (bankruptcy - job price)),
            capped by the closed part's equity and by what is still uncovered,
            so the haircuts sum to exactly the uncovered amount; it consumes
            floor(haircut * |s| / bad_debt) (at most q) of the bankrupt size.
            Ranking, profit and the completeness scan use the job's price
            (the oracle price of its liquidation), fixed for every call of
            the job; the closed part's PnL is the lower of its PnL at the
            job's price and at the oracle `price` (a position opened after
            the job cannot be closed above the market). Returns the job as
            it stands, remaining = 0 when it has ended.
    """
    abs_bankrupt: uint256 = convert(abs(job.bankrupt_size), uint256)
    remaining: uint256 = job.remaining
    size_left: uint256 = job.size_left
    vault_delta: int256 = 0
    used: uint256 = 0
    last_score: uint256 = 0
    last_target: address = empty(address)
    for t: address in targets:
        if remaining == 0 or size_left == 0:
            break
        assert not positions._listed[t], "adl: duplicate target"
        positions._listed[t] = True
        pos: positions.Position = positions._load(t, mid)
        assert pos.size != 0, "adl: no position"
        assert (pos.size > 0) != (job.bankrupt_size > 0), "adl: wrong side"
        pnl_all: int256 = 0
        score: uint256 = 0
        (pnl_all, score) = self._target_score(t, mid, job.price)
        assert pnl_all > 0, "adl: not in profit"
        if used > 0:
            assert self._outranks(last_score, last_target, score, t), "adl: unsorted"
        used += 1
        last_score = score
        last_target = t

        abs_size: uint256 = convert(abs(pos.size), uint256)
        q: uint256 = min(min(abs_size, size_left), fp.mul_div_up(remaining, abs_bankrupt, job.bad_debt))
        closed: int256 = convert(q, int256)
        if pos.size < 0:
            closed = -closed
        owed: int256 = funding.owed(pos.size, idx, pos.funding_index, positions.SCALE)
        eff: int256 = convert(pos.margin, int256) - owed
        released: int256 = eff
        if q < abs_size:
            released = fp.div_floor(eff * convert(q, int256), convert(abs_size, int256))
        left: int256 = eff - released
        # What the vault pays for the closed part (its PnL less the whole
        # position's funding, plus any funding debt the rest cannot pay) is
        # capped at the closed part's payout cap.
        pnl: int256 = positions._capped_pnl(
            min(margin.upnl(closed, pos.entry_price, job.price, positions.SCALE), margin.upnl(closed, pos.entry_price, price, positions.SCALE)),
            owed + min(left, 0),
            closed,
            pos.entry_price,
        )
        part_equity: int256 = released + pnl
        if left < 0:
            # The rest owes more funding than its margin (healthy or not: its
            # price profit can exceed the debt): the closed part's proceeds
            # settle that debt before any haircut or payout.
            part_equity += left
            left = 0
        haircut: uint256 = min(fp.mul_div_up(q, job.bad_debt, abs_bankrupt), remaining)
        if convert(haircut, int256) > part_equity:
            haircut = convert(max(part_equity, 0), uint256)
        payout: int256 = part_equity - convert(haircut, int256)
        if payout < 0:
            left += payout
            payout = 0
        new: positions.Position = empty(positions.Position)
        if q < abs_size:
            new = pos
            new.size = pos.size - closed
            new.margin = convert(max(left, 0), uint256)
            new.funding_index = idx
        positions._write(t, mid, pos, new)
        positions._free[t] += convert(payout, uint256)
        # A target whose funding debt exceeds its margin plus the closed
        # part's PnL (left < 0 here) cannot pay it all: the vault absorbs the
        # shortfall, as in a bad-debt liquidation, so the engine never pays
        # out collateral it does not hold.
        vault_delta += owed - pnl + convert(haircut, int256) + min(left, 0)
        remaining -= haircut
        # The bankrupt size is consumed only in proportion to the haircut
        # collected (rounded down): a target whose haircut its equity caps
        # (a low-equity "shield") uses up no more of it than it paid for,
        # and the next ranked target pays the rest.
        size_left -= min(q, fp.mul_div_down(haircut, abs_bankrupt, job.bad_debt))
        log positions.AutoDeleveraged(
            bankrupt=job.bankrupt, target=t, market_id=mid, size=closed, bankruptcy_price=job.bankruptcy_price, haircut=haircut
        )
    positions._settle(vault_delta, 0)

    # Completeness: no profitable opposite position left out of the list may
    # outrank the last target used; while debt is left, none may be left out.
    key: uint256 = mid * 2 + convert(job.bankrupt_size > 0, uint256)
    n: uint256 = positions._member_count[key]
    unlisted_profitable: bool = False
    for i: uint256 in range(positions.MAX_SIDE_POSITIONS):
        if i >= n:
            break
        m: address = positions._members[key][i]
        if positions._listed[m]:
            continue
        pnl_m: int256 = 0
        score_m: uint256 = 0
        (pnl_m, score_m) = self._target_score(m, mid, job.price)
        if pnl_m <= 0:
            continue
        unlisted_profitable = True
        if used > 0:
            assert not self._outranks(score_m, m, last_score, last_target), "adl: not ranked"
    # Clear the marks so a second liquidation in the same transaction is clean.
    for t: address in targets:
        positions._listed[t] = False

    job.remaining = remaining
    job.size_left = size_left
    if remaining > 0 and size_left > 0 and unlisted_profitable:
        assert len(targets) == positions.MAX_ADL_TARGETS, "adl: more targets needed"
        log positions.DeleveragePending(market_id=mid, bankrupt=job.bankrupt, remaining=remaining)
        return job
    if remaining > 0:
        log positions.BadDebtSocialized(market_id=mid, amount=remaining)
    job.remaining = 0
    return job


# ---------------------------------------------------------------- the queue


@internal
def _push(mid: uint256, job: positions.AdlPending):
    """
    @notice Queue `job` behind the market's pending jobs.
    """
    n: uint256 = positions._adl_count[mid]
    assert n < positions.MAX_ADL_JOBS, "adl: queue full"
    positions._adl_jobs[mid][n] = job
    positions._adl_count[mid] = n + 1


@internal
def _remove(mid: uint256, i: uint256):
    """
    @notice Take the job at index `i` out of the queue; the later ones move
            up one place (at most MAX_ADL_JOBS - 1 copies).
    """
    n: uint256 = positions._adl_count[mid]
    for k: uint256 in range(positions.MAX_ADL_JOBS):
        if i + k + 1 >= n:
            break
        positions._adl_jobs[mid][i + k] = positions._adl_jobs[mid][i + k + 1]
    positions._adl_jobs[mid][n - 1] = empty(positions.AdlPending)
    positions._adl_count[mid] = n - 1


@internal
@view
def _check_not_bankrupt(account: address, mid: uint256, old: positions.Position):
    """
    @notice New risk while jobs are pending. An account whose bankruptcy is
            still being deleveraged in this market cannot take it: it could
            become a target of its own debt. Nor can a position that is a
            target of a pending job (opposite side, in profit at the job's
            price) increase: averaging its entry past the job's price would
            take it out of profit there and let it close without paying
            (decision 93; red-team finding A1).
    """
    n: uint256 = positions._adl_count[mid]
    for i: uint256 in range(positions.MAX_ADL_JOBS):
        if i >= n:
            break
        job: positions.AdlPending = positions._adl_jobs[mid][i]
        assert job.bankrupt != account, "adl: bankrupt while pending"
        target: bool = old.size != 0 and (old.size > 0) != (job.bankrupt_size > 0)
        if target:
            target = margin.upnl(old.size, old.entry_price, job.price, positions.SCALE) > 0
        assert not target, "adl: target while pending"


@internal
def _escape(account: address, mid: uint256, old: positions.Position, closed: int256, payout: uint256):
    """
    @notice The escape pays: a position that closes `closed` (an order or a
            TP/SL) while jobs are pending, on the opposite side of a job and
            in profit at that job's price, pays that job the haircut a
            deleverage of the same size would charge, first:
            q = min(|closed|, size_left, ceil(remaining * |s| / bad_debt)),
            haircut = min(ceil(q * bad_debt / |s|), remaining, what is left
            of the close's payout); it consumes floor(haircut * |s| /
            bad_debt) (at most q) of the bankrupt size, as a target does.
            Each job of the queue in turn; a job it ends leaves the queue.
            The haircuts come out of the payout the close just credited to
            free collateral and go to the vault.
    """
    n: uint256 = positions._adl_count[mid]
    taken: uint256 = 0
    i: uint256 = 0
    for k: uint256 in range(positions.MAX_ADL_JOBS):
        if i >= n:
            break
        job: positions.AdlPending = positions._adl_jobs[mid][i]
        if (old.size > 0) == (job.bankrupt_size > 0) or margin.upnl(old.size, old.entry_price, job.price, positions.SCALE) <= 0:
            i += 1
            continue
        abs_bankrupt: uint256 = convert(abs(job.bankrupt_size), uint256)
        q: uint256 = min(min(convert(abs(closed), uint256), job.size_left), fp.mul_div_up(job.remaining, abs_bankrupt, job.bad_debt))
        haircut: uint256 = min(min(fp.mul_div_up(q, job.bad_debt, abs_bankrupt), job.remaining), payout - taken)
        if haircut == 0:
            i += 1
            continue
        taken += haircut
        job.remaining -= haircut
        job.size_left -= min(q, fp.mul_div_down(haircut, abs_bankrupt, job.bad_debt))
        size: int256 = convert(q, int256)
        if old.size < 0:
            size = -size
        log positions.AutoDeleveraged(
            bankrupt=job.bankrupt, target=account, market_id=mid, size=size, bankruptcy_price=job.bankruptcy_price, haircut=haircut
        )
        if job.remaining == 0 or job.size_left == 0:
            if job.remaining > 0:
                log positions.BadDebtSocialized(market_id=mid, amount=job.remaining)
            self._remove(mid, i)
            n -= 1
        else:
            positions._adl_jobs[mid][i] = job
            i += 1
    if taken > 0:
        positions._free[account] -= taken
        positions._settle(convert(taken, int256), 0)


@internal
@view
def _ranking(mid: uint256, bankrupt_size: int256, price: uint256) -> DynArray[address, positions.MAX_ADL_TARGETS]:
    """
    @notice Insertion of every profitable opposite position into a bounded
            list sorted by `_outranks`.
    """
    key: uint256 = mid * 2 + convert(bankrupt_size > 0, uint256)
    n: uint256 = positions._member_count[key]
    ranked: DynArray[address, positions.MAX_ADL_TARGETS] = []
    scores: DynArray[uint256, positions.MAX_ADL_TARGETS] = []
    for i: uint256 in range(positions.MAX_SIDE_POSITIONS):
        if i >= n:
            break
        m: address = positions._members[key][i]
        pnl_m: int256 = 0
        score_m: uint256 = 0
        (pnl_m, score_m) = self._target_score(m, mid, price)
        if pnl_m <= 0:
            continue
        count: uint256 = len(ranked)
        if count == positions.MAX_ADL_TARGETS and not self._outranks(score_m, m, scores[count - 1], ranked[count - 1]):
            continue
        # find the insertion point
        pos: uint256 = count
        for j: uint256 in range(positions.MAX_ADL_TARGETS):
            if j >= count:
                break
            if self._outranks(score_m, m, scores[j], ranked[j]):
                pos = j
                break
        if count < positions.MAX_ADL_TARGETS:
            ranked.append(m)
            scores.append(score_m)
        else:
            count -= 1
        # shift down from the end to pos
        for k: uint256 in range(positions.MAX_ADL_TARGETS):
            j: uint256 = count - k
            if j <= pos:
                break
            ranked[j] = ranked[j - 1]
            scores[j] = scores[j - 1]
        ranked[pos] = m
        scores[pos] = score_m
    return ranked
