"""Oracle hygiene on the real contracts (SPEC 12 bullets 3-4; docs/trust.md
"Oracles", decisions 76-81): set_oracle's bad inputs, the feed-jump bound of
set_market_params, the min/max bounds, the fallback (and its own history
bound), the sequencer gate. In process on revm (tests/unit/vault/
redteam_lab.py: the real contracts deployed in scripts/deploy.py's order,
the timelock as owner, delay 0); one deployment for the module, each test
on a snapshot of it. Every outcome is compared with the model's
(model/positions.py) on a World mirroring the chain's oracle state."""

from dataclasses import astuple, replace

import pytest
from eth_abi import encode

from model import positions as P
from model.fixed_point import Revert
from model.mocks import Feed
from tests.stateful.backends import CONTRACTS, GAS, compile_source, governed_send
from tests.stateful.machine import mirror_world
from tests.unit.vault.redteam_lab import USDC, WAD, Lab

ORACLE = "(uint256,uint256,uint256,address,uint256)"
PARAMS = "(" + ",".join(["address"] + ["uint256"] * 15) + ")"
HEARTBEAT, MAX_AGE = 3000, 3600  # the devnet's BTC-PERP (config/networks.yaml)


@pytest.fixture(scope="module")
def lab_():
    return Lab()


@pytest.fixture
def lab(lab_):
    snap = lab_.b.snapshot()
    yield lab_
    lab_.b.restore(snap)


def usd(x):
    return x * 10**8  # an 8-decimal answer


def new_feed(lab, answer, decimals=8):
    code = compile_source(CONTRACTS / "mocks/MockAggregator.vy").compiler_data.bytecode
    return lab.b.evm.deploy(lab.a["owner"], code + encode(["uint8", "int256"], [decimals, answer]), gas=GAS)


def gov(lab, verb, *args):
    """An owner verb through the timelock; None, or the target's revert reason."""
    lab.b._now += 1
    return governed_send(lab.b, lab.a["owner"], verb, list(args), lab.b._now)


def feed_tx(lab, feed, sig, *args):
    lab.tx("owner", lab.addr.get(feed, feed), sig, *args)


def oracle_state(lab):
    return (lab.e("oracle_params(uint256)", 0, out=(ORACLE,)), lab.e("market_params(uint256)", 0, out=(PARAMS,)),
            lab.e("sequencer_feed()", out=("address",)), lab.e("sequencer_grace()"))


def chain_round(lab):
    return lab.e("oracle_round(uint256)", 0, out=("uint256", "uint256", "uint256"))


def model(lab, extra=()):
    """A model World with the chain's oracle state: market params, oracle
    params, the sequencer setting, and every feed's rounds (all of their
    history, through getRoundData) and revert flag."""
    stored, _ = lab.b.read([])
    w = mirror_world(lab.b, stored, lab.now)
    for mid in range(2):
        p = lab.e("market_params(uint256)", mid, out=(PARAMS,))
        w.e.params[mid] = replace(w.e.params[mid], feed=p[0])
        o = lab.e("oracle_params(uint256)", mid, out=(ORACLE,))
        w.e.oracle[mid] = P.OracleParams(o[0], o[1], o[2], o[3], o[4], 10**10 if int(o[3], 16) else 0)
    w.e.sequencer_feed = lab.e("sequencer_feed()", out=("address",))
    w.e.sequencer_grace = lab.e("sequencer_grace()")
    feeds = [lab.addr[r] for r in ("feed0", "feed1", "fallback0")] + list(extra)
    for a in feeds:
        f = w.feeds[a] = Feed(decimals=lab.view(a, "decimals()", out=("uint8",)))
        f.reverts = lab.view(a, "reverts()", out=("bool",))
        if f.reverts:
            lab.tx("owner", a, "set_reverts(bool)", False, dt=0)
        rid, f.answer, f.started_at, f.updated_at, f.answered_in_round = lab.view(
            a, "latestRoundData()", out=("uint80", "int256", "uint256", "uint256", "uint80"))
        f.round_id = rid
        for r in range(max(rid - 3, rid - (rid & (2**64 - 1)) + 1), rid + 1):  # this phase's last rounds
            f.history[r] = lab.view(a, "getRoundData(uint80)", r, out=("uint80", "int256", "uint256", "uint256", "uint80"))[1:]
        if f.reverts:
            lab.tx("owner", a, "set_reverts(bool)", True, dt=0)
    s = lab.addr["sequencer"]
    sq = w.feeds[s] = Feed(decimals=0)
    sq.round_id, sq.answer, sq.started_at, sq.updated_at, sq.answered_in_round = lab.view(
        s, "latestRoundData()", out=("uint80", "int256", "uint256", "uint256", "uint80"))
    w.now = lab.now
    return w


def claim_reason(lab):
    """traders_claim reads every market's price: "bad price" when none is sound."""
    try:
        lab.e("traders_claim()", out=("int256",))
    except Exception as e:  # redteam_lab.Reverted
        return e.reason
    return None


def model_reason(fn, *args):
    try:
        fn(*args)
    except Revert as e:
        return e.reason
    return None


