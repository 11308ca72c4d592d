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


@pytest.fixture(autouse=True)
def _compare_the_accounts_in_play(request):
    """A test that uses no crowd account (directly or through `book`)
    compares the seven role accounts only: each account costs about 20 RPC
    reads per comparison. Nothing is lost: the crowd holds nothing in such a
    test, the side sets and market aggregates are still compared, and
    `assert_conserved` sums the free collateral of every account the model
    knows."""
    import inspect

    if not {"crowd", "book"} & set(inspect.signature(request.function).parameters):
        twin = request.getfixturevalue("twin")
        twin.accounts = twin.accounts[:7]
