"""Fixtures of the vault's unit tests (tests/unit/vault/)."""

import pytest

from tests.unit.perp_engine.helpers import memoize_dev_accounts

memoize_dev_accounts()


@pytest.fixture
def twin(twin, owner, trader, other_trader, keeper, lp, pauser, stranger):
    """tests/conftest.py's `twin` (LP liquidity in, traders funded), comparing
    the actors these tests use: `assert_same` reads every listed account's
    state on chain, and the untouched crowd would triple its cost."""
    twin.accounts = [owner, trader, other_trader, keeper, lp, pauser, stranger]
    return twin


@pytest.fixture(scope="session", autouse=True)
def _roles_first(owner, trader, other_trader, keeper, lp, pauser, stranger, crowd):
    """Create every session-scoped role before any module fixture: ape's
    chain isolation breaks (it redeploys `protocol` under the test) when a
    session fixture first appears after a module one."""
