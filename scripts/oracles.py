"""The oracle wiring of a deployment (PerpEngine.set_oracle and
set_sequencer_feed, docs/trust.md "Oracles"), shared by scripts/deploy.py
and the in-process backends of the state machine.

    plan = oracle_plan(conf, decimals)    # what to deploy and call, from a validated config dict
"""

from scripts import config as cfg

ZERO = "0x" + "00" * 20
# A mock sequencer-uptime feed is "up since" this time: long before any
# devnet block, so the grace period never covers the devnet's first hour.
MOCK_SEQUENCER_UP_SINCE = 1


def mock_fallbacks(conf):
    """[(market id, MockAggregator constructor args)] for the fallbacks a
    mocks: true config asks for."""
    fd = conf.get("feed_decimals", 8)
    return [(i, (fd, m["fallback_initial_price"] * 10**fd))
            for i, m in enumerate(conf["markets"]) if m.get("fallback_initial_price") is not None]


def set_oracle_calls(conf, fallbacks):
    """[(market id, OracleParams)] for every market that sets a heartbeat;
    `fallbacks`: {market id: fallback feed address}."""
    calls = []
    for i, m in enumerate(conf["markets"]):
        fallback = fallbacks.get(i)
        if fallback is None and m.get("fallback_feed"):
            fallback = m["fallback_feed"]
        o = cfg.oracle_params(m, fallback)
        if o is not None:
            calls.append((i, o))
    return calls


def deploy_oracles(engine, conf, deploy_feed, deploy_sequencer, call):
    """Deploy what a mocks config asks for, then set every market's oracle
    and the sequencer feed. deploy_feed(args) / deploy_sequencer(up_since)
    return an address; call(verb, *args) sends as the owner. Returns
    ({market id: fallback address}, sequencer address or None)."""
    fallbacks = {i: deploy_feed(args) for i, args in mock_fallbacks(conf)} if conf["mocks"] else {}
    for mid, o in set_oracle_calls(conf, fallbacks):
        call("set_oracle", mid, o.as_tuple())
    if not conf["mocks"]:
        fallbacks = {i: m["fallback_feed"] for i, m in enumerate(conf["markets"]) if m.get("fallback_feed")}
    seq = conf.get("sequencer")
    sequencer = None
    if seq:
        sequencer = deploy_sequencer(MOCK_SEQUENCER_UP_SINCE) if seq.get("mock") else seq["feed"]
        call("set_sequencer_feed", sequencer, seq["grace_period"])
    return fallbacks, sequencer
