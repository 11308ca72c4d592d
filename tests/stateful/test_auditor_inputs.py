"""The auditors' two inputs to the differential machine, checked before any
test runs (tests/stateful/conftest.py):

- BACKSTOP_REPRODUCE takes what hypothesis prints for a failure verbatim:
  the `@reproduce_failure('<version>', b'<blob>')` line, or its arguments
  with their quotes; the blob replays the failure;
- BACKSTOP_DEEP_STEPS (make fuzz-deep STEPS=N) takes any N >= 1.

A bad value stops pytest with one line and exit code 4, before collection."""

import ast
import os
import subprocess
import sys
from pathlib import Path

import hypothesis
import pytest
from hypothesis import given, reproduce_failure, settings, strategies as st
from hypothesis.core import reproduction_decorator

from tests.stateful import conftest as C

ROOT = Path(__file__).resolve().parents[2]

PRINTED = reproduction_decorator([7])  # exactly what hypothesis prints: @reproduce_failure('6.170.15', b'...')
ARGS = ast.literal_eval(PRINTED.removeprefix("@reproduce_failure"))  # (version, blob bytes)


@pytest.mark.parametrize("text", [
    PRINTED,
    PRINTED.removeprefix("@"),
    PRINTED.removeprefix("@reproduce_failure(").removesuffix(")"),  # '6.170.15', b'...'
    PRINTED.removeprefix("@reproduce_failure(").removesuffix(")").replace(",", ""),  # '6.170.15' b'...' (README)
    "{} {}".format(ARGS[0], ARGS[1].decode()),
], ids=["decorator", "without @", "arguments", "arguments without comma", "bare"])
def test_reproduce__what_hypothesis_prints__replays_the_failure(text):
    version, blob = C.parse_reproduce(text)
    assert version == hypothesis.__version__
    assert PRINTED == f"@reproduce_failure({version!r}, {blob.encode()!r})"

    @reproduce_failure(version, blob.encode())
    @settings(database=None)
    @given(st.integers())
    def fails_on_seven(x):
        assert x != 7

    with pytest.raises(AssertionError, match="assert 7 != 7"):
        fails_on_seven()


def test_reproduce__normalized_for_the_machine(monkeypatch):
    """machine.run() reads "VERSION BLOB": the conftest rewrites the
    verbatim line into it for this process and the forked workers."""
    monkeypatch.setenv("BACKSTOP_REPRODUCE", PRINTED)
    errors = []
    monkeypatch.setattr(C, "_ERRORS", errors)
    C._reproduce()
    assert errors == []
    version, blob = C.parse_reproduce(PRINTED)
    assert os.environ["BACKSTOP_REPRODUCE"] == f"{version} {blob}"


@pytest.mark.parametrize("text, message", [
    ("nonsense", "BACKSTOP_REPRODUCE must be what hypothesis printed, @reproduce_failure('<version>', b'<blob>') or "
                 "its two arguments; got 'nonsense'"),
    ("@reproduce_failure('6.0.0', b'AAEHAA==')", "BACKSTOP_REPRODUCE was printed by hypothesis 6.0.0; this is "
     f"{hypothesis.__version__} (a blob replays only on the version that printed it: rerun to get a new one)"),
], ids=["not a failure line", "another hypothesis version"])
def test_reproduce__bad__one_line(monkeypatch, text, message):
    monkeypatch.setenv("BACKSTOP_REPRODUCE", text)
    errors = []
    monkeypatch.setattr(C, "_ERRORS", errors)
    C._reproduce()
    assert errors == [message]


@pytest.mark.parametrize("raw, steps", [("1", 1), ("100", 100), ("5_000", 5000), ("250,000", 250_000)])
def test_deep_steps__any_positive_n(raw, steps):
    assert C.deep_steps(raw) == steps


@pytest.mark.parametrize("raw", ["0", "-3", "ten", "1.5", ""])
def test_deep_steps__bad__one_line(raw):
    with pytest.raises(ValueError) as e:
        C.deep_steps(raw)
    assert str(e.value) == (f"BACKSTOP_DEEP_STEPS (make fuzz-deep STEPS=N) must be a whole number of steps, "
                            f"at least 1; got {raw!r}")


def test_pytest__bad_inputs__one_line_exit_4_nothing_runs():
    """Both checks end the run in pytest_configure: one 'ERROR:' line, exit
    code 4 (usage error), no test collected, no traceback."""
    env = {**os.environ, "HYPOTHESIS_PROFILE": "deep", "BACKSTOP_DEEP_STEPS": "ten", "PYTHONPATH": str(ROOT),
           "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}  # no plugin is needed to reach pytest_configure
    env.pop("BACKSTOP_REPRODUCE", None)
    r = subprocess.run([sys.executable, "-m", "pytest", "tests/stateful/test_auditor_inputs.py", "-q",
                        "-p", "no:ape_test", "-p", "no:cacheprovider"], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert r.returncode == 4
    lines = [x for x in (r.stdout + r.stderr).splitlines() if x.strip()]
    assert lines == ["ERROR: BACKSTOP_DEEP_STEPS (make fuzz-deep STEPS=N) must be a whole number of steps, at "
                     "least 1; got 'ten'"]


def test_deep_profile__quick_check__examples_scale_with_steps():
    """A short deep run asks hypothesis for few examples (a 100-step
    quick check is not 300 examples of up to 100 steps)."""
    code = ("import importlib, os; from hypothesis import settings; import tests.stateful.conftest as c\n"
            "for n in ('100', '20000', '1000000'):\n"
            "    os.environ['BACKSTOP_DEEP_STEPS'] = n; importlib.reload(c)\n"
            "    print(c.DEEP_STEPS, settings.get_profile('deep').max_examples, c.DEEP_LABELS_REQUIRED)\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("BACKSTOP_REPRODUCE", None)
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["100 2 False", "20000 300 True", "1000000 300 True"]
