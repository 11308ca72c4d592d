"""ADL policies side by side: the engine's ranking (what the model did) and
two rules the lab computes itself on the same shortfall, against the same
winners.

At every liquidation whose bad debt exceeds the insurance fund, the lab
captures the shortfall U (the bad debt the fund did not pay, from the
engine's events) and every profitable position on the other side as it was
just before: size s_i, effective margin, PnL at the oracle price, notional
N_i, and the account's equity E_i (position equity plus free collateral).
Each policy answers: which accounts pay how much (haircut h_i), and how
much of their position is closed (q_i).

- ranking   Backstop's on-chain rule, as the model ran it: the highest ADL
            score first ((upnl / margin) x (notional / equity)), each closed
            at the bankrupt position's bankruptcy price until the closed
            size covers U; h_i and q_i from the AutoDeleveraged events.
- pro_rata  every winner pays U x pnl_i / sum(pnl) (largest remainders get
            the last units), at most its PnL; nothing is closed. The "fair"
            rule of Chitra (arXiv 2512.01112).
- drain     leverage-draining (Campbell, Hey, Moallemi, Nutz, arXiv
            2603.15963): the same closed size and the same haircut per unit
            closed as the engine (bad debt / bankrupt size, at the
            bankruptcy price), taken from the most levered first, each
            brought down to a common leverage L*, the L* that closes
            exactly the size needed.

An account's leverage is N / E: a closed part's proceeds stay with the
account (as free collateral), so closing part of a position lowers it.

The alternatives are counterfactuals per shortfall: the path goes on as the
engine's ranking left the book. The numbers say what another rule would
have cost at the same moments.
"""

from model import positions as P
from model.fixed_point import WAD, mul_div_up

POLICIES = ("ranking", "pro_rata", "drain")


class Shortfall:
    """One liquidation that left debt for ADL, and the winners before it."""

    def __init__(self, mid, bankrupt_size, price, winners):
        self.mid = mid
        self.bankrupt_size = abs(bankrupt_size)
        self.price = price
        self.winners = winners  # [(account, size, pnl, notional, equity)]
        self.bad_debt = self.uncovered = 0
        self.engine = {}
        self.tick = -1

    def record_engine(self, events, tick):
        """The engine's own numbers: bad debt, what the fund paid, and each
        AutoDeleveraged fill (size closed, haircut)."""
        self.tick = tick
        covered = 0
        for name, f in events:
            if name == "PositionLiquidated" and not self.bad_debt:
                self.bad_debt = f["bad_debt"]
            elif name == "InsuranceFundDrawn" and not covered:
                covered = f["amount"]
            elif name == "AutoDeleveraged":
                q, h = self.engine.get(f["target"], (0, 0))
                self.engine[f["target"]] = (q + abs(f["size"]), h + f["haircut"])
        self.uncovered = self.bad_debt - covered