def refused(lab, verb, args, model_fn, model_args, reason, extra=()):
    """`verb` reverts `reason` with the oracle state unchanged, and the model
    raises the same reason."""
    before = oracle_state(lab)
    w = model(lab, extra)
    assert gov(lab, verb, *args) == reason
    assert oracle_state(lab) == before
    assert model_reason(model_fn, w, *model_args) == reason


def model_round(lab, extra=(), fresh=False):
    w = model(lab, extra)
    try:
        return P._round(w, 0, fresh) if fresh else P._oracle_round(w, 0)
    except Revert as e:
        return e.reason


def good_oracle(fallback, lo=1_000 * WAD, hi=1_000_000 * WAD):
    return (lo, hi, HEARTBEAT, fallback, MAX_AGE)


def as_model(o):
    return P.OracleParams(*o)


# ---------------------------------------------------------------- set_oracle


def test_set_oracle__each_bad_input__its_reason_nothing_changed_model_agrees(lab):
    fb = lab.addr["fallback0"]
    primary = lab.addr["feed0"]
    broken = new_feed(lab, 0)
    far = new_feed(lab, usd(84_001))  # 80,000 + 5.0001%
    wide = new_feed(lab, usd(80_000), decimals=19)
    cases = [
        (good_oracle(fb, lo=0), "oracle: bounds"),
        (good_oracle(fb, lo=5, hi=5), "oracle: bounds"),
        (good_oracle(fb, hi=2**128), "oracle: bounds"),
        ((1_000 * WAD, 10**6 * WAD, 0, fb, MAX_AGE), "oracle: heartbeat"),
        ((1_000 * WAD, 10**6 * WAD, MAX_AGE, fb, MAX_AGE), "oracle: heartbeat"),
        (good_oracle(fb, hi=79_999 * WAD), "oracle: bounds exclude price"),
        (good_oracle(primary), "oracle: fallback is primary"),
        ((1_000 * WAD, 10**6 * WAD, HEARTBEAT, fb, 0), "oracle: fallback age"),
        ((1_000 * WAD, 10**6 * WAD, HEARTBEAT, fb, 86_401), "oracle: fallback age"),
        ((1_000 * WAD, 10**6 * WAD, HEARTBEAT, "0x" + "00" * 20, 5), "oracle: fallback age"),
        (good_oracle(wide), "params: feed decimals"),
        (good_oracle(broken), "oracle: fallback broken"),
        (good_oracle(far), "oracle: fallback jump"),
    ]
    for o, reason in cases:
        refused(lab, "set_oracle", [0, o], P._set_oracle, [0, as_model(o)], reason, extra=(broken, far, wide))
    # a fallback 5% away exactly is within the bound, on chain and in the model
    edge = new_feed(lab, usd(84_000))
    w = model(lab, (edge,))
    assert gov(lab, "set_oracle", 0, good_oracle(edge)) is None
    P._set_oracle(w, 0, as_model(good_oracle(edge)))
    assert lab.e("oracle_params(uint256)", 0, out=(ORACLE,))[3] == edge
    assert w.e.oracle[0].fallback == edge


def test_set_market_params__feed_jump_bound__and_a_broken_new_feed(lab):
    base = model(lab).e.params[0]
    far, near, broken = new_feed(lab, usd(84_001)), new_feed(lab, usd(76_000)), new_feed(lab, -1)
    for feed, reason in ((far, "params: feed jump"), (broken, "bad price")):
        mp = replace(base, feed=feed)
        refused(lab, "set_market_params", [0, astuple(mp)], P._set_params, [0, mp], reason, extra=(far, near, broken))
    # while the old feed is down (two heartbeats late), a far feed is accepted
    lab.advance(2 * HEARTBEAT + 1)
    feed_tx(lab, far, "set_answer(int256)", usd(84_001))
    w = model(lab, (far,))
    q = astuple(replace(base, feed=far))
    P._set_params(w, 0, replace(w.e.params[0], feed=far))
    assert gov(lab, "set_market_params", 0, q) is None
    assert lab.e("market_params(uint256)", 0, out=(PARAMS,))[0] == far == w.e.params[0].feed


# ---------------------------------------------------------------- bounds


def test_min_max_bounds__outside_is_bad_price_edges_price__model_agrees(lab):
    assert gov(lab, "set_oracle", 0, good_oracle(lab.addr["fallback0"])) is None
    lab.tx("owner", "fallback0", "set_reverts(bool)", True)  # no fallback to hide behind
    for dollars, ok in ((999, False), (1_000, True), (1_000_000, True), (1_000_001, False)):
        feed_tx(lab, "feed0", "set_answer(int256)", usd(dollars))
        price = chain_round(lab)[0]
        assert price == (dollars * WAD if ok else 0)
        assert model_round(lab)[0] == price
        assert claim_reason(lab) == (None if ok else "bad price")


# ---------------------------------------------------------------- fallback


