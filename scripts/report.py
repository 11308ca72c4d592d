"""The crash report: numbers from the chain's events, charts, one HTML file.

`collect` reads the engine's logs (decoded with scripts/deploy.engine_at's
ABI, which includes PerpExits' and PerpOrders' events: the traders' orders,
who executed them and how many blocks after the first price round later
than the request) and the token's Transfer logs over the
demo's blocks; prices come from the feed's `set_answer` transactions (the
mock feed emits no event) and block times from the blocks. The ADL table's
rank is the target's position in the model's ranking just before the
transaction that deleveraged it (scripts/replay.Replayer.rankings). The
vault's figures are calls at past blocks (eth_call with a block number):
`traders_reserve()` and the open interest before and after the crash, and
one LP share's `convertToAssets` at every block of the crash. Orders
cancelled with reason "vault: capacity" are the capacity refusals.

`write_html` draws the charts (matplotlib, PNG bytes embedded in the page
as data: URIs, so the file references nothing outside itself): the price
path, the insurance fund, open interest, the LP share price, all on one
time axis (seconds of block time from the crash's start, `t0`), and the
loss waterfall. `print_summary` prints the terminal summary.
"""

import base64
import html
import io
import json
from pathlib import Path

from ape import networks


WAD = 10**18


def _logs(address, abis, start, end, topics=None):
    web3 = networks.provider.web3
    flt = {"fromBlock": start, "toBlock": end, "address": address}
    if topics:
        flt["topics"] = topics
    raw = web3.eth.get_logs(flt)
    return list(networks.provider.network.ecosystem.decode_logs(raw, *abis))


def _event_abis(contract):
    return [abi for abi in contract.contract_type.abi if abi.type == "event"]


