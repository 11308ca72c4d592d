"""The owner of every contract is snekmate's TimelockController
(deploy_protocol's hand-over, scripts/governance.py; docs/trust.md).

On the devnet its delay is 0 and the deployer proposes and executes, so
every test runs with the timelock as owner; here: the deployer's key alone
changes nothing, and the roles and delay come from the config."""

import ape
import pytest
from ape import chain

from scripts import config as cfg
from scripts.deploy import deploy_protocol
from scripts.governance import (
    CANCELLER_ROLE, EXECUTOR_ROLE, PROPOSER_ROLE, ZERO_ADDRESS, govern, governed, schedule)
from scripts.twin import read_state

USDC = 10**6
DEFAULT_ADMIN_ROLE = b"\x00" * 32


def owner_calls(p, someone):
    """Every owner-only verb of engine, vault and fund, with valid arguments."""
    e, v, f = p.engine, p.vault, p.insurance_fund
    params = tuple(e.market_params(0))
    return [
        (e, "set_market_params", (0, params)), (e, "add_market", (params,)), (e, "set_pauser", (someone,)),
        (e, "set_order_expiry", (3_600,)), (e, "set_max_profit", (6 * 10**17,)), (e, "set_keeper_reward", (0, 0)),
        (e, "transfer_ownership", (someone,)), (e, "initialize", (someone, someone)),
        (v, "set_settle_fee", (1,)), (v, "transfer_ownership", (someone,)),
        (f, "set_floor", (0,)), (f, "withdraw_surplus", (someone, 1)), (f, "transfer_ownership", (someone,)),
    ]


def test_deploy__the_timelock_owns_engine_vault_and_fund(protocol, owner):
    p, tl = protocol, protocol.timelock
    assert p.engine.owner() == p.vault.owner() == p.insurance_fund.owner() == tl.address
    assert p.engine.pending_owner() == p.insurance_fund.pending_owner() == ZERO_ADDRESS
    # devnet governance: delay 0, the deployer proposes, cancels and executes; nobody administers
    # the timelock but itself
    assert tl.get_minimum_delay() == 0
    for role in (PROPOSER_ROLE, EXECUTOR_ROLE, CANCELLER_ROLE):
        assert tl.hasRole(role, owner)
    assert not tl.hasRole(DEFAULT_ADMIN_ROLE, owner) and tl.hasRole(DEFAULT_ADMIN_ROLE, tl)
    assert not tl.hasRole(EXECUTOR_ROLE, ZERO_ADDRESS)  # execution is not open on the devnet


def test_deployer_key_alone__every_owner_verb_reverts_and_changes_nothing(protocol, owner, stranger):
    p = protocol
    chain.mine()
    accounts = [owner.address, stranger.address]
    before = read_state(p, accounts), [tuple(p.engine.market_params(0))], p.engine.pauser(), p.vault.settle_fee()
    for contract, verb, args in owner_calls(p, stranger):
        with ape.reverts("ownable: caller is not the owner"):
            getattr(contract, verb)(*args, sender=owner)
    after = read_state(p, accounts), [tuple(p.engine.market_params(0))], p.engine.pauser(), p.vault.settle_fee()
    assert after == before
    # the control: the same key, through the timelock, is the owner
    governed(p.timelock, p.engine, "set_pauser", stranger, sender=owner)
    assert p.engine.pauser() == stranger.address


def test_timelock__only_a_proposer_schedules_and_the_delay_is_the_minimum(protocol, owner, stranger):
    p, tl = protocol, protocol.timelock
    data = p.engine.set_pauser.encode_input(stranger)
    with ape.reverts("access_control: account is missing role"):
        schedule(tl, p.engine, data, stranger)
    with ape.reverts("access_control: account is missing role"):
        tl.grantRole(PROPOSER_ROLE, stranger, sender=owner)  # roles change only through an operation
    with ape.reverts("timelock_controller: caller must be timelock"):
        tl.update_delay(1, sender=owner)
    assert p.engine.pauser() != stranger.address


@pytest.fixture
def public(owner):
    """A deployment with the sepolia entry's governance (two days, execution
    open once ready, the deployer proposes and pauses), on devnet mocks."""
    entry = cfg.load("local")
    entry["governance"] = cfg.load("sepolia")["governance"]
    return deploy_protocol(owner, config=entry)


def test_public_governance__configured_delay_and_roles(public, owner, stranger):
    p, tl = public, public.timelock
    delay = cfg.load("sepolia")["governance"]["min_delay"]
    assert delay >= cfg.MIN_PUBLIC_DELAY
    assert tl.get_minimum_delay() == delay
    assert tl.hasRole(PROPOSER_ROLE, owner) and tl.hasRole(CANCELLER_ROLE, owner)
    assert not tl.hasRole(EXECUTOR_ROLE, owner) and tl.hasRole(EXECUTOR_ROLE, ZERO_ADDRESS)  # "anyone"
    assert p.engine.pauser() == owner.address
    data = p.engine.set_pauser.encode_input(stranger)
    with ape.reverts("timelock_controller: insufficient delay"):
        schedule(tl, p.engine, data, owner, delay=delay - 1)
    op = schedule(tl, p.engine, data, owner)
    with ape.reverts("timelock_controller: operation is not ready"):
        tl.execute(op.target, 0, op.calldata, b"\x00" * 32, op.salt, sender=stranger)
    chain.pending_timestamp = op.ready_at
    tl.execute(op.target, 0, op.calldata, b"\x00" * 32, op.salt, sender=stranger)  # anyone executes once ready
    assert p.engine.pauser() == stranger.address
    # and govern() waits a local chain's clock out
    govern(tl, p.engine, p.engine.set_pauser.encode_input(owner), owner)
    assert p.engine.pauser() == owner.address
