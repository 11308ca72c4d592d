"""Backstop's pure-Python reference model.

One module per contract module, same stem (positions.py mirrors
positions.vy, ...). Python ints only; every division goes through
fixed_point.py. `protocol.World` ties the pieces together with an explicit
clock and oracle, and makes every verb transactional: a verb that raises
`Revert` leaves the world exactly as it was, as a reverted transaction does.
"""
from model.fixed_point import Revert  # noqa: F401
from model.protocol import World  # noqa: F401
