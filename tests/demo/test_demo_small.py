"""`make demo`, small: the same code path (scripts/demo.run_demo, the keeper
process, the replay check, the report) on a few dozen accounts, so it runs in
CI. The scenario is scenarios/crash.yaml with fewer accounts and a smaller
insurance fund, so the crash still drains the fund and reaches ADL; its path
and its seconds are the file's own (chain time costs no wall-clock time).
The LPs hold enough for every position's payout cap (the vault's reserve),
so every order executes. The report is also opened in headless Chromium."""

import copy
import re

import pytest

from scripts import report as R
from scripts.demo import ROOT, load_scenario, run_demo
from tests.demo import browser

WAD = 10**18


@pytest.fixture(scope="module")
def small_scenario():
    sc = copy.deepcopy(load_scenario(ROOT / "scenarios" / "crash.yaml"))
    sc["name"] = "btc-crash-small"
    sc["traders"]["count"] = 48
    sc["lps"].update(count=3, deposit=[1_500_000, 2_500_000])
    sc["insurance_fund"] = 500
    sc["warmup"]["prices"] = sc["warmup"]["prices"][:4]
    sc["keeper"]["step_timeout"] = 30
    return sc


@pytest.fixture(scope="module")
def demo(small_scenario, owner, tmp_path_factory):
    return run_demo(small_scenario, owner, "process", tmp_path_factory.mktemp("reports"))


def test_demo__model_replay__same_events_and_state_as_chain(demo):
    assert demo.replay_mismatches == []
    assert demo.state_diffs == []
    replayed = set(demo.replayer.stats.by_verb)
    assert {"token.mint", "vault.deposit", "engine.deposit", "engine.request_order", "engine.execute_order",
            "engine.set_tp_sl", "feed.set_answer", "engine.liquidate", "engine.execute_tp_sl"} <= replayed
    # Every trader's order was replayed to the same outcome: executed, none cancelled.
    assert demo.replayer.stats.by_verb["engine.request_order"] == demo.replayer.stats.by_verb["engine.execute_order"] == 48
    assert len(demo.replayer.order_outcomes) == 48
    assert all(status == "executed" for status, _ in demo.replayer.order_outcomes.values())
    assert demo.ok


def test_demo__keeper_process__did_the_work_and_was_stopped(demo):
    assert demo.keeper_mode == "process", demo.warnings
    assert demo.warnings == []
    assert demo.keeper_exit is not None
    assert demo.keeper_leftovers == 0
    keeper_address = demo.data["meta"]["keeper_account"]
    assert set(demo.summary["liquidations_by"]) == {keeper_address}
    # The traders' orders were executed by the keeper process, each in the
    # first block after the round later than its request.
    assert demo.summary["orders_executed_by"] == {keeper_address: 48}
    assert demo.summary["orders_cancelled"] == 0
    assert demo.summary["order_blocks_after_round"] == {1: 48}


def test_demo__crash__liquidates_drains_fund_and_deleverages(demo):
    s = demo.summary
    assert s["liquidations"] > 0 and s["liquidations_with_bad_debt"] > 0
    assert s["fund_drawn"] > 0
    assert s["adl_fills"] > 0 and s["haircuts"] > 0
    assert s["stop_losses_hit"] > 0
    assert s["take_profits_hit"] > 0


def test_demo__bad_debt__covered_by_fund_haircuts_and_socialization(demo):
    s = demo.summary
    assert s["bad_debt"] == s["fund_drawn"] + s["haircuts"] + s["socialized"] + s["adl_pending"]
    assert s["bad_debt_accounted"]


def test_demo__adl__takes_targets_in_model_rank_order(demo):
    rows = demo.data["adl"]
    assert rows and all(r["rank"] is not None for r in rows)
    assert demo.summary["adl_in_rank_order"]
    for r in rows:  # ADL takes profitable opposite positions only: shorts in a crash
        assert r["size"] < 0


def test_demo__leverage_from_events__equals_the_plan(demo):
    planned = {t["account"]: t["leverage"] for t in demo.data["meta"]["traders"]}
    rows = [*demo.data["liquidations"], *({"account": r["target"], "leverage": r["leverage"]} for r in demo.data["adl"])]
    assert rows
    for r in rows:
        assert r["leverage"] == planned[r["account"]]


