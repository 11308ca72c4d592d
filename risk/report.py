"""The lab's outputs: the policy table (Markdown and rich), PNG charts and an
HTML page beside a JSON file.

Charts (matplotlib, Agg): the fund-size curve (probability of no socialized
loss and of no ADL per fund size, with the fund need's distribution); a
waterfall per ADL policy (bad debt -> paid by the fund -> taken from
winners -> socialized); concentration per policy (largest single share,
Gini); the LP share price and the price along the path.
"""

import html
import json
from pathlib import Path

from risk.policies import POLICIES

UNIT = 10**6
NAMES = {"ranking": "Backstop ranking (on chain)", "pro_rata": "pro-rata on PnL", "drain": "leverage-draining"}
ROWS = (
    ("shortfalls", "shortfalls (liquidations ADL had to cover)", "n"),
    ("uncovered", "uncovered debt", "usd"),
    ("fills", "ADL fills", "n"),
    ("accounts_hit", "accounts hit", "n"),
    ("haircuts", "taken from winners", "usd"),
    ("overshoot", "overshoot (taken beyond the uncovered debt)", "usd"),
    ("socialized", "socialized (left to LPs)", "usd"),
    ("closed_notional", "notional force-closed", "usd"),
    ("largest_share_bps", "largest single share", "bps"),
    ("gini", "Gini of haircuts over winners", "x"),
    ("max_leverage_before", "highest winner leverage before", "lev"),
    ("max_leverage_after", "highest winner leverage left", "lev"),
    ("mean_top_leverage_drop", "top winner leverage cut, mean per shortfall", "dlev"),
)


def _fmt(v, kind):
    if v is None:
        return "-"
    if kind == "usd":
        return f"{v / UNIT:,.0f}"
    if kind == "bps":
        return f"{v / 100:.1f}%"
    if kind == "lev":
        return f"{v:.1f}x"
    if kind == "dlev":
        return f"{v:+.2f}x"
    if kind == "x":
        return f"{v:.3f}"
    return f"{v:,}"


def run_rows(res):
    """The run's own metrics as (label, value) strings."""
    u = lambda k: f"{res[k] / UNIT:,.0f}"  # noqa: E731
    lp = res["series"]["lp_assets"], res["series"]["lp_supply"]
    share = [a / s for a, s in zip(*lp) if s] or [1]
    share = [x / share[0] for x in share] if share[0] else share
    return [
        ("accounts / markets / ticks", f"{res['accounts']:,} / {res['markets']} / {res['ticks']}"),
        ("opened (refused: capacity, other)", f"{res['opened']:,} ({res['capacity_refusals']:,}, "
                                              f"{sum(res['refusals'].values()) - res['capacity_refusals']:,})"),
        ("liquidations (bankrupt)", f"{res['liquidations']:,} ({res['bankrupt_liquidations']:,})"),
        ("bad debt", u("bad_debt")),
        ("fund: start -> end (drawn)", f"{res['fund_start'] / UNIT:,.0f} -> {res['fund_end'] / UNIT:,.0f} "
                                       f"({res['fund_drawn'] / UNIT:,.0f})"),
        ("ADL fills (accounts hit)", f"{res['adl_fills']:,} ({res['accounts_hit']:,})"),
        ("socialized loss", u("socialized_loss")),
        ("keeper rewards", u("keeper_rewards")),
        ("TP/SL executed", f"{res['tp_sl_executed']:,}"),
        ("LP share value (start = 1): low, end", f"{min(share):.4f}, {share[-1]:.4f}"),
    ]


def run_markdown(results, labels):
    """The runs' own metrics, a column per scenario."""
    rows = [run_rows(r) for r in results]
    lines = ["| metric | " + " | ".join(labels) + " |", "|" + "---|" * (len(labels) + 1)]
    for i, (label, _) in enumerate(rows[0]):
        lines.append(f"| {label} | " + " | ".join(r[i][1] for r in rows) + " |")
    return "\n".join(lines)


