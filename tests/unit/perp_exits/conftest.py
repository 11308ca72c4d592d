"""ape-foundry prints a full call trace for every reverted transaction, and
building it costs about 1.8 s (it regenerates the test accounts to label
addresses). These tests send dozens of expected reverts, so the trace is
dropped here; the revert reason, which the twin compares, is unchanged."""

import pytest


@pytest.fixture(autouse=True, scope="session")
def _no_revert_traces():
    from ape_foundry.provider import FoundryProvider

    original = FoundryProvider._handle_execution_reverted

    def without_trace(self, exception, revert_message=None, **kwargs):
        kwargs.pop("trace", None)
        kwargs.pop("txn", None)
        return original(self, exception, revert_message=revert_message, **kwargs)

    FoundryProvider._handle_execution_reverted = without_trace
    yield
    FoundryProvider._handle_execution_reverted = original
