"""PerpEngine's two-step ownership (snekmate ownable_2step, in PerpAdmin).

The engine's owner is the timelock (deploy_protocol); `owner`, the
deployer, is its proposer and executor, so the twin sends `owner`'s owner
verbs through it (scripts/governance.py) and the model runs them from the
timelock's address."""

from tests.unit.perp_engine.helpers import ZERO, assert_roles_same, expect_ok, expect_revert


def test_transfer_ownership__stranger__reverts_not_owner(twin, stranger):
    expect_revert(twin, stranger, "transfer_ownership", stranger, reason="ownable: caller is not the owner")
    assert_roles_same(twin)
    assert twin.p.engine.pending_owner() == ZERO


def test_transfer_ownership__owner__names_pending_owner_and_keeps_owner(twin, owner, pauser):
    expect_ok(twin, owner, "transfer_ownership", pauser)
    assert twin.p.engine.pending_owner() == pauser.address
    assert twin.p.engine.owner() == twin.p.timelock.address
    assert_roles_same(twin)
    # Until accepted, the owner keeps every admin right and the nominee has none.
    expect_ok(twin, owner, "set_pauser", pauser)
    expect_revert(twin, pauser, "set_pauser", pauser, reason="ownable: caller is not the owner")


def test_accept_ownership__not_the_nominee__reverts(twin, owner, pauser, stranger):
    expect_ok(twin, owner, "transfer_ownership", pauser)
    for caller in (stranger, owner):
        expect_revert(twin, caller, "accept_ownership", reason="ownable_2step: caller is not the new owner")
    assert twin.p.engine.owner() == twin.p.timelock.address


def test_accept_ownership__nothing_pending__reverts(twin, owner):
    expect_revert(twin, owner, "accept_ownership", reason="ownable_2step: caller is not the new owner")


def test_accept_ownership__nominee__moves_every_admin_right(twin, owner, pauser, stranger):
    expect_ok(twin, owner, "transfer_ownership", pauser)
    expect_ok(twin, pauser, "accept_ownership")
    assert twin.p.engine.owner() == pauser.address
    assert twin.p.engine.pending_owner() == ZERO
    assert_roles_same(twin)
    expect_revert(twin, owner, "set_pauser", owner, reason="ownable: caller is not the owner")
    expect_revert(twin, owner, "transfer_ownership", owner, reason="ownable: caller is not the owner")
    expect_ok(twin, pauser, "set_pauser", stranger)
    # A second accept finds nothing pending.
    expect_revert(twin, pauser, "accept_ownership", reason="ownable_2step: caller is not the new owner")


def test_transfer_ownership__again__replaces_or_cancels_the_nominee(twin, owner, pauser, stranger):
    expect_ok(twin, owner, "transfer_ownership", pauser)
    expect_ok(twin, owner, "transfer_ownership", stranger)
    expect_revert(twin, pauser, "accept_ownership", reason="ownable_2step: caller is not the new owner")
    expect_ok(twin, owner, "transfer_ownership", ZERO)
    expect_revert(twin, stranger, "accept_ownership", reason="ownable_2step: caller is not the new owner")
    assert twin.p.engine.owner() == twin.p.timelock.address
    assert_roles_same(twin)