def policy_markdown(results, labels):
    """One Markdown table: a column per (scenario, policy)."""
    head = ["metric"] + [f"{lab}: {NAMES[p]}" for lab in labels for p in POLICIES]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, label, kind in ROWS:
        cells = [label]
        for res in results:
            for p in POLICIES:
                cells.append(_fmt(res["policies"][p][key], kind))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def policy_rich(res, title):
    from rich.table import Table
    t = Table(title=title)
    t.add_column("metric")
    for p in POLICIES:
        t.add_column(NAMES[p], justify="right")
    for key, label, kind in ROWS:
        t.add_row(label, *[_fmt(res["policies"][p][key], kind) for p in POLICIES])
    return t


# ---------------------------------------------------------------- charts

def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def chart_waterfall(res, path):
    plt = _plt()
    fig, axes = plt.subplots(1, len(POLICIES), figsize=(12, 3.6), sharey=True)
    fund = res["fund_drawn"] / UNIT
    for ax, p in zip(axes, POLICIES):
        m = res["policies"][p]
        taken, social = m["haircuts"] / UNIT, m["socialized"] / UNIT
        steps = [("bad debt", res["bad_debt"] / UNIT, 0), ("fund", fund, 0),
                 ("winners", taken, fund), ("LPs", social, fund + taken)]
        for i, (lab, v, base) in enumerate(steps):
            ax.bar(i, v, bottom=base, color=["#555", "#2a7", "#d73", "#c22"][i])
        ax.set_xticks(range(4), [s[0] for s in steps])
        ax.set_title(NAMES[p], fontsize=9)
    axes[0].set_ylabel("tokens")
    fig.suptitle("Who paid the bad debt, per ADL policy")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def chart_concentration(res, path):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.4))
    xs = range(len(POLICIES))
    ax.bar([x - 0.2 for x in xs], [res["policies"][p]["largest_share_bps"] / 10_000 for p in POLICIES], 0.4,
           label="largest single share")
    ax.bar([x + 0.2 for x in xs], [res["policies"][p]["gini"] for p in POLICIES], 0.4, label="Gini")
    ax.set_xticks(list(xs), [NAMES[p] for p in POLICIES])
    ax.set_ylim(0, 1)
    ax.legend()
    ax.set_title("Haircut concentration")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def chart_path(res, path):
    plt = _plt()
    s = res["series"]
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(9, 5), sharex=True)
    a1.plot([p / 10**8 for p in s["price"]], color="#333")
    a1.set_ylabel("price")
    liq = s["liquidations"]
    a1b = a1.twinx()
    a1b.plot(liq, color="#c22", alpha=0.6, label="liquidations (cumulative)")
    a1b.plot(s["adl_fills"], color="#27c", alpha=0.6, label="ADL fills (cumulative)")
    a1b.legend(loc="lower left", fontsize=8)
    share = [a / n if n else 0 for a, n in zip(s["lp_assets"], s["lp_supply"])]
    share = [x / share[0] for x in share] if share and share[0] else share
    a2.plot(share, color="#2a7")
    a2.set_ylabel("LP share value (start = 1)")
    a2.set_xlabel("tick")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def chart_fund_curve(sweep, path):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4))
    for e in sweep["points"]:
        lab = ", ".join(f"{k}={v}" for k, v in e["params"].items()) or "base"
        need = sorted(e["fund_needed"]["per_seed"])
        if need:
            ys = [(i + 1) / len(need) for i in range(len(need))]
            ax.step([v / UNIT for v in need], ys, where="post", label=f"{lab}: fund covers all bad debt")
        if e["funds"]:
            xs = [f["insurance_fund"] for f in e["funds"]]
            ps = [f["p_no_socialized"] for f in e["funds"]]
            lo = [max(0.0, p - f["p_no_socialized_ci95"][0]) for p, f in zip(ps, e["funds"])]
            hi = [max(0.0, f["p_no_socialized_ci95"][1] - p) for p, f in zip(ps, e["funds"])]
            ax.errorbar(xs, ps, yerr=[lo, hi], fmt="o", capsize=3, label=f"{lab}: no socialized loss")
    ax.axhline(sweep["probability"], color="#999", ls="--", lw=1)
    ax.set_xlabel("insurance fund (tokens)")
    ax.set_ylabel("probability")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=7)
    ax.set_title("Fund size against the probability that no loss is socialized")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ---------------------------------------------------------------- pages

