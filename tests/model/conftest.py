"""Hypothesis profiles for the model tests, chosen by HYPOTHESIS_PROFILE.

    HYPOTHESIS_PROFILE=ci    (default) small: every property runs in seconds
    HYPOTHESIS_PROFILE=deep  large: a long run before a release

The lead's tests/conftest.py may register the same names first; registering
here is skipped for a name someone already registered (hypothesis's own
built-in 'ci' profile, which keeps the default counts, is replaced), so
loading twice is harmless.
"""

import os

from hypothesis import HealthCheck, Phase, settings
from hypothesis.errors import InvalidArgument

_NO_EXPLAIN = tuple(p for p in Phase if p is not Phase.explain)
_PROFILES = {
    "ci": dict(max_examples=40, stateful_step_count=40, deadline=None, database=None, print_blob=True,
               phases=_NO_EXPLAIN, suppress_health_check=[HealthCheck.too_slow]),
    "deep": dict(max_examples=2000, stateful_step_count=100, deadline=None, print_blob=True,
                 suppress_health_check=[HealthCheck.too_slow]),
}


def _free_to_register(name):
    """True unless someone registered `name` on purpose. Hypothesis ships a
    built-in 'ci' profile that keeps the default example counts; that one
    may be replaced."""
    try:
        p = settings.get_profile(name)
    except InvalidArgument:
        return True
    d = settings.get_profile("default")
    return p.max_examples == d.max_examples and p.stateful_step_count == d.stateful_step_count


for _name, _kwargs in _PROFILES.items():
    if _free_to_register(_name):
        settings.register_profile(_name, **_kwargs)

settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
