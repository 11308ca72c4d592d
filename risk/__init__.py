"""Backstop's risk lab: crash cascades at scale through the exact model
(model/), ADL policies side by side, and the insurance fund sized by
simulation. See docs/risk.md; `python -m risk --help`."""

from risk.book import BookSpec, draw_book
from risk.errors import LabError
from risk.lab import Run, Scenario, run
from risk.paths import make_path

__all__ = ["BookSpec", "LabError", "Run", "Scenario", "draw_book", "make_path", "run"]
