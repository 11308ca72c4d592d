"""Fixtures of the order unit tests (tests/unit/perp_orders/)."""

import pytest

ACTORS = ("owner", "trader", "other_trader", "keeper", "lp", "pauser", "stranger")


@pytest.fixture(autouse=True)
def _narrow_twin(request):
    """Make a test's `twin` (tests/conftest.py) compare only the actors these
    tests use: `assert_same` reads every listed account's state on chain,
    and the 23 untouched crowd accounts would add over a hundred reads to
    every comparison. (A same-named override of `twin` would be simpler,
    but it breaks ape's chain isolation.)"""
    if "twin" in request.fixturenames:
        request.getfixturevalue("twin").accounts = [request.getfixturevalue(a) for a in ACTORS]


@pytest.fixture(scope="session", autouse=True)
def _roles_first(owner, trader, other_trader, keeper, lp, pauser, stranger, crowd):
    """Create every session-scoped role before any module fixture: ape's
    chain isolation breaks (it redeploys `protocol` under the test) when a
    session fixture first appears after a module one."""