def test_fallback__takes_over_when_primary_reverts_or_two_heartbeats_late_not_while_up(lab):
    fb = lab.addr["fallback0"]
    feed_tx(lab, fb, "set_answer(int256)", usd(81_000))  # round 2, +1.25% of round 1
    # primary up: its price, the fallback unused
    assert chain_round(lab) == (80_000 * WAD, lab.view("feed0", "latestRoundData()", out=("uint80", "int256", "uint256", "uint256", "uint80"))[3], MAX_AGE)
    assert model_round(lab) == chain_round(lab)
    # primary reverts: the fallback's round prices, with its own max age
    lab.tx("owner", "feed0", "set_reverts(bool)", True)
    got = chain_round(lab)
    assert got[0] == 81_000 * WAD and got[2] == MAX_AGE
    assert model_round(lab) == got
    lab.tx("owner", "feed0", "set_reverts(bool)", False)
    # primary stale but not two heartbeats late: stays (and is stale for fresh verbs)
    t_primary = chain_round(lab)[1]
    lab.advance(MAX_AGE)
    feed_tx(lab, fb, "set_answer(int256)", usd(81_500))
    assert chain_round(lab)[:2] == (80_000 * WAD, t_primary)
    assert model_round(lab)[:2] == (80_000 * WAD, t_primary)
    # past two heartbeats: the fallback's later round prices
    lab.advance(2 * HEARTBEAT - MAX_AGE)
    feed_tx(lab, fb, "set_answer(int256)", usd(81_600))
    got = chain_round(lab)
    assert got[0] == 81_600 * WAD and model_round(lab) == got


def test_fallback__history_bound__a_jump_over_5pct_or_a_first_round_is_refused(lab):
    """SPEC 12: the fallback's answer within MAX_FEED_JUMP of its previous
    round (decision 80)."""
    fb = lab.addr["fallback0"]
    lab.tx("owner", "feed0", "set_reverts(bool)", True)
    # the deployed fallback has only its first round: refused (no history)
    assert chain_round(lab)[0] == 0 and model_round(lab)[0] == 0
    assert claim_reason(lab) == "bad price"
    for answer, ok in ((usd(84_000), True),        # +5% exactly of 80,000
                       (usd(88_201), False),       # +5.0012% of 84,000
                       (usd(88_201), True),        # the same again: 0% of its previous round
                       (usd(40_000), False)):      # -54.6%
        feed_tx(lab, fb, "set_answer(int256)", answer)
        price = chain_round(lab)[0]
        assert price == (answer * 10**10 if ok else 0), answer
        assert model_round(lab)[0] == price
    # a previous round that is unsound (answer 0) refuses the next one too
    feed_tx(lab, fb, "set_answer(int256)", 0)
    feed_tx(lab, fb, "set_answer(int256)", usd(40_000))
    assert chain_round(lab)[0] == 0 == model_round(lab)[0]
    # a phase's first round (aggregator round 1 of phase 2) is refused
    t = lab.now
    feed_tx(lab, fb, "set_round_data(uint80,int256,uint256,uint256,uint80)", (2 << 64) | 1, usd(40_000), t, t, (2 << 64) | 1)
    assert chain_round(lab)[0] == 0 == model_round(lab)[0]
    feed_tx(lab, fb, "set_round_data(uint80,int256,uint256,uint256,uint80)", (2 << 64) | 2, usd(40_100), t + 1, t + 1, (2 << 64) | 2)
    assert chain_round(lab)[0] == 40_100 * WAD == model_round(lab)[0]


# ---------------------------------------------------------------- sequencer


def test_sequencer_gate__down_then_grace_then_normal(lab):
    lab.lp_in("lp", 100_000 * USDC)  # the vault's cash backs the trade (vault: capacity)
    lab.fund("trader", 10_000 * USDC)
    lab.tx("trader", "engine", "deposit(uint256)", 10_000 * USDC)
    oid = lab.tx("trader", "engine", "request_order(uint256,int256,int256,uint256)", 0, WAD // 10, 1_000 * USDC,
                 90_000 * WAD, out=["uint256"])[0]
    execute = ("keeper", "engine", "execute_order(uint256)", oid)
    seq = lab.addr["sequencer"]
    lab.tx("owner", seq, "set_status(int256)", 1)  # down
    lab.round()
    assert lab.e("sequencer_status()") == P.SEQUENCER_DOWN
    assert lab.reason(*execute) == "sequencer down"
    assert model_round(lab, fresh=True) == "sequencer down"
    assert lab.e("sequencer_status()") == P.SEQUENCER_DOWN
    assert chain_round(lab)[0] == 80_000 * WAD  # views read no sequencer
    lab.tx("owner", seq, "set_status(int256)", 0)  # back up now
    up = lab.now
    grace = lab.e("sequencer_grace()")
    for dt in (1, grace):
        lab.advance(up + dt - lab.now - 2)
        lab.round()  # fresh rounds at up + dt - 1; the execution lands at up + dt
        assert lab.reason(*execute) == "sequencer grace"
        assert lab.now == up + dt
        assert model_round(lab, fresh=True) == "sequencer grace"
    lab.round()  # up + grace + 1: normal
    assert model_round(lab, fresh=True) == (80_000 * WAD, lab.now)
    lab.tx(*execute, dt=0)  # past the gate
    assert lab.position("trader", 0)[0] == WAD // 10
