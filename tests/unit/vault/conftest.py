"""Fixtures of the vault's unit tests (tests/unit/vault/): the same as the
engine's (tests/unit/perp_engine/conftest.py)."""

from tests.unit.perp_engine.conftest import _narrow_twin, _roles_first  # noqa: F401
