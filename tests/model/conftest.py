"""Hypothesis profiles for the model tests, chosen by HYPOTHESIS_PROFILE.

    HYPOTHESIS_PROFILE=ci    (default) small: every property runs in seconds
    HYPOTHESIS_PROFILE=deep  large: a long run before a release

The lead's tests/conftest.py may register the same names first; registering
here is skipped for a name that already exists, so loading twice is harmless.
"""

import os

from hypothesis import HealthCheck, settings
from hypothesis.errors import InvalidArgument

_PROFILES = {
    "ci": dict(max_examples=40, stateful_step_count=30, deadline=None, print_blob=True,
               suppress_health_check=[HealthCheck.too_slow]),
    "deep": dict(max_examples=2000, stateful_step_count=100, deadline=None, print_blob=True,
                 suppress_health_check=[HealthCheck.too_slow]),
}

for _name, _kwargs in _PROFILES.items():
    try:
        settings.get_profile(_name)
    except InvalidArgument:
        settings.register_profile(_name, **_kwargs)

settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
