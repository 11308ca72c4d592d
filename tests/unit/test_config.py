"""Deployment config (scripts/config.py, scripts/deploy.py): validated before
the first transaction, one-line errors naming file, network, market and
field; an existing token and feeds reached through the repo's interfaces."""

import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ape import chain
from hypothesis import HealthCheck, given, settings, strategies as st

from model import World
from model.fixed_point import Revert
from model.positions import DEFAULT_ORDER_EXPIRY, MAX_AMOUNT, MAX_OPEN_INTEREST, MarketParams
from scripts import config as cfg
from scripts.deploy import deploy_protocol

ROOT = Path(__file__).resolve().parents[2]
FILE = "config/networks.yaml"
USDC = 10**6
WAD = 10**18
K_PER_SECOND = 10**14 // 3600  # 1 bp/hour in 1e18 per second, floored: 27_777_777_777


def local():
    """The `local` entry as written in the file (YAML merges resolved)."""
    return copy.deepcopy(cfg.read()["local"])


def error_of(fn, *args, **kwargs):
    with pytest.raises(cfg.ConfigError) as e:
        fn(*args, **kwargs)
    msg = str(e.value)
    assert "\n" not in msg
    return msg


# ---- the default configuration is unchanged

def test_default_local_config__gives_todays_market_params():
    btc, eth = cfg.load("local")["markets"]
    feed = "0x" + "ab" * 20
    common = dict(feed=feed, imf=10**16, mmf=5 * 10**15, liq_fee=5 * 10**15, keeper_share=2 * 10**17,
                  trading_fee=5 * 10**14, insurance_share=3 * 10**17, funding_k=K_PER_SECOND,
                  max_funding_rate=K_PER_SECOND, max_price_age=3600, min_margin=10 * USDC, execution_fee=USDC)
    assert K_PER_SECOND == 27_777_777_777
    assert cfg.market_params(btc, feed, 6) == MarketParams(max_open_interest=1000 * WAD, **common)
    assert cfg.market_params(eth, feed, 6) == MarketParams(max_open_interest=30_000 * WAD, **common)
    conf = cfg.load("local")
    assert (conf["mocks"], conf["order_expiry"], conf["feed_decimals"]) == (True, DEFAULT_ORDER_EXPIRY, 8)
    assert [m["initial_price"] for m in conf["markets"]] == [80_000, 3000]


def test_every_shipped_network__validates():
    assert cfg.networks() == ["local", "sepolia"]
    sepolia = cfg.load_config("sepolia")
    assert not sepolia.mocks and sepolia.collateral.address == "0x1c7D4B196Cb0C7B01d743Fbc6116a902379C7238"
    assert [m.max_open_interest for m in sepolia.markets] == [10, 300]


# ---- each bad input: one line naming file, network, market and field

def typo(e):
    e["markets"][0]["imf_bsp"] = e["markets"][0].pop("imf_bps")


