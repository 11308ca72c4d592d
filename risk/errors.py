"""The lab's one error type: a bad input or a run that cannot go on, said in
one line (the CLI prints it and exits non-zero, never a traceback)."""


class LabError(Exception):
    """A one-line reason the lab refuses an input or stops a run."""
