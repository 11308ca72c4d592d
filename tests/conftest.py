"""Shared fixtures: role-named actors, a deployed protocol, and its model twin.

ape's pytest plugin isolates every test in a chain snapshot, so each test
starts from the module's freshly deployed protocol.
"""

import copy

import pytest

from scripts.deploy import deploy_protocol
from scripts.twin import Twin, mirror_world

USDC = 10**6
WAD = 10**18


@pytest.fixture(autouse=True, scope="session")
def _no_revert_traces():
    """ape-foundry builds a full call trace for every reverted transaction,
    at about 1.8 s each (it regenerates the test accounts to label
    addresses). The suites send hundreds of expected reverts, so the trace
    is dropped; the revert reason, which the twin compares, is unchanged."""
    from ape_foundry.provider import FoundryProvider

    original = FoundryProvider._handle_execution_reverted

    def without_trace(self, exception, revert_message=None, **kwargs):
        kwargs.pop("trace", None)
        kwargs.pop("txn", None)
        return original(self, exception, revert_message=revert_message, **kwargs)

    FoundryProvider._handle_execution_reverted = without_trace
    yield
    FoundryProvider._handle_execution_reverted = original


@pytest.fixture(scope="session")
def owner(accounts):
    return accounts[0]


@pytest.fixture(scope="session")
def trader(accounts):
    return accounts[1]


@pytest.fixture(scope="session")
def other_trader(accounts):
    return accounts[2]


@pytest.fixture(scope="session")
def keeper(accounts):
    return accounts[3]


@pytest.fixture(scope="session")
def lp(accounts):
    return accounts[4]


@pytest.fixture(scope="session")
def pauser(accounts):
    return accounts[5]


@pytest.fixture(scope="session")
def stranger(accounts):
    return accounts[6]


@pytest.fixture(scope="session")
def crowd(accounts):
    """Traders for multi-position scenarios (ADL rankings)."""
    return list(accounts[7:30])


@pytest.fixture(scope="module")
def protocol(owner):
    return deploy_protocol(owner)


def _detached(state):
    """A Twin's own state, detached: the model deep-copied (tests mutate
    it), lists copied, the rest as it is (contracts and accounts are handles)."""
    return {k: copy.deepcopy(v) if k == "w" else list(v) if isinstance(v, list) else v for k, v in state.items()}


@pytest.fixture(scope="module")
def _twin_module(protocol, owner, trader, other_trader, keeper, lp, pauser, stranger, crowd):
    """The twin's starting state, built once per module (about 2 s of
    transactions): ape's isolation snapshots the chain after it and
    reverts to it after every test; `twin` restores the model side."""
    w = mirror_world(protocol, owner)
    w.v.escrow = protocol.vault.ESCROW()
    t = Twin(protocol, w, [owner, trader, other_trader, keeper, lp, pauser, stranger, *crowd])
    t.fund(lp, 10_000_000 * USDC)
    lp_deposit(t, lp, 5_000_000 * USDC)
    for a in (trader, other_trader, keeper):
        t.fund(a, 1_000_000 * USDC)
    t.assert_same()
    return t, _detached(t.__dict__)


@pytest.fixture
def twin(_twin_module):
    """Chain and model side by side, LP liquidity in, traders funded: the
    module's starting state, chain and model, at every test's start."""
    t, start = _twin_module
    t.__dict__.clear()
    t.__dict__.update(_detached(start))
    return t


def lp_deposit(t, lp, assets, settler=None):
    """An LP deposit through the vault's epochs (ERC-7540), on chain and
    model: requestDeposit, a later round on every feed, settle (by
    `settler`, the LP by default), and the claim of what was requested."""
    for verb, args in (("vault.requestDeposit", (assets, lp, lp)), ("restamp", ()),
                       ("vault.settle", ()), ("vault.deposit", (assets, lp))):
        if verb == "restamp":
            for mid in range(len(t.p.feeds)):
                t.restamp(mid, lp)
            continue
        ok, reason = t.act(settler or lp if verb == "vault.settle" else lp, verb, *args)
        assert ok, f"{verb}{args}: {reason}"
