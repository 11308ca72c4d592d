"""The mutants `make mutants` applies, one at a time (tests/mutants/run.py).

Each mutant is a list of edits (file, exact old text, new text). The old
text must occur exactly once in the file as it is when the run starts; a
mutant with an edit whose old text is missing (the code moved) is reported
"not applicable", one whose old text occurs twice "ambiguous", and neither
is applied. No edit changes a revert reason string: tests/model/test_docs.py
holds the reasons in contracts/ equal to docs/revert-reasons.md, and a
changed string would be "killed" by the docs, not by a property.

`where` says which side changes: "both" (contract and model alike, so only a
property can notice), "contract" or "model" (the differential comparison
should notice at once, if the machine reaches the line).

`must` marks the six changes issue 19 requires the machine alone to catch.

A model edit may only name what the edited module already has in scope:
a rounding flip in model/adl.py or model/perp_exits.py reaches the other
helper as `margin.mul_div_down` / `margin.mul_div_up` (model/margin.py
imports both), so the mutant is the flip, not a NameError.
"""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Edit:
    file: str
    old: str
    new: str


@dataclass(frozen=True)
class Mutant:
    name: str
    what: str
    where: str
    edits: tuple = field(default_factory=tuple)
    must: bool = False


def _m(name, what, where, *edits, must=False):
    return Mutant(name, what, where, tuple(Edit(*e) for e in edits), must)