def test_demo__open_interest_from_events__equals_chain(demo):
    s = demo.summary
    assert s["oi_from_events"] == s["oi_on_chain"]


def test_demo__report__has_every_chart_and_every_deleveraged_position(demo):
    html = demo.report_path.read_text()
    assert R.CHARTS == ("price", "fund", "oi", "share_price", "waterfall")
    assert re.findall(r'<img alt="(\w+)" src="data:image/png;base64,', html) == list(R.CHARTS)
    for name in R.CHARTS:
        png = (demo.report_path.parent / f"{name}.png").read_bytes()
        assert png.startswith(b"\x89PNG") and len(png) > 10_000
    table = html.split("Who was deleveraged")[1].split("</table>")[0]
    assert table.count("<tr>") - 1 == demo.summary["adl_fills"]
    assert "PASS" in html


def test_demo__scenario_time__each_price_step_lands_at_its_own_second(demo):
    """Chain time is scenario time: step i's price is in a block stamped
    crash start + its seconds, however long the keeper took on the wall
    clock; the keeper's transactions land in the blocks between."""
    data = demo.data
    t0, times = data["t0"], data["block_times"]
    crash = [(b, t - t0, price // WAD) for b, t, price in data["prices"] if b > data["crash_start_block"]]
    assert [(dt, price) for _, dt, price in crash] == [tuple(step) for step in data["scenario"]["crash"]]
    # blocks every block_time (1 s) while the keeper works, never two price steps in one block
    crash_blocks = sorted(b for b in times if b > data["crash_start_block"])
    stamps = [times[b] for b in crash_blocks]
    assert stamps == sorted(set(stamps)) and stamps[0] == t0
    assert len(crash_blocks) == demo.summary["crash_blocks"]
    # every event row is timed by its block, on the same axis as the prices
    for r in [*data["liquidations"], *data["adl"], *data["tp"], *data["sl"]]:
        assert r["t"] == times[r["block"]] - t0


def test_demo__vault_summary__reserve_capital_efficiency_and_share_price_from_the_chain(demo):
    """The summary's vault figures, read from the chain by eth_call, equal
    the model's after the replay; capacity refusals are the chain's
    OrderCancelled events with reason 'vault: capacity' (none here)."""
    s, w = demo.summary, demo.replayer.w
    assert s["reserve_after"] == w.view("traders_reserve")
    assert s["reserve_before"] > s["reserve_after"] > 0  # positions closed in the crash give their caps back
    long_oi, short_oi = s["oi_on_chain"]
    price = demo.data["prices"][-1][2]
    assert s["oi_notional_after"] == (long_oi + short_oi) * price // w.e.scale
    shares = demo.data["share_unit"]
    assert s["share_price_after"] == w.view("vault.to_assets", shares, False)
    series = demo.data["share_price_series"]
    assert series[0][1] == s["share_price_before"] and series[-1][1] == s["share_price_after"]
    refused = [oid for oid, (status, why) in demo.replayer.order_outcomes.items()
               if (status, why) == ("cancelled", R.CAPACITY)]
    assert s["orders_refused_capacity"] == len(refused) == 0
    text = demo.report_path.read_text()
    assert "Capital efficiency (reserve / open-interest notional)" in text
    assert "Orders refused for vault capacity" in text


def test_demo__loss_waterfall__steps_add_up_to_the_bad_debt(demo):
    s = demo.summary
    steps = [s["fund_drawn"], s["haircuts"], s["socialized"], s["adl_pending"]]
    assert s["bad_debt"] > 0 and sum(steps) == s["bad_debt"]
    assert s["fund_drawn"] > 0 and s["haircuts"] > 0


def test_demo__report_in_headless_chromium__every_chart_loads_nothing_external(demo):
    """The report as a browser opens it: every chart an <img> that decoded
    (natural size > 0) from a data: URI, and no request leaves the file."""
    chromium, why = browser.find_chromium()
    if chromium is None:
        pytest.skip(f"headless Chromium unavailable: {why}")
    page = browser.load(demo.report_path, chromium)
    assert [i["alt"] for i in page.images] == list(R.CHARTS)
    for i in page.images:
        assert i["src"].startswith("data:image/png;base64,"), i
        assert i["complete"] and i["width"] > 300 and i["height"] > 200, i
    assert page.requests and page.requests[0] == page.url
    assert page.external == [] and page.failed == []
    assert all(link.startswith("data:") for link in page.links), page.links
