"""Fixtures of the insurance fund's unit tests (tests/unit/insurance_fund/): the same as the
engine's (tests/unit/perp_engine/conftest.py)."""

from tests.unit.perp_engine.conftest import _narrow_twin, _roles_first  # noqa: F401
