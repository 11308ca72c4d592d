"""Fixtures of the exits' unit tests (tests/unit/perp_exits/)."""

import pytest


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