def collect(p, mid, replayer, start_block, end_block, sc, crash_start_block, meta):
    """Everything the summary and the report show, as plain numbers."""
    from scripts.deploy import engine_at  # not at import: see scripts/demo._run

    engine = engine_at(p.engine.address)
    unit = 10 ** p.token.decimals()
    times = replayer.block_times
    feed = p.feeds[mid].address
    fd = p.feeds[mid].decimals()
    prices = [(b, t, a * 10 ** (18 - fd)) for b, t, f, a in replayer.answers if f == feed]
    crash_prices = [x for x in prices if x[0] > crash_start_block]
    # t = 0: the crash's start on the chain's clock (the demo mines step i at t0 + its seconds)
    t0 = meta.get("crash_t0") or (crash_prices[0][1] if crash_prices else times.get(crash_start_block, 0))

    logs = _logs(engine.address, _event_abis(engine), start_block + 1, end_block)
    ev = {}
    for lg in logs:
        args = dict(lg.event_arguments)
        if "market_id" in args and int(args["market_id"]) != mid:
            continue
        row = {k: (int(v) if isinstance(v, int) else v) for k, v in args.items()}
        row.update(block=lg.block_number, tx=lg.transaction_hash if isinstance(lg.transaction_hash, str)
                   else "0x" + bytes(lg.transaction_hash).hex(), t=times.get(lg.block_number, t0) - t0,
                   log=lg.log_index)
        ev.setdefault(lg.event_name, []).append(row)
    get = lambda name: ev.get(name, [])  # noqa: E731

    # ------------------------------------------------ insurance fund from token transfers
    fund = p.insurance_fund.address
    token_abis = [a for a in _event_abis(p.token) if a.name == "Transfer"]
    transfers = _logs(p.token.address, token_abis, start_block + 1, end_block)
    fund_balance = meta["fund_at_start"]
    fund_series = [(start_block, fund_balance)]
    for lg in transfers:
        a = lg.event_arguments
        sign = (a["receiver"] == fund) - (a["sender"] == fund)
        if sign:
            fund_balance += sign * int(a["value"])
            fund_series.append((lg.block_number, fund_balance))
    fund_before = meta["fund_at_start"]
    for b, bal in fund_series:
        if b <= crash_start_block:
            fund_before = bal
    fund_after = fund_series[-1][1]

    # ------------------------------------------------ open interest from position events
    oi_long = oi_short = 0
    oi_series = [(start_block, 0, 0)]
    deltas = []
    for name, key, sign in (("PositionOpened", "size_delta", 1), ("PositionClosed", "size_closed", -1),
                            ("PositionLiquidated", "size", -1), ("AutoDeleveraged", "size", -1)):
        for r in get(name):
            deltas.append((r["block"], r["log"], r[key], sign))
    for b, _, size, sign in sorted(deltas):
        if size > 0:
            oi_long += sign * size
        else:
            oi_short += sign * -size
        oi_series.append((b, oi_long, oi_short))
    chain_oi = tuple(int(x) for x in p.engine.open_interest(mid))

    # ------------------------------------------------ TP / SL: which trigger fired
    orders = {}
    for r in get("TpSlSet"):
        orders.setdefault(r["account"], []).append(r)
    tp_hits, sl_hits = [], []
    for r in get("TpSlExecuted"):
        last = [o for o in orders.get(r["account"], []) if (o["block"], o["log"]) < (r["block"], r["log"])][-1]
        is_tp = last["take_profit"] != 0 and (last["stop_loss"] == 0 or
                                              abs(r["price"] - last["take_profit"]) <= abs(r["price"] - last["stop_loss"]))
        (tp_hits if is_tp else sl_hits).append(r)

    # ------------------------------------------------ ADL with the model's rank at that moment
    rankings = {rk.tx: rk.ranking for rk in replayer.rankings}
    # leverage at open, from PositionOpened: notional / margin (the first open of each account)
    scale = int(p.engine.SCALE())
    leverage = {}
    for r in get("PositionOpened"):
        if r["account"] not in leverage and r["margin_added"] > 0:
            notional = abs(r["size_delta"]) * r["price"] // scale
            leverage[r["account"]] = (notional + r["margin_added"] // 2) // r["margin_added"]
    adl_rows = []
    for r in get("AutoDeleveraged"):
        ranking = rankings.get(r["tx"], [])
        rank = ranking.index(r["target"]) + 1 if r["target"] in ranking else None
        adl_rows.append({**r, "rank": rank, "candidates": len(ranking), "leverage": leverage.get(r["target"]),
                         "caller": replayer.senders.get(r["tx"], ("?",))[0]})

    # ------------------------------------------------ orders: who executed them, how soon after a later round
    requested = {r["order_id"]: r for r in get("OrderRequested")}  # this market's (filtered by market_id)
    executed = [r for r in get("OrderExecuted") if r["order_id"] in requested]
    cancelled = [r for r in get("OrderCancelled") if r["order_id"] in requested]
    rounds = sorted((b, t) for b, t, _ in prices)
    after_round = {}
    for r in executed:
        r["caller"] = replayer.senders.get(r["tx"], ("?",))[0]
        at = times.get(requested[r["order_id"]]["block"])
        later = [b for b, t in rounds if at is not None and t > at]
        if later:
            d = r["block"] - later[0]
            after_round[d] = after_round.get(d, 0) + 1
    for r in cancelled:
        r["caller"] = replayer.senders.get(r["tx"], ("?",))[0]

    liqs = get("PositionLiquidated")
    for r in liqs:
        r["caller"] = replayer.senders.get(r["tx"], ("?",))[0]
        r["leverage"] = leverage.get(r["account"])
    bad_debt = sum(r["bad_debt"] for r in liqs)
    drawn = sum(r["amount"] for r in get("InsuranceFundDrawn"))
    haircuts = sum(r["haircut"] for r in adl_rows)
    socialized = sum(r["amount"] for r in get("BadDebtSocialized"))
    pending = sum(int(p.engine.adl_pending(mid, i)[0]) for i in range(4))  # the queue (MAX_ADL_JOBS)
    vault = _vault_series(p, times, crash_start_block, end_block)
    before, after = _vault_figures(p, crash_start_block), _vault_figures(p, end_block)
    capacity = [r for r in cancelled if r["reason"] == CAPACITY]
    callers = {}
    for r in [*liqs, *adl_rows, *tp_hits, *sl_hits]:
        callers[r["caller"] if "caller" in r else r.get("keeper")] = 1
    summary = {
        "traders": len(leverage),
        "liquidations": len(liqs),
        "liquidations_with_bad_debt": sum(1 for r in liqs if r["bad_debt"] > 0),
        "bad_debt": bad_debt,
        "fund_before": fund_before,
        "fund_after": fund_after,
        "fund_drawn": drawn,
        "adl_fills": len(adl_rows),
        "adl_targets": len({r["target"] for r in adl_rows}),
        "haircuts": haircuts,
        "socialized": socialized,
        "adl_pending": pending,
        "stop_losses_hit": len(sl_hits),
        "take_profits_hit": len(tp_hits),
        "penalties": sum(r["penalty"] for r in liqs),
        "keeper_rewards": sum(r["keeper_reward"] for r in liqs),
        "oi_from_events": (oi_long, oi_short),
        "oi_on_chain": chain_oi,
        "bad_debt_accounted": bad_debt == drawn + haircuts + socialized + pending,
        "adl_in_rank_order": _in_rank_order(adl_rows),
        "liquidations_by": _count_by(liqs, "caller"),
        "orders_requested": len(requested),
        "orders_executed": len(executed),
        "orders_cancelled": len(cancelled),
        "orders_cancelled_reasons": _count_by(cancelled, "reason"),
        "orders_executed_by": _count_by(executed, "caller"),
        "order_blocks_after_round": dict(sorted(after_round.items())),
        "reserve_before": before["reserve"],
        "reserve_after": after["reserve"],
        "oi_notional_before": before["notional"],
        "oi_notional_after": after["notional"],
        "orders_refused_capacity": len(capacity),
        "share_price_before": before["share_price"],
        "share_price_after": after["share_price"],
        "crash_blocks": meta.get("crash_blocks"),
        "crash_seconds": (max(times.values()) - t0) if times else 0,
        "price_low": min(x[2] for x in crash_prices) if crash_prices else 0,
        "price_start": crash_prices[0][2] if crash_prices else 0,
    }
    return {"scenario": sc, "market": sc["market"], "unit": unit, "t0": t0, "prices": prices,
            "block_times": times, "liquidations": liqs, "adl": adl_rows, "tp": tp_hits, "sl": sl_hits,
            "draws": get("InsuranceFundDrawn"), "socialized": get("BadDebtSocialized"),
            "fund_series": fund_series, "oi_series": oi_series, "crash_start_block": crash_start_block,
            "share_price_series": vault, "share_unit": 10 ** (p.token.decimals() + VAULT_DECIMALS_OFFSET),
            "start_block": start_block, "end_block": end_block, "summary": summary, "meta": meta}


CAPACITY = "vault: capacity"  # an order the vault's cash could not back (OrderCancelled's reason)
VAULT_DECIMALS_OFFSET = 3  # LiquidityVault.DECIMALS_OFFSET: shares have the token's decimals + 3


def _call(contract, method, block, *args):
    """contract.method(*args) as of `block` (eth_call on the node's
    historical state); None if it reverts there."""
    try:
        return getattr(contract, method)(*args, block_id=block)
    except Exception:  # noqa: BLE001 - a view that reverts at that block (a stale price) has no value there
        return None


def _vault_figures(p, block):
    """At `block`: the engine's traders_reserve (the sum of every open
    position's payout cap), the open interest's notional over every
    market (both sides, at the feed's answer), and one LP share's value in
    token units (vault.convertToAssets of one whole share)."""
    scale = int(p.engine.SCALE())
    notional = 0
    for m, f in enumerate(p.feeds):
        oi = _call(p.engine, "open_interest", block, m)
        rd = _call(f, "latestRoundData", block)
        if oi is None or rd is None:
            continue
        price = int(rd[1]) * 10 ** (18 - int(f.decimals()))
        notional += (int(oi[0]) + int(oi[1])) * price // scale
    reserve = _call(p.engine, "traders_reserve", block)
    share = _call(p.vault, "convertToAssets", block, 10 ** (p.token.decimals() + VAULT_DECIMALS_OFFSET))
    return {"reserve": None if reserve is None else int(reserve), "notional": notional,
            "share_price": None if share is None else int(share)}


def _vault_series(p, times, first, last):
    """[(block, assets per whole LP share)] for every block first..last
    (eth_call at each block, one request per block)."""
    web3 = networks.provider.web3
    shares = 10 ** (p.token.decimals() + VAULT_DECIMALS_OFFSET)
    abi = next(a for a in p.vault.contract_type.abi if a.type == "function" and a.name == "convertToAssets")
    data = bytes(networks.provider.network.ecosystem.get_method_selector(abi)) + shares.to_bytes(32, "big")
    out = []
    for b in range(first, last + 1):
        if b not in times and b != first:
            continue
        try:
            raw = web3.eth.call({"to": p.vault.address, "data": data}, b)
        except Exception:  # noqa: BLE001 - reverts at that block: no point
            continue
        out.append((b, int.from_bytes(bytes(raw)[-32:], "big")))
    return out


def _count_by(rows, key):
    out = {}
    for r in rows:
        out[r[key]] = out.get(r[key], 0) + 1
    return out


def _in_rank_order(adl_rows):
    """Within each transaction, the targets hit are ranks 1, 2, 3, ... of the
    model's ranking before it (a fill always takes the best-ranked first)."""
    by_tx = {}
    for r in adl_rows:
        by_tx.setdefault(r["tx"], []).append(r["rank"])
    return all(ranks == list(range(1, len(ranks) + 1)) for ranks in by_tx.values())


# ---------------------------------------------------------------- terminal

def print_summary(data, console):
    from rich.table import Table
    s, u = data["summary"], data["unit"]
    money = lambda x: f"{x / u:,.2f}"  # noqa: E731
    t = Table(title=f"{data['market']} crash: {s['price_start'] / WAD:,.0f} -> low {s['price_low'] / WAD:,.0f}",
              show_header=False)
    t.add_column(style="bold")
    t.add_column(justify="right")
    rows = [
        ("liquidations", f"{s['liquidations']} ({s['liquidations_with_bad_debt']} with bad debt)"),
        ("bad debt", money(s["bad_debt"])),
        ("insurance fund before / after", f"{money(s['fund_before'])} / {money(s['fund_after'])}"),
        ("insurance fund drawn", money(s["fund_drawn"])),
        ("ADL fills (targets)", f"{s['adl_fills']} ({s['adl_targets']})"),
        ("ADL haircuts", money(s["haircuts"])),
        ("socialized loss", money(s["socialized"])),
        ("stop-losses hit", str(s["stop_losses_hit"])),
        ("take-profits hit", str(s["take_profits_hit"])),
        ("liquidation penalties (keeper share)", f"{money(s['penalties'])} ({money(s['keeper_rewards'])})"),
        ("orders requested / executed / cancelled", f"{s['orders_requested']} / {s['orders_executed']} / "
                                                     f"{s['orders_cancelled']}"),
        ("orders executed, blocks after the later round", ", ".join(
            f"{d}: {n}" for d, n in s["order_blocks_after_round"].items()) or "-"),
        *_vault_rows(s, u),
        ("chain time of the crash (seconds, blocks)", f"{s['crash_seconds']} s, {s['crash_blocks']} blocks"),
        ("bad debt = drawn + haircuts + socialized", "yes" if s["bad_debt_accounted"] else "NO"),
        ("ADL fills in the model's rank order", "yes" if s["adl_in_rank_order"] else "NO"),
        ("open interest from events = on chain", "yes" if s["oi_from_events"] == s["oi_on_chain"] else "NO"),
    ]
    for r in rows:
        t.add_row(*r)
    console.print(t)


# ---------------------------------------------------------------- charts

def _png(fig, tight=True):
    """PNG bytes; `tight=False` keeps the figure's own margins (the time
    charts: the same plot area, so their time axes line up on the page)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight" if tight else None)
    return buf.getvalue()


def _pct(part, whole):
    return f"{part * 100 / whole:.1f}%" if part is not None and whole else "-"


def _vault_rows(s, unit):
    """The vault's reserve, capital efficiency, capacity refusals and LP
    share value: (label, value) rows for the summary and the report."""
    m = lambda x: "-" if x is None else f"{x / unit:,.2f}"  # noqa: E731
    share = lambda x: "-" if x is None else f"{x / unit:,.6f}"  # noqa: E731
    return [
        ("vault reserve (sum of position payout caps), before / after the crash",
         f"{m(s['reserve_before'])} / {m(s['reserve_after'])}"),
        ("open-interest notional, before / after", f"{m(s['oi_notional_before'])} / {m(s['oi_notional_after'])}"),
        ("capital efficiency (reserve / open-interest notional), before / after",
         f"{_pct(s['reserve_before'], s['oi_notional_before'])} / {_pct(s['reserve_after'], s['oi_notional_after'])}"),
        ("orders refused for vault capacity (cancelled 'vault: capacity')", str(s["orders_refused_capacity"])),
        ("LP share value, before / after (tokens per share)",
         f"{share(s['share_price_before'])} / {share(s['share_price_after'])}"),
    ]


def charts(data):
    """{name: png bytes}. Every chart over time shares one axis: seconds of
    chain time from the crash's start (block timestamps; the demo mines
    each price step at its scenario second)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    out = {}
    u, t0, times = data["unit"], data["t0"], data["block_times"]
    thousands = FuncFormatter(lambda x, _: f"{x:,.0f}")
    first_t = min(times.values()) if times else t0
    at = lambda b: times.get(b, first_t) - t0  # noqa: E731  seconds from the crash's start
    end_t = max([at(b) for b in times] + [0])
    pad = max(1.0, end_t * 0.03)
    x_lo, x_hi = -pad * 2, end_t + pad

    def clipped(series):
        """[(t, value...)] from [(block, value...)]: points before the window
        start at its left edge (the level the crash starts from)."""
        pts = []
        for row in series:
            t = at(row[0])
            if t < x_lo:
                pts = [(x_lo, *row[1:])]
            else:
                pts.append((t, *row[1:]))
        return pts + ([(x_hi, *pts[-1][1:])] if pts else [])

    def finish(fig, ax, title, ylabel, overlay=True):
        ax.axvline(0, color="#999", lw=0.8, ls="--", label="crash starts")
        ax.set_xlabel("seconds from the start of the crash (block time)")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.set_xlim(x_lo, x_hi)
        if overlay:
            price_overlay(ax)
        ax.grid(alpha=0.3)
        ax.legend(loc="upper right", fontsize=8, framealpha=0.9)
        h = fig.get_figheight()  # margins in inches: every time chart's plot spans the same pixels
        fig.subplots_adjust(left=0.9 / 10, right=1 - 0.9 / 10, bottom=0.6 / h, top=1 - 0.4 / h)
        png = _png(fig, tight=False)
        plt.close(fig)
        return png

    # price path with liquidation, ADL and stop markers
    fig, ax = plt.subplots(figsize=(10, 4.6))
    price_pts = clipped([(b, pr / WAD) for b, _, pr in data["prices"]])
    ax.step([x for x, _ in price_pts], [y for _, y in price_pts], where="post", color="#1f3b73", lw=2,
            label=f"{data['market']} oracle price", zorder=2)
    clean = [r for r in data["liquidations"] if r["bad_debt"] == 0]
    bad = [r for r in data["liquidations"] if r["bad_debt"] > 0]
    ax.scatter([r["t"] for r in clean], [r["price"] / WAD for r in clean], marker="x", color="#d9822b", s=36,
               label=f"liquidation, equity left ({len(clean)})", zorder=3)
    ax.scatter([r["t"] for r in bad], [r["price"] / WAD for r in bad], marker="X", color="#c0392b", s=60,
               label=f"liquidation with bad debt ({len(bad)})", zorder=4)
    clusters = {}
    for r in data["liquidations"]:
        key = (r["t"], r["price"])
        clusters[key] = clusters.get(key, 0) + 1
    for (t, pr), n in clusters.items():
        if n > 1:
            ax.annotate(f"{n}", (t, pr / WAD), xytext=(5, 5), textcoords="offset points", fontsize=7,
                        color="#c0392b")
    if data["adl"]:
        price_at = {r["tx"]: r["price"] for r in data["liquidations"]}
        adl_pts = {r["tx"]: (r["t"], price_at.get(r["tx"], r["bankruptcy_price"]) / WAD) for r in data["adl"]}
        ax.scatter([x for x, _ in adl_pts.values()], [y for _, y in adl_pts.values()], marker="v",
                   color="#7d3c98", s=70, zorder=5, alpha=0.85,
                   label=f"ADL ({len(data['adl'])} fills in {len(adl_pts)} transactions)")
    for rows, marker, color, label in ((data["sl"], "s", "#2e8b57", "stop-loss executed"),
                                       (data["tp"], "D", "#2a7fba", "take-profit executed")):
        if rows:
            ax.scatter([r["t"] for r in rows], [r["price"] / WAD for r in rows], marker=marker, facecolors="none",
                       edgecolors=color, s=34, label=f"{label} ({len(rows)})", zorder=3)
    ax.yaxis.set_major_formatter(thousands)
    out["price"] = finish(fig, ax, "Price path, liquidations and ADL", "price (USD)", overlay=False)

    def price_overlay(ax):
        """The oracle price on a right-hand axis, same time axis."""
        ax2 = ax.twinx()
        ax2.step([x for x, _ in price_pts], [y for _, y in price_pts], where="post", color="#888", lw=1, ls=":")
        ax2.set_ylabel("price (USD, dotted)", color="#888")
        ax2.yaxis.set_major_formatter(thousands)
        ax2.tick_params(axis="y", colors="#888")
        ax2.set_xlim(x_lo, x_hi)
        ax.set_zorder(ax2.get_zorder() + 1)  # the legend above the price line
        ax.patch.set_visible(False)
        return ax2

    # insurance fund
    fig, ax = plt.subplots(figsize=(10, 3.4))
    fs = clipped(data["fund_series"])
    ax.step([t for t, _ in fs], [v / u for _, v in fs], where="post", color="#117a65", lw=2, label="balance")
    ax.fill_between([t for t, _ in fs], [v / u for _, v in fs], step="post", color="#117a65", alpha=0.12)
    for i, r in enumerate(data["draws"]):
        ax.axvline(at(r["block"]), color="#c0392b", lw=0.6, alpha=0.35, label="draw for bad debt" if i == 0 else None)
    adl_ts = sorted({at(r["block"]) for r in data["adl"]})
    if adl_ts:
        ax.scatter(adl_ts, [0] * len(adl_ts), marker="v", color="#7d3c98", s=30, zorder=4,
                   label="ADL (fund exhausted)", clip_on=False)
    ax.yaxis.set_major_formatter(thousands)
    out["fund"] = finish(fig, ax, "Insurance fund balance", "balance (mUSD)")

    # open interest per side
    fig, ax = plt.subplots(figsize=(10, 3.4))
    oi = clipped(data["oi_series"])
    ax.step([t for t, _, _ in oi], [lo / WAD for _, lo, _ in oi], where="post", color="#27ae60", lw=2, label="long")
    ax.step([t for t, _, _ in oi], [sh / WAD for _, _, sh in oi], where="post", color="#c0392b", lw=2, label="short")
    out["oi"] = finish(fig, ax, "Open interest per side", f"open interest ({data['market'].split('-')[0]})")

    # LP share value
    fig, ax = plt.subplots(figsize=(10, 3.4))
    sp = clipped(data["share_price_series"])
    ax.step([t for t, _ in sp], [v / u for _, v in sp], where="post", color="#2a7fba", lw=2,
            label="value of one LP share (vault.convertToAssets)")
    for i, r in enumerate(data["socialized"]):
        ax.axvline(at(r["block"]), color="#c0392b", lw=0.6, alpha=0.5, label="loss socialized" if i == 0 else None)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:,.4f}"))
    out["share_price"] = finish(fig, ax, "LP share price", "tokens per share")

    # loss waterfall: bad debt, then who covered it
    fig, ax = plt.subplots(figsize=(10, 3.8))
    s = data["summary"]
    parts = [("insurance fund", s["fund_drawn"], "#117a65"), ("ADL haircuts", s["haircuts"], "#7d3c98"),
             ("socialized (LPs)", s["socialized"], "#2a7fba"), ("ADL still pending", s["adl_pending"], "#d9822b")]
    left = s["bad_debt"] - sum(v for _, v, _ in parts)
    labels = ["bad debt"] + [n for n, _, _ in parts] + ["uncovered"]
    ax.bar(0, s["bad_debt"] / u, color="#c0392b")
    ax.annotate(f"{s['bad_debt'] / u:,.0f}", (0, s["bad_debt"] / u), ha="center", va="bottom", fontsize=8)
    level = s["bad_debt"]
    for i, (name, v, color) in enumerate(parts, start=1):
        ax.plot([i - 1.4, i + 0.4], [level / u] * 2, color="#999", lw=0.6, ls=":")  # the level it starts from
        ax.bar(i, -v / u, bottom=level / u, color=color)
        ax.annotate(f"-{v / u:,.0f}" if v else "0", (i, level / u), ha="center", va="bottom", fontsize=8)
        level -= v
    ax.bar(len(parts) + 1, left / u, color="#555")
    ax.annotate(f"{left / u:,.0f}", (len(parts) + 1, max(left, 0) / u), ha="center", va="bottom", fontsize=8)
    ax.set_ylim(0, max(s["bad_debt"], 1) / u * 1.12)
    ax.set_xticks(range(len(labels)), labels)
    ax.yaxis.set_major_formatter(thousands)
    ax.set_ylabel("mUSD")
    ax.set_title("Loss waterfall: bad debt, then the insurance fund, ADL haircuts and socialized loss"
                 if s["bad_debt"] else "Loss waterfall: no bad debt")
    ax.grid(alpha=0.3, axis="y")
    out["waterfall"] = _png(fig)
    plt.close(fig)
    return out


