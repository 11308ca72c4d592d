"""pytest plugin for the mutant runs (`-p tests.mutants.plugin`): the
profile the tests chose (ci unless HYPOTHESIS_PROFILE says otherwise), minus
the example database and the shrink and explain phases.

Generation is unchanged, so a seed finds exactly what it finds in the plain
ci run; without shrinking a failure is reported at once instead of after
minutes of minimising, and without the database one seed's failure cannot
be replayed into the next seed's run (each seed must catch the mutant on its
own)."""

import os


def pytest_collection_finish(session):
    from hypothesis import Phase, settings

    try:
        base = settings.get_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
    except Exception:  # the model tests register no profile: the default is theirs
        base = settings.default
    phases = tuple(p for p in base.phases if p not in (Phase.shrink, Phase.explain))
    settings.register_profile("mutants", parent=base, database=None, phases=phases)
    settings.load_profile("mutants")
