"""PerpEngine's constructor (its facets must be contracts) and initialize:
wire the vault and the insurance fund, once, owner only."""

import pytest
from ape import project
from ape.exceptions import ContractLogicError

from scripts.deploy import Protocol, engine_at
from scripts.twin import Twin, mirror_world, revert_reason
from tests.unit.perp_engine.helpers import ZERO, assert_roles_same, expect_ok, expect_revert


@pytest.fixture
def fresh(protocol, owner, stranger):
    """A twin of an engine deployed but not yet initialized (with a vault
    and a fund built for it), sharing the module protocol's token."""
    token = protocol.token
    exits = owner.deploy(project.PerpExits, token)
    orders = owner.deploy(project.PerpOrders, token)
    admin = owner.deploy(project.PerpAdmin, token)
    engine = owner.deploy(project.PerpEngine, token, exits, orders, admin)
    vault = owner.deploy(project.LiquidityVault, token, engine)
    fund = owner.deploy(project.InsuranceFund, token, engine)
    p = Protocol(engine=engine_at(engine.address), vault=vault, insurance_fund=fund, token=token, feeds=[],
                 exits=exits, orders=orders, admin=admin)
    w = mirror_world(p, owner)
    w.e.vault, w.e.insurance_fund = engine.vault(), engine.insurance_fund()
    assert w.e.vault == ZERO and w.e.insurance_fund == ZERO
    return Twin(p, w, [owner, stranger])


def test_initialize__owner__wires_vault_and_fund(fresh, owner):
    expect_ok(fresh, owner, "initialize", fresh.p.vault, fresh.p.insurance_fund)
    assert fresh.p.engine.vault() == fresh.p.vault.address
    assert fresh.p.engine.insurance_fund() == fresh.p.insurance_fund.address
    fresh.assert_same()
    assert_roles_same(fresh)


def test_initialize__second_call__reverts_initialized(fresh, owner, stranger):
    expect_ok(fresh, owner, "initialize", fresh.p.vault, fresh.p.insurance_fund)
    expect_revert(fresh, owner, "initialize", stranger, stranger, reason="engine: initialized")
    assert fresh.p.engine.vault() == fresh.p.vault.address


def test_initialize__deployed_protocol__reverts_initialized(twin, owner, stranger):
    expect_revert(twin, owner, "initialize", stranger, stranger, reason="engine: initialized")


def test_initialize__stranger__reverts_not_owner(fresh, stranger):
    expect_revert(fresh, stranger, "initialize", fresh.p.vault, fresh.p.insurance_fund,
                  reason="ownable: caller is not the owner")
    assert fresh.p.engine.vault() == ZERO


def test_initialize__zero_address__reverts(fresh, owner):
    vault, fund = fresh.p.vault.address, fresh.p.insurance_fund.address
    for args in ((ZERO, fund), (vault, ZERO), (ZERO, ZERO)):
        expect_revert(fresh, owner, "initialize", *args, reason="engine: zero address")
    assert fresh.p.engine.vault() == ZERO and fresh.p.engine.insurance_fund() == ZERO


def test_constructor__a_facet_that_is_not_a_contract__reverts_facets(protocol, owner, stranger):
    """PerpExits, PerpOrders and PerpAdmin are reached by delegatecall: an
    address without code there would make every forwarded verb a silent
    no-op."""
    token, exits, orders, admin = protocol.token, protocol.exits, protocol.orders, protocol.admin
    for args in ((stranger, orders, admin), (exits, stranger, admin), (exits, orders, stranger),
                 (ZERO, orders, admin), (exits, ZERO, admin), (exits, orders, ZERO), (ZERO, ZERO, ZERO)):
        with pytest.raises(ContractLogicError) as exc:
            owner.deploy(project.PerpEngine, token, *args)
        assert revert_reason(exc.value) == "engine: facets"
    engine = owner.deploy(project.PerpEngine, token, exits, orders, admin)  # the control: all are contracts
    assert engine.EXITS() == exits.address and engine.ORDERS() == orders.address
    assert engine.ADMIN() == admin.address