MUTANTS = [
    # ---- the six the issue names
    _m("liq-boundary", "liquidate accepts equity == maintenance (< to <=)", "both",
       ("contracts/PerpExits.vy",
        'assert equity < convert(margin.requirement(old.size, price, p.mmf, positions.SCALE), int256), "position healthy"',
        'assert equity <= convert(margin.requirement(old.size, price, p.mmf, positions.SCALE), int256), "position healthy"'),
       ("model/perp_exits.py",
        'check(equity < margin.requirement(old.size, price, p.mmf, scale), "position healthy")',
        'check(equity <= margin.requirement(old.size, price, p.mmf, scale), "position healthy")'),
       must=True),
    _m("tie-break", "equal ADL scores rank the higher address first", "both",
       ("contracts/adl.vy",
        "convert(account, uint256) < convert(other, uint256)",
        "convert(account, uint256) > convert(other, uint256)"),
       ("model/adl.py", "P.addr_int(account) < P.addr_int(other)", "P.addr_int(account) > P.addr_int(other)"),
       ("model/adl.py", "scored.append((-score_m, P.addr_int(m), m))", "scored.append((-score_m, -P.addr_int(m), m))"),
       must=True),
    _m("staleness", "a price exactly max_price_age old is stale (<= to <)", "both",
       ("contracts/positions.vy",
        'assert block.timestamp - updated <= (s0 >> 160) & (2**32 - 1), "stale price"',
        'assert block.timestamp - updated < (s0 >> 160) & (2**32 - 1), "stale price"'),
       ("model/positions.py",
        'check(w.now - f.updated_at <= w.e.params[mid].max_price_age, "stale price")',
        'check(w.now - f.updated_at < w.e.params[mid].max_price_age, "stale price")'),
       must=True),
    _m("stop-at-liq", "a stop-loss exactly at the liquidation price is accepted", "both",
       ("contracts/PerpExits.vy", 'stop_loss_price > liq, "tp_sl: stop beyond liquidation"',
        'stop_loss_price >= liq, "tp_sl: stop beyond liquidation"'),
       ("contracts/PerpExits.vy", 'stop_loss_price < liq, "tp_sl: stop beyond liquidation"',
        'stop_loss_price <= liq, "tp_sl: stop beyond liquidation"'),
       ("model/perp_exits.py", 'sl > liq, "tp_sl: stop beyond liquidation"', 'sl >= liq, "tp_sl: stop beyond liquidation"'),
       ("model/perp_exits.py", 'sl < liq, "tp_sl: stop beyond liquidation"', 'sl <= liq, "tp_sl: stop beyond liquidation"'),
       must=True),
    _m("zero-pnl-scan", "the completeness scan counts a zero-PnL position as profitable", "both",
       ("contracts/adl.vy", "        if pnl_m <= 0:\n            continue\n        unlisted_profitable = True",
        "        if pnl_m < 0:\n            continue\n        unlisted_profitable = True"),
       ("model/adl.py", "        if pnl_m <= 0:\n            continue\n        unlisted_profitable = True",
        "        if pnl_m < 0:\n            continue\n        unlisted_profitable = True"),
       must=True),
    _m("long-funding-x2", "longs owe twice their funding", "both",
       ("contracts/funding.vy",
        "return fp.div_ceil(size * (index_now - index_at), convert(scale, int256))",
        "return fp.div_ceil(size * (index_now - index_at), convert(scale, int256)) * (1 + convert(size > 0, int256))"),
       ("model/funding.py", "return div_ceil(size * (index_now - index_at), scale)",
        "return div_ceil(size * (index_now - index_at), scale) * (2 if size > 0 else 1)"),
       must=True),
    # ---- the same boundary moved everywhere at once
    _m("liq-boundary-all", "liquidate and both is_liquidatable views use <= (a consistent boundary)", "both",
       ("contracts/PerpExits.vy",
        'assert equity < convert(margin.requirement(old.size, price, p.mmf, positions.SCALE), int256), "position healthy"',
        'assert equity <= convert(margin.requirement(old.size, price, p.mmf, positions.SCALE), int256), "position healthy"'),
       ("contracts/PerpEngine.vy", "return positions._equity(pos, market_id, price) < convert(",
        "return positions._equity(pos, market_id, price) <= convert("),
       ("model/perp_exits.py",
        'check(equity < margin.requirement(old.size, price, p.mmf, scale), "position healthy")',
        'check(equity <= margin.requirement(old.size, price, p.mmf, scale), "position healthy")'),
       ("model/perp_engine.py", "return P._equity(w, pos, mid, price) < margin.requirement(",
        "return P._equity(w, pos, mid, price) <= margin.requirement(")),
    _m("liq-boundary-contract", "liquidate accepts equity == maintenance, contract only", "contract",
       ("contracts/PerpExits.vy",
        'assert equity < convert(margin.requirement(old.size, price, p.mmf, positions.SCALE), int256), "position healthy"',
        'assert equity <= convert(margin.requirement(old.size, price, p.mmf, positions.SCALE), int256), "position healthy"')),
    # ---- rounding flips
    _m("haircut-down", "ADL haircut rounded down", "both",
       ("contracts/adl.vy", "haircut: uint256 = min(fp.mul_div_up(q, job.bad_debt, abs_bankrupt), remaining)",
        "haircut: uint256 = min(fp.mul_div_down(q, job.bad_debt, abs_bankrupt), remaining)"),
       ("model/adl.py", "haircut = min(mul_div_up(q, job.bad_debt, abs_bankrupt), remaining)",
        "haircut = min(margin.mul_div_down(q, job.bad_debt, abs_bankrupt), remaining)")),
    _m("adl-size-down", "ADL size per target rounded down", "both",
       ("contracts/adl.vy", "fp.mul_div_up(remaining, abs_bankrupt, job.bad_debt)",
        "fp.mul_div_down(remaining, abs_bankrupt, job.bad_debt)"),
       ("model/adl.py", "mul_div_up(remaining, abs_bankrupt, job.bad_debt)",
        "margin.mul_div_down(remaining, abs_bankrupt, job.bad_debt)")),
    _m("requirement-down", "margin requirements and fees rounded down", "both",
       ("contracts/margin.vy", "return fp.mul_div_up(self.notional_up(size, price, scale), fraction, WAD)",
        "return fp.mul_div_down(self.notional_up(size, price, scale), fraction, WAD)"),
       ("model/margin.py", "return mul_div_up(notional_up(size, price, scale), fraction, WAD)",
        "return mul_div_down(notional_up(size, price, scale), fraction, WAD)")),
    _m("requirement-down-contract", "margin requirements and fees rounded down, contract only", "contract",
       ("contracts/margin.vy", "return fp.mul_div_up(self.notional_up(size, price, scale), fraction, WAD)",
        "return fp.mul_div_down(self.notional_up(size, price, scale), fraction, WAD)")),
    _m("entry-rounding-swapped", "average entry price rounded the other way on each side", "both",
       ("contracts/positions.vy",
        "return fp.mul_div_up(s * entry + d * price, 1, s + d)\n    return fp.mul_div_down(s * entry + d * price, 1, s + d)",
        "return fp.mul_div_down(s * entry + d * price, 1, s + d)\n    return fp.mul_div_up(s * entry + d * price, 1, s + d)"),
       ("model/positions.py",
        "return mul_div_up(s * entry + d * price, 1, s + d)\n    return mul_div_down(s * entry + d * price, 1, s + d)",
        "return mul_div_down(s * entry + d * price, 1, s + d)\n    return mul_div_up(s * entry + d * price, 1, s + d)")),
    _m("keeper-reward-up", "keeper reward rounded up", "both",
       ("contracts/PerpExits.vy", "reward = fp.mul_div_down(penalty, p.keeper_share, positions.WAD)",
        "reward = fp.mul_div_up(penalty, p.keeper_share, positions.WAD)"),
       ("model/perp_exits.py", "reward = mul_div_down(penalty, p.keeper_share, WAD)",
        "reward = margin.mul_div_up(penalty, p.keeper_share, WAD)")),
    _m("fund-fee-up-contract", "the fund's share of an open's fee rounded up, contract only", "contract",
       ("contracts/PerpOrders.vy", "fund_fee: uint256 = fp.mul_div_down(fee, p.insurance_share, positions.WAD)",
        "fund_fee: uint256 = fp.mul_div_up(fee, p.insurance_share, positions.WAD)")),
    _m("funding-owed-down", "funding owed rounded down (in the trader's favour)", "both",
       ("contracts/funding.vy", "return fp.div_ceil(size * (index_now - index_at), convert(scale, int256))",
        "return fp.div_floor(size * (index_now - index_at), convert(scale, int256))"),
       ("model/funding.py", "return div_ceil(size * (index_now - index_at), scale)",
        "return div_floor(size * (index_now - index_at), scale)")),
    _m("upnl-up", "unrealised PnL rounded up (in the trader's favour)", "both",
       ("contracts/margin.vy",
        "return fp.div_floor(size * (convert(price, int256) - convert(entry, int256)), convert(scale, int256))",
        "return fp.div_ceil(size * (convert(price, int256) - convert(entry, int256)), convert(scale, int256))"),
       ("model/margin.py", "return div_floor(size * (price - entry), scale)",
        "return div_ceil(size * (price - entry), scale)")),
    # ---- more boundaries and dropped checks
    _m("no-later-price", "an order executes on a round from its own second (> to >=)", "both",
       ("contracts/PerpOrders.vy", 'assert updated > o.requested_at, "order: no later price"',
        'assert updated >= o.requested_at, "order: no later price"'),
       ("model/perp_orders.py", 'check(updated > o.requested_at, "order: no later price")',
        'check(updated >= o.requested_at, "order: no later price")')),
    _m("expiry-boundary", "an order at exactly its deadline is expired (<= to <)", "both",
       ("contracts/PerpOrders.vy", 'assert block.timestamp <= o.expires_at, "order: expired"',
        'assert block.timestamp < o.expires_at, "order: expired"'),
       ("model/perp_orders.py", 'check(w.now <= o.expires_at, "order: expired")',
        'check(w.now < o.expires_at, "order: expired")')),
    _m("oi-cap-boundary", "long open interest exactly at the cap refused (<= to <)", "both",
       ("contracts/PerpOrders.vy", "convert(size_delta, uint256) <= p.max_open_interest",
        "convert(size_delta, uint256) < p.max_open_interest"),
       ("model/perp_orders.py", "st.long_oi + size_delta <= p.max_open_interest",
        "st.long_oi + size_delta < p.max_open_interest")),
    _m("initial-boundary", "an open at exactly initial margin cancelled (>= to >)", "both",
       ("contracts/PerpOrders.vy",
        'assert equity >= convert(margin.requirement(new.size, price, p.imf, positions.SCALE), int256), "margin: below initial"',
        'assert equity > convert(margin.requirement(new.size, price, p.imf, positions.SCALE), int256), "margin: below initial"'),
       ("model/perp_orders.py", 'check(equity_ >= margin.requirement(new.size, price, p.imf, scale), "margin: below initial")',
        'check(equity_ > margin.requirement(new.size, price, p.imf, scale), "margin: below initial")')),
    _m("not-ranked-dropped", "the completeness scan never refuses a skipped higher rank", "both",
       ("contracts/adl.vy", 'assert not self._outranks(score_m, m, last_score, last_target), "adl: not ranked"',
        'assert score_m == score_m, "adl: not ranked"'),
       ("model/adl.py", 'check(not _outranks(score_m, m, last_score, last_target), "adl: not ranked")',
        'check(True, "adl: not ranked")')),
    _m("fund-draws-half", "the insurance fund covers at most half its balance before ADL", "both",
       ("contracts/PerpExits.vy", "covered: uint256 = min(fund_balance, bad_debt)",
        "covered: uint256 = min(fund_balance // 2, bad_debt)"),
       ("model/perp_exits.py", "covered = min(fund_balance, bad_debt)", "covered = min(fund_balance // 2, bad_debt)")),
    _m("zero-pnl-target", "a zero-PnL position may be listed as an ADL target", "both",
       ("contracts/adl.vy", 'assert pnl_all > 0, "adl: not in profit"', 'assert pnl_all >= 0, "adl: not in profit"'),
       ("model/adl.py", 'check(pnl_all > 0, "adl: not in profit")', 'check(pnl_all >= 0, "adl: not in profit")')),
]