BAD = {
    "typod_key": (typo, "markets[0] (BTC-PERP): unknown key 'imf_bsp' (did you mean 'imf_bps'?) (and 1 more)"),
    "typod_top_level_key": (lambda e: e.update(colateral=e.pop("collateral")),
                            "unknown key 'colateral' (did you mean 'collateral'?) (and 1 more)"),
    "missing_key": (lambda e: e["markets"][1].pop("min_margin"), "markets[1] (ETH-PERP): min_margin is missing"),
    "mmf_above_imf": (lambda e: e["markets"][0].update(mmf_bps=150),
                      "markets[0] (BTC-PERP): mmf_bps 150 must be below imf_bps 100 (params: mmf)"),
    "mmf_equal_to_imf": (lambda e: e["markets"][1].update(mmf_bps=100),
                         "markets[1] (ETH-PERP): mmf_bps 100 must be below imf_bps 100 (params: mmf)"),
    "negative_fee": (lambda e: e["markets"][0].update(trading_fee_bps=-1),
                     "markets[0] (BTC-PERP): trading_fee_bps -1 must be within 0..100 "
                     "(params: trading fee, MAX_TRADING_FEE)"),
    "negative_execution_fee": (lambda e: e["markets"][0].update(execution_fee_units=-1),
                               "markets[0] (BTC-PERP): execution_fee_units -1 must not be negative "
                               "(params: execution fee)"),
    "liquidation_fee_above_cap": (lambda e: e["markets"][1].update(liq_fee_bps=501),
                                  "markets[1] (ETH-PERP): liq_fee_bps 501 must be within 0..500 "
                                  "(params: liquidation fee, MAX_LIQ_FEE)"),
    "trading_fee_not_below_mmf": (lambda e: e["markets"][0].update(trading_fee_bps=50),
                                  "markets[0] (BTC-PERP): trading_fee_bps 50 must be below mmf_bps 50 "
                                  "(params: trading fee)"),
    "funding_above_cap": (lambda e: e["markets"][0].update(funding_k_bps_per_hour=3601),
                          "markets[0] (BTC-PERP): funding_k_bps_per_hour 3601 must be within 0..3600 "
                          "(params: funding, MAX_FUNDING_K)"),
    "execution_fee_above_100_tokens": (lambda e: e["markets"][0].update(execution_fee_units=100 * USDC + 1),
                                       "markets[0] (BTC-PERP): execution_fee_units 100000001 must be at most "
                                       "100000000 (params: execution fee, MAX_EXECUTION_FEE_TOKENS = 100 whole "
                                       "tokens of 6 decimals)"),
    "float": (lambda e: e["markets"][0].update(max_price_age=3600.5),
              "markets[0] (BTC-PERP): max_price_age must be an integer, got 3600.5"),
    "string_number": (lambda e: e["markets"][1].update(max_open_interest="30000"),
                      "markets[1] (ETH-PERP): max_open_interest must be an integer, got '30000'"),
    "bool": (lambda e: e["markets"][0].update(min_margin=True),
             "markets[0] (BTC-PERP): min_margin must be an integer, got True"),
    "order_expiry_below_min": (lambda e: e.update(order_expiry=59), "order_expiry 59 must be at least 60"),
    "borrow_above_cap": (lambda e: e["markets"][0].update(borrow_bps_per_year=8761),
                         "markets[0] (BTC-PERP): borrow_bps_per_year 8761 must be within 0..8760 "
                         "(params: borrow rate, MAX_BORROW_RATE)"),
    "feed_with_mocks": (lambda e: e["markets"][0].update(feed="0x" + "11" * 20),
                        "markets[0] (BTC-PERP): feed is used only with mocks: false"),
}


def test_network_without_mocks__no_minimum_notional_or_keeper_floor__refused():
    """A network meant for other people must set both floors: with a
    minimum notional of 0 a side fills with dust for pocket change
    (docs/liquidation.md, "Blocking a side")."""
    for zero in (("min_notional_units", "min_keeper_reward_units"), ("min_keeper_reward_units",)):
        entry = copy.deepcopy(cfg.read()["sepolia"])
        entry.update(dict.fromkeys(zero, 0))
        assert error_of(cfg.validate, entry, "sepolia") == (
            f"{FILE}: sepolia: min_notional_units and min_keeper_reward_units must be set (> 0) on a network "
            "without mocks")
    cfg.validate(copy.deepcopy(cfg.read()["sepolia"]), "sepolia")  # as shipped: 10,000 and 5 USDC


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_bad_entry__config_error__names_file_network_market_and_field(case):
    edit, expected = BAD[case]
    entry = local()
    edit(entry)
    assert error_of(cfg.validate, entry, "local") == f"{FILE}: local: {expected}"


def test_execution_fee__exactly_100_tokens__is_accepted():
    entry = local()
    entry["markets"][0]["execution_fee_units"] = 100 * USDC
    assert cfg.validate(entry, "local").markets[0].execution_fee_units == 100_000_000


def test_unknown_network__config_error_lists_the_entries():
    assert error_of(cfg.load, "mainnet") == f"{FILE}: no entry for network 'mainnet' (entries: local, sepolia)"
    assert error_of(cfg.load, "defaults").startswith(f"{FILE}: no entry for network 'defaults'")


def test_bad_file__config_error_names_it(tmp_path):
    typod = tmp_path / "nets.yaml"
    entry = local()
    typo(entry)
    typod.write_text(yaml.safe_dump({"local": entry}))
    assert error_of(cfg.load, "local", typod) == (
        f"{typod}: local: markets[0] (BTC-PERP): unknown key 'imf_bsp' (did you mean 'imf_bps'?) (and 1 more)")
    broken = tmp_path / "broken.yaml"
    broken.write_text("local: [\n")
    assert error_of(cfg.load, "local", broken).startswith(f"{broken}: line ")
    assert error_of(cfg.load, "local", tmp_path / "absent.yaml") == (
        f"{tmp_path / 'absent.yaml'}: cannot read: No such file or directory")


# ---- the bounds are exactly positions._set_params's

U = MAX_AMOUNT - 1


