"""Fixtures for the vault's in-process test modules (the red-team lab on
revm): they override the ape fixtures the vault's conftest makes autouse
(its accounts exist only under ape's plugin). A module imports both names."""

import pytest


@pytest.fixture(scope="session", autouse=True)
def _roles_first():
    return None


@pytest.fixture(autouse=True)
def _narrow_twin():
    return None
