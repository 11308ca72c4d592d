"""Mirror of contracts/fixed_point.vy: every rounding rule, written once.

Python's `//` floors, Vyper's truncates toward zero: the signed helpers name
the direction so the two code bases agree to the unit.
"""

WAD = 10**18
MAX_UINT256 = 2**256 - 1
MIN_INT256 = -(2**255)
MAX_INT256 = 2**255 - 1


class Revert(Exception):
    """A reverted call. `reason` is the contract's revert string, or None for
    a revert without one (a checked-arithmetic failure)."""

    def __init__(self, reason=None):
        super().__init__(reason)
        self.reason = reason


def check(cond, reason):
    """Vyper's `assert cond, reason`."""
    if not cond:
        raise Revert(reason)


def u(x):
    """A uint256 result: Vyper reverts (no reason) outside the range."""
    if x < 0 or x > MAX_UINT256:
        raise Revert(None)
    return x


def i(x):
    """An int256 result: Vyper reverts (no reason) outside the range."""
    if x < MIN_INT256 or x > MAX_INT256:
        raise Revert(None)
    return x


def _mul_div(x, y, d, roundup):
    """snekmate math._mul_div, with its revert reasons: a zero divisor and a
    floor that does not fit uint256 revert with a reason; the final `+ 1` of
    a ceiling is checked arithmetic (reverts without one)."""
    check(d != 0, "math: mul_div division by zero")
    q, r = divmod(x * y, d)
    check(q <= MAX_UINT256, "math: mul_div overflow")
    if roundup and r != 0:
        q += 1
    return u(q)


def mul_div_down(x, y, d):
    """fixed_point.mul_div_down: floor(x * y / d) (snekmate math._mul_div)."""
    return _mul_div(x, y, d, False)


def mul_div_up(x, y, d):
    """fixed_point.mul_div_up: ceil(x * y / d)."""
    return _mul_div(x, y, d, True)


def div_floor(a, b):
    """fixed_point.div_floor: floor(a / b) for b > 0."""
    return i(a // b)


def div_ceil(a, b):
    """fixed_point.div_ceil: ceil(a / b) for b > 0."""
    return i(-((-a) // b))