def around(*edges):
    vals = sorted({x + d for x in edges for d in (-1, 0, 1) if x + d >= 0})
    return st.one_of(st.sampled_from(vals), st.integers(0, max(vals) + 1))


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data(), decimals=st.sampled_from([0, 6, 18]))
def test_config_bounds__accept_exactly_what_the_model_add_market_accepts(data, decimals):
    unit = 10**decimals
    m = {
        "name": "X-PERP", "initial_price": 100,
        "imf_bps": data.draw(around(0, 100, 10_000)),
        "mmf_bps": data.draw(around(0, 50, 100, 10_000)),
        "trading_fee_bps": data.draw(around(0, 5, 50, 100)),
        "liq_fee_bps": data.draw(around(0, 500)),
        "keeper_share_bps": data.draw(around(0, 5000)),
        "insurance_share_bps": data.draw(around(0, 10_000)),
        "funding_k_bps_per_hour": data.draw(around(0, 3600)),
        "max_funding_bps_per_hour": data.draw(around(0, 3600)),
        "max_price_age": data.draw(around(0, 86_400)),
        "max_open_interest": data.draw(around(0, MAX_OPEN_INTEREST // WAD)),
        "min_margin": data.draw(around(0, U // unit)),
        "execution_fee_units": data.draw(around(0, 100 * unit)),
    }
    entry = {"mocks": True, "collateral": {"name": "T", "symbol": "T", "decimals": decimals}, "markets": [m]}
    try:
        cfg.validate(entry, "local")
        config_ok = True
    except cfg.ConfigError:
        config_ok = False
    owner = "0x" + "0e" * 20
    w = World(engine="0x" + "e0" * 20, vault="0x" + "a0" * 20, fund="0x" + "f0" * 20, owner=owner,
              token_decimals=decimals, now=1_700_000_000)
    feed = "0x" + "fe" * 20
    w.add_feed(feed, 8, 100 * 10**8)
    try:
        w.call(owner, "add_market", cfg.market_params(m, feed, decimals))
        model_ok = True
    except Revert:
        model_ok = False
    assert config_ok == model_ok, m


# ---- deploy: nothing sent for a bad config; existing contracts via the interfaces

def sent(owner):
    return owner.nonce, chain.blocks.head.number


@pytest.mark.parametrize("case", ["typod_key", "mmf_above_imf", "negative_fee", "execution_fee_above_100_tokens"])
def test_deploy_protocol__bad_config__raises_before_the_first_transaction(owner, case):
    edit, expected = BAD[case]
    entry = local()
    edit(entry)
    before = sent(owner)
    assert error_of(deploy_protocol, owner, config=entry) == f"deploy_protocol(config=...): local: {expected}"
    assert sent(owner) == before


def existing(owner, token_decimals=6):
    """A token and two feeds deployed beforehand, and a mocks: false entry naming them."""
    from ape import project

    token = owner.deploy(project.MockToken, "Existing USD", "eUSD", token_decimals)
    feeds = [owner.deploy(project.MockAggregator, 8, p * 10**8) for p in (80_000, 3000)]
    entry = local()
    for key in ("collateral", "feed_decimals", "insurance_seed", "vault_seed"):
        entry.pop(key)
    entry.update(mocks=False, collateral={"address": token.address})
    # a network without mocks sets both floors (1 USDC; 5 bps of 2,000 pays it)
    entry.update(min_keeper_reward_units=10**token_decimals, min_notional_units=2_000 * 10**token_decimals)
    entry.pop("sequencer", None)  # the devnet's mock uptime feed
    for m, f in zip(entry["markets"], feeds):
        m.pop("initial_price")
        m.pop("fallback_initial_price", None)  # the devnet's mock fallback
        m.pop("fallback_max_age", None)
        m["feed"] = f.address
    entry["governance"] = {"min_delay": 86_400, "proposers": ["deployer"], "executors": ["deployer"]}
    return token, feeds, entry


def test_governance__mocks_false__needs_a_timelock_of_a_day_or_more():
    entry = copy.deepcopy(cfg.read()["sepolia"])
    assert cfg.validate(entry, "sepolia").governance.min_delay >= cfg.MIN_PUBLIC_DELAY
    gov = entry.pop("governance")
    assert error_of(cfg.validate, entry, "sepolia") == (
        "config/networks.yaml: sepolia: governance is missing (mocks: false: a timelock with a delay of a day or more)")
    entry["governance"] = dict(gov, min_delay=86_399)
    assert error_of(cfg.validate, entry, "sepolia") == (
        "config/networks.yaml: sepolia: governance.min_delay must be at least 86400 s (a day) with mocks: false: "
        "users need time to exit before a change lands")
    entry["governance"] = dict(gov, proposers=["anyone"])
    assert "'anyone' may only execute" in error_of(cfg.validate, entry, "sepolia")
    entry["governance"] = dict(gov, executors=["0x12"])
    assert "must be 'deployer', 'anyone' (executors only) or a nonzero 0x address" in error_of(
        cfg.validate, entry, "sepolia")
    entry["governance"] = dict(gov, delay=1)
    assert "unknown key 'delay' (did you mean 'min_delay'?)" in error_of(cfg.validate, entry, "sepolia")


def test_deploy_protocol__mocks_false__uses_the_token_and_feeds_through_the_interfaces(owner):
    token, feeds, entry = existing(owner)
    entry["order_expiry"] = 3600
    entry["markets"][0]["borrow_bps_per_year"] = 1000  # 10% a year (decision 96)
    p = deploy_protocol(owner, config=entry)
    assert p.engine.market_state(0)[8] == 10**17 // (365 * 86400) == 3_170_979_198
    assert p.engine.market_state(1)[8] == 0
    assert p.token.address == token.address and p.token.contract_type.name == "ERC20"
    assert [f.address for f in p.feeds] == [f.address for f in feeds]
    assert {f.contract_type.name for f in p.feeds} == {"AggregatorV3"}
    assert p.engine.COLLATERAL() == token.address
    for mid, m in enumerate(entry["markets"]):
        assert tuple(p.engine.market_params(mid)) == cfg.market_params(m, feeds[mid].address, 6).as_tuple()
    assert p.engine.order_expiry() == 3600
    assert token.balanceOf(p.insurance_fund) == 0  # nothing minted: not a mock deployment


def test_deploy_protocol__default_config__keeps_the_default_order_expiry(owner):
    before = owner.nonce
    p = deploy_protocol(owner)
    assert p.engine.order_expiry() == DEFAULT_ORDER_EXPIRY
    # MockToken, 2 feeds, PerpExits, PerpOrders, PerpAdmin, PerpEngine, vault, fund, initialize, 2 add_market,
    # the oracles (a fallback MockAggregator, a MockSequencerUptimeFeed, 2 set_oracle, set_sequencer_feed),
    # TimelockController, 3 ownership nominations, the timelock's schedule_batch and execute_batch, lens
    assert owner.nonce - before == 24


def test_deploy_protocol__mocks_false__decimals_read_from_the_token_bound_the_fee_before_sending(owner):
    token, feeds, entry = existing(owner, token_decimals=2)
    entry["markets"][0]["execution_fee_units"] = 100 * 10**2  # 100 tokens at 2 decimals: the cap
    entry["markets"][1]["execution_fee_units"] = 100 * 10**2 + 1  # 100.01 tokens
    before = sent(owner)
    assert error_of(deploy_protocol, owner, config=entry) == (
        "deploy_protocol(config=...): local: markets[1] (ETH-PERP): execution_fee_units 10001 must be at most "
        "10000 (params: execution fee, MAX_EXECUTION_FEE_TOKENS = 100 whole tokens of 2 decimals)")
    assert sent(owner) == before


def test_deploy_protocol__mocks_false__an_address_without_code__raises_before_sending(owner):
    token, feeds, entry = existing(owner)
    nowhere = "0x" + "12" * 20
    entry["markets"][1]["feed"] = nowhere
    before = sent(owner)
    assert error_of(deploy_protocol, owner, config=entry) == (
        f"deploy_protocol(config=...): local: markets[1] (ETH-PERP): feed {nowhere} has no code on local")
    assert sent(owner) == before


# ---- ape run deploy

def run_deploy(*args, env=None):
    return subprocess.run(
        [str(Path(sys.executable).parent / "ape"), "run", "deploy", "--network", "ethereum:local:foundry", *args],
        cwd=ROOT, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=300)


def test_ape_run_deploy__bad_config_file__one_line_nonzero_exit_nothing_sent(owner, tmp_path):
    bad = tmp_path / "bad.yaml"
    text = (ROOT / FILE).read_text().replace("mmf_bps: 50                   # 0.5%", "mmf_bps: 150", 1)
    bad.write_text(text)
    before = sent(owner)
    r = run_deploy(env={"BACKSTOP_CONFIG": str(bad)})
    out = r.stdout + r.stderr
    assert r.returncode == 1
    assert "Traceback" not in out
    errors = [line for line in out.splitlines() if "Error" in line]
    assert errors == [f"Error: {bad}: local: markets[0] (BTC-PERP): mmf_bps 150 must be below imf_bps 100 "
                      "(params: mmf)"]
    assert sent(owner) == before


def test_ape_run_deploy__config_option__deploys_with_its_order_expiry(owner, tmp_path):
    good = tmp_path / "good.yaml"
    entry = local()
    entry["order_expiry"] = 600
    good.write_text(yaml.safe_dump({"local": entry}))
    r = run_deploy("--config", str(good))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "order expiry    600 s" in r.stdout
    assert "market 1        ETH-PERP" in r.stdout