CHARTS = ("price", "fund", "oi", "share_price", "waterfall")  # every chart, in the report's order


# ---------------------------------------------------------------- html

CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: .6em 0; } td, th { padding: .25em .7em; border-bottom: 1px solid #eee; }
th { text-align: left; background: #f6f6f6; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
.pass { color: #117a65; font-weight: bold; } .fail { color: #c0392b; font-weight: bold; }
code, .a { font-family: ui-monospace, monospace; font-size: .92em; } img { max-width: 100%; }
.warn { background: #fdecea; border-left: 4px solid #c0392b; padding: .5em 1em; white-space: pre-wrap; }
"""


def _short(a):
    return f"{a[:8]}…{a[-4:]}"


def write_json(data, out_dir):
    """data.json next to the report: every row and number it shows."""
    def plain(x):
        if isinstance(x, dict):
            return {str(k): plain(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [plain(v) for v in x]
        if isinstance(x, bool) or x is None or isinstance(x, str):
            return x
        if isinstance(x, int):
            return int(x)
        return str(x)
    path = Path(out_dir) / "data.json"
    path.write_text(json.dumps(plain(data), indent=1))
    return path


def load_json(path):
    """data.json back into the shape `charts` and `write_html` take."""
    data = json.loads(Path(path).read_text())
    data["block_times"] = {int(k): v for k, v in data["block_times"].items()}
    return data


def write_html(data, out_dir):
    out_dir = Path(out_dir)
    write_json(data, out_dir)
    imgs = charts(data)
    for name, png in imgs.items():
        (out_dir / f"{name}.png").write_bytes(png)
    s, u, meta, sc = data["summary"], data["unit"], data["meta"], data["scenario"]
    money = lambda x: f"{x / u:,.2f}"  # noqa: E731
    esc = html.escape
    img = lambda n: f'<img alt="{n}" src="data:image/png;base64,{base64.b64encode(imgs[n]).decode()}">'  # noqa: E731
    ok = meta["replay_ok"]
    rows = [
        ("Liquidations", f"{s['liquidations']} ({s['liquidations_with_bad_debt']} with bad debt)"),
        ("Bad debt", money(s["bad_debt"])),
        ("Insurance fund before the crash", money(s["fund_before"])),
        ("Insurance fund after", money(s["fund_after"])),
        ("Drawn from the fund", money(s["fund_drawn"])),
        ("ADL fills (distinct targets)", f"{s['adl_fills']} ({s['adl_targets']})"),
        ("ADL haircuts", money(s["haircuts"])),
        ("Socialized loss (vault)", money(s["socialized"])),
        ("ADL still pending", money(s["adl_pending"])),
        ("Stop-losses hit", s["stop_losses_hit"]),
        ("Take-profits hit", s["take_profits_hit"]),
        ("Liquidation penalties (keeper share)", f"{money(s['penalties'])} ({money(s['keeper_rewards'])})"),
        ("Orders requested / executed / cancelled", f"{s['orders_requested']} / {s['orders_executed']} / "
                                                    f"{s['orders_cancelled']}"),
        ("Orders executed N blocks after the first later price round (N: count)", ", ".join(
            f"{d}: {n}" for d, n in s["order_blocks_after_round"].items()) or "-"),
        *((k[0].upper() + k[1:], v) for k, v in _vault_rows(s, u)),
        ("Chain time of the crash", f"{s['crash_seconds']} s in {s['crash_blocks']} blocks"),
        ("Bad debt = drawn + haircuts + socialized + pending", "yes" if s["bad_debt_accounted"] else "NO"),
        ("ADL fills in the model's rank order", "yes" if s["adl_in_rank_order"] else "NO"),
        ("Open interest from events equals the chain's", "yes" if s["oi_from_events"] == s["oi_on_chain"] else "NO"),
    ]
    names = {meta["keeper_account"]: "keeper process", meta["fallback_account"]: "fallback keeper"}
    rows.append(("Liquidated by", ", ".join(f"{names.get(a, a)}: {n}" for a, n in s["liquidations_by"].items()) or "-"))
    rows.append(("Orders executed by", ", ".join(f"{names.get(a, a)}: {n}" for a, n in s["orders_executed_by"].items())
                 or "-"))
    summary_html = "".join(f"<tr><th>{esc(str(k))}</th><td class=n>{esc(str(v))}</td></tr>" for k, v in rows)
    adl_html = "".join(
        f"<tr><td class=n>{r['block']}</td><td class=n>{r['t']:+d}s</td><td class=a>{_short(r['target'])}</td>"
        f"<td class=n>{r['leverage'] or '?'}x</td><td class=n>{r['rank'] if r['rank'] else '?'} / {r['candidates']}</td>"
        f"<td class=n>{abs(r['size']) / WAD:,.5f}</td><td class=n>{r['bankruptcy_price'] / WAD:,.2f}</td>"
        f"<td class=n>{money(r['haircut'])}</td><td class=a>{_short(r['bankrupt'])}</td></tr>"
        for r in data["adl"])
    liq_html = "".join(
        f"<tr><td class=n>{r['block']}</td><td class=n>{r['t']:+d}s</td><td class=a>{_short(r['account'])}</td>"
        f"<td>{'long' if r['size'] > 0 else 'short'}</td><td class=n>{r['leverage'] or '?'}x</td>"
        f"<td class=n>{abs(r['size']) / WAD:,.5f}</td><td class=n>{r['price'] / WAD:,.2f}</td>"
        f"<td class=n>{money(r['penalty'])}</td><td class=n>{money(r['bad_debt'])}</td></tr>"
        for r in data["liquidations"])
    warn_html = "".join(f'<p class="warn">{esc(w)}</p>' for w in meta.get("warnings", []))
    mism = meta.get("mismatches", []) + meta.get("state_diffs", [])
    mism_html = ("<ul>" + "".join(f"<li><code>{esc(m)}</code></li>" for m in mism[:50]) + "</ul>") if mism else ""
    path = [f"{t}s: {p:,}" for t, p in sc["crash"]]
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>Backstop crash report: {esc(sc['name'])}</title>
<style>{CSS}</style></head><body>
<h1>Backstop crash report: {esc(sc['name'])}</h1>
<p>{esc(data['market'])} from {s['price_start'] / WAD:,.0f} to a low of {s['price_low'] / WAD:,.0f}
({(s['price_low'] - s['price_start']) * 100 / max(s['price_start'], 1):+.1f}%), blocks {data['start_block']}–{data['end_block']},
{s['traders']} traders. Keeper: <b>{esc(meta['keeper_mode'])}</b>
(<span class=a>{esc(meta['keeper_account'])}</span>). Model replay of {meta['replay_txs']} transactions:
<span class="{'pass' if ok else 'fail'}">{'PASS' if ok else 'FAIL'}</span>. Run took {meta['wall_seconds']} s.</p>
{warn_html}{mism_html}
<p>Every number here is decoded from the chain: the engine's events (PerpExits' events included), the
token's <code>Transfer</code> events for the insurance fund, the feed's <code>set_answer</code> transactions
for the price path, calls at past blocks for the vault. Time is block time: every chart's axis is seconds
from the crash's start, and each price step sits at its scenario second. The rank is the target's place in
the model's ADL ranking just before the transaction that deleveraged it.</p>
<h2>Summary</h2><table>{summary_html}</table>
<h2>Price path</h2>{img('price')}
<h2>Insurance fund</h2>{img('fund')}
<h2>Open interest</h2>{img('oi')}
<h2>LP share price</h2>{img('share_price')}
<h2>Where the bad debt went</h2>{img('waterfall')}
<h2>Who was deleveraged</h2>
<table><tr><th>block</th><th>time</th><th>target</th><th>leverage</th><th>rank / candidates</th><th>size closed</th>
<th>bankruptcy price</th><th>haircut</th><th>bankrupt account</th></tr>{adl_html}</table>
<h2>Liquidations</h2>
<table><tr><th>block</th><th>time</th><th>account</th><th>side</th><th>leverage</th><th>size</th><th>price</th>
<th>penalty</th><th>bad debt</th></tr>{liq_html}</table>
<h2>Scenario</h2><p>seed {sc['seed']}, insurance fund {sc['insurance_fund']:,}, {sc['traders']['count']} traders
({sc['traders']['long_percent']}% long), {sc['lps']['count']} LPs; crash path: {esc(', '.join(path))}.</p>
</body></html>"""
    path_out = out_dir / "report.html"
    path_out.write_text(page)
    return path_out
