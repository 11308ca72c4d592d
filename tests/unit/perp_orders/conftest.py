"""Fixtures of the order unit tests (tests/unit/perp_orders/): the engine
tests' own (compare only the role accounts; create the session roles
first), imported so both folders share one definition."""

from tests.unit.perp_engine.conftest import _narrow_twin, _roles_first  # noqa: F401