def capture(w, mid, pos, price, ranked):
    """The winners on the other side of `pos` (`ranked`: the profitable
    ones, in the engine's order), as ADL would see them: PnL and funding
    with the model's formulas (margin.upnl, funding.owed, the payout cap of
    positions._capped_pnl when the engine has one), inline."""
    idx = P._pending_index(w, mid, price, -pos.size)  # the winners' side
    scale = w.e.scale
    max_profit = getattr(w.e, "max_profit", None)
    cap_div = WAD * scale
    positions, free = w.e.positions, w.e.free
    winners = []
    for m in ranked:
        t = positions[(m, mid)]
        size = t.size
        s = size if size > 0 else -size
        pnl = size * (price - t.entry_price) // scale  # margin.upnl
        owed = -((-size * (idx - t.funding_index)) // scale)  # funding.owed
        if max_profit is not None:
            pnl = min(pnl, max_profit * s * t.entry_price // cap_div + owed)
        winners.append((m, s, pnl, s * price // scale, t.margin - owed + pnl + free.get(m, 0)))
    return Shortfall(mid, pos.size, price, winners)


# ---------------------------------------------------------------- the rules

def allocate(policy, ev):
    """{account: (closed size, haircut)} of `policy` on shortfall `ev`."""
    if policy == "ranking":
        return dict(ev.engine)
    if policy == "pro_rata":
        return _pro_rata(ev)
    if policy == "drain":
        return _drain(ev)
    raise ValueError(policy)


def _pro_rata(ev):
    u = ev.uncovered
    total = sum(pnl for _, _, pnl, _, _ in ev.winners)
    if total <= u:
        return {a: (0, pnl) for a, _, pnl, _, _ in ev.winners}
    shares = [(u * pnl // total, u * pnl % total, pnl, a) for a, _, pnl, _, _ in ev.winners]
    out = {a: h for h, _, _, a in shares}
    left = u - sum(out.values())
    for _, _, _, a in sorted(shares, key=lambda x: (-x[1], -x[2], P.addr_int(x[3])))[:left]:
        out[a] += 1
    return {a: (0, h) for a, h in out.items() if h}


def _needed_size(ev):
    """The engine's closed size for the shortfall: ceil(U x |bankrupt| /
    bad debt), at most the bankrupt size and what the winners hold."""
    if ev.bad_debt == 0 or ev.uncovered == 0:
        return 0
    q = mul_div_up(ev.uncovered, ev.bankrupt_size, ev.bad_debt)
    return min(q, ev.bankrupt_size, sum(s for _, s, _, _, _ in ev.winners))


def _haircut(ev, q, size, pnl_part_cap, remaining):
    """The engine's haircut for q closed: ceil(q x bad debt / |bankrupt|),
    at most what is left of U and the closed part's equity."""
    return max(0, min(mul_div_up(q, ev.bad_debt, ev.bankrupt_size), remaining, pnl_part_cap))


def _drain(ev):
    need = _needed_size(ev)
    if need == 0:
        return {}
    c = ev.bad_debt / ev.bankrupt_size  # haircut per size unit (token units per 1e18-unit)
    scale = None
    ws = []
    for a, s, pnl, notional, equity in ev.winners:
        per_unit = notional / s  # notional per size unit
        lev = notional / equity if equity > 0 else float("inf")
        ws.append((a, s, notional, equity, per_unit, lev))

    def closed(L):
        out = []
        for a, s, notional, equity, per_unit, lev in ws:
            if lev <= L:
                out.append(0.0)
                continue
            denom = per_unit - L * c
            q = s if denom <= 0 or equity <= 0 else (notional - L * equity) / denom
            out.append(min(max(q, 0.0), s))
        return out

    lo, hi = 0.0, max(lev for *_, lev in ws if lev != float("inf")) if any(
        lev != float("inf") for *_, lev in ws) else 1.0
    if sum(closed(0.0)) < need:
        qs = [s for _, s, *_ in ws]
    else:
        for _ in range(200):
            mid = (lo + hi) / 2
            if sum(closed(mid)) >= need:
                lo = mid
            else:
                hi = mid
        qs = closed(lo)
    q_int = [min(int(q), s) for q, (_, s, *_) in zip(qs, ws)]
    left = need - sum(q_int)
    order = sorted(range(len(ws)), key=lambda i: (-(qs[i] - q_int[i]), -ws[i][5], P.addr_int(ws[i][0])))
    while left > 0:
        moved = False
        for i in order:
            if left == 0:
                break
            room = ws[i][1] - q_int[i]
            if room > 0 and qs[i] > 0:
                take = min(room, left)
                q_int[i] += take
                left -= take
                moved = True
        if not moved:
            for i in sorted(range(len(ws)), key=lambda i: (-ws[i][5], P.addr_int(ws[i][0]))):
                take = min(ws[i][1] - q_int[i], left)
                q_int[i] += take
                left -= take
            break
    out = {}
    remaining = ev.uncovered
    for i in sorted(range(len(ws)), key=lambda i: (-ws[i][5], P.addr_int(ws[i][0]))):
        q = q_int[i]
        if q == 0:
            continue
        a, s, notional, equity, _, _ = ws[i]
        part = equity * q // s
        h = _haircut(ev, q, s, part, remaining)
        remaining -= h
        out[a] = (q, h)
    return out


# ---------------------------------------------------------------- metrics

def gini(values):
    """Gini coefficient of non-negative amounts (0: equal, ->1: one pays all)."""
    xs = sorted(values)
    n, total = len(xs), sum(xs)
    if n == 0 or total == 0:
        return 0.0
    cum = sum((i + 1) * x for i, x in enumerate(xs))
    return (2 * cum) / (n * total) - (n + 1) / n


def summarize(events):
    """Per policy, over every shortfall of the run."""
    out = {}
    for policy in POLICIES:
        paid = {}
        eligible = {}
        fills = closed_notional = taken = uncovered = overshoot = 0
        max_lev_before = max_lev_after = 0.0
        drops = []
        for ev in events:
            top_before = top_after = 0.0
            alloc = allocate(policy, ev)
            uncovered += ev.uncovered
            event_taken = sum(h for _, h in alloc.values())
            taken += event_taken
            overshoot += max(0, event_taken - ev.uncovered)
            for a, s, pnl, notional, equity in ev.winners:
                eligible[a] = True
                q, h = alloc.get(a, (0, 0))
                if q or h:
                    fills += 1
                    paid[a] = paid.get(a, 0) + h
                left_notional = notional - notional * q // s
                closed_notional += notional * q // s
                before = notional / equity if equity > 0 else float("inf")
                after_equity = equity - h
                after = (left_notional / after_equity if after_equity > 0 else float("inf")) if left_notional else 0.0
                max_lev_before = max(max_lev_before, before)
                max_lev_after = max(max_lev_after, after)
                top_before, top_after = max(top_before, before), max(top_after, after)
            if ev.winners and top_before != float("inf") and top_after != float("inf"):
                drops.append(top_before - top_after)
        total_paid = sum(paid.values())
        out[policy] = {
            "shortfalls": len(events),
            "uncovered": uncovered,
            "fills": fills,
            "accounts_hit": len(paid),
            "haircuts": taken,
            "socialized": uncovered - taken + overshoot,
            "overshoot": overshoot,
            "closed_notional": closed_notional,
            "largest_share_bps": (max(paid.values()) * 10_000 // total_paid) if total_paid else 0,
            "gini": round(gini([paid.get(a, 0) for a in eligible]), 4),
            "max_leverage_before": _finite(max_lev_before),
            "max_leverage_after": _finite(max_lev_after),
            "mean_top_leverage_drop": round(sum(drops) / len(drops), 4) if drops else 0.0,
        }
    return out


def _finite(x):
    return None if x == float("inf") else round(x, 2)