_CSS = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
        "td:first-child,th:first-child{text-align:left}img{max-width:100%}")


def _table(rows, head=None):
    out = ["<table>"]
    if head:
        out.append("<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>")
    for r in rows:
        out.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def write_run(res, out_dir, title):
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "result.json").write_text(json.dumps(res, indent=1, sort_keys=True))
    chart_path(res, out / "path.png")
    parts = [f"<h1>{html.escape(title)}</h1>", _table(run_rows(res), ["metric", "value"]),
             '<img src="path.png" alt="price, liquidations, ADL, LP share price">']
    if "policies" in res:
        chart_waterfall(res, out / "waterfall.png")
        chart_concentration(res, out / "concentration.png")
        rows = [[label] + [_fmt(res["policies"][p][key], kind) for p in POLICIES] for key, label, kind in ROWS]
        parts += ["<h2>ADL policies on the same shortfalls</h2>",
                  _table(rows, ["metric"] + [NAMES[p] for p in POLICIES]),
                  '<img src="waterfall.png" alt="waterfall per policy">',
                  '<img src="concentration.png" alt="haircut concentration">']
    (out / "report.html").write_text(f"<!doctype html><meta charset=utf-8><title>{html.escape(title)}</title>"
                                     f"<style>{_CSS}</style>" + "\n".join(parts))
    return out / "report.html"


def write_sweep(sweep, out_dir, title):
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "sweep.json").write_text(json.dumps(sweep, indent=1, sort_keys=True))
    chart_fund_curve(sweep, out / "fund_curve.png")
    rows = []
    for e in sweep["points"]:
        fn = e["fund_needed"]
        lo, hi = fn["ci95"]
        rows.append([", ".join(f"{k}={v}" for k, v in e["params"].items()) or "base",
                     _usd(fn["value"]), f"{_usd(lo)} .. {_usd(hi) if hi is not None else 'more scenarios needed'}",
                     len(fn["per_seed"])])
    funds = []
    for e in sweep["points"]:
        for f in e["funds"]:
            funds.append([", ".join(f"{k}={v}" for k, v in e["params"].items()) or "base", f"{f['insurance_fund']:,}",
                          f"{f['p_no_socialized']:.3f} ({f['p_no_socialized_ci95'][0]:.3f}..{f['p_no_socialized_ci95'][1]:.3f})",
                          f"{f['p_no_adl']:.3f} ({f['p_no_adl_ci95'][0]:.3f}..{f['p_no_adl_ci95'][1]:.3f})",
                          f"{f['mean_liquidations']:.1f}", f"{f['capacity_refusals']:,}"])
    parts = [f"<h1>{html.escape(title)}</h1>",
             f"<p>{sweep['tasks']} runs on {html.escape(sweep['executor'])} in {sweep['wall_seconds']:.1f} s.</p>",
             f"<h2>Fund needed for probability {sweep['probability']} that no loss reaches winners or LPs</h2>",
             _table(rows, ["parameters", "fund (tokens)", "95% interval", "scenarios"]),
             '<img src="fund_curve.png" alt="fund-size curve">']
    if funds:
        parts += ["<h2>Per fund size</h2>",
                  _table(funds, ["parameters", "fund", "P(no socialized loss)", "P(no ADL)", "liquidations",
                                 "capacity refusals"])]
    (out / "report.html").write_text(f"<!doctype html><meta charset=utf-8><title>{html.escape(title)}</title>"
                                     f"<style>{_CSS}</style>" + "\n".join(parts))
    return out / "report.html"


def _usd(v):
    return "-" if v is None else f"{v / UNIT:,.0f}"
