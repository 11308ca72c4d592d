# pragma version 0.4.3
"""
@title fixed_point
@notice Every rounding rule of the protocol, written once. Nothing else in
        contracts/ divides. model/fixed_point.py mirrors each function.
@dev Unsigned helpers use snekmate's 512-bit `_mul_div`; signed helpers exist
     because Vyper's `//` truncates toward zero, while the protocol needs to
     name the direction (floor = toward -inf, ceil = toward +inf).
"""

from snekmate.utils import math

WAD: constant(uint256) = 10**18


@internal
@pure
def mul_div_down(x: uint256, y: uint256, d: uint256) -> uint256:
    """
    @notice floor(x * y / d), 512-bit intermediate.
    """
    return math._mul_div(x, y, d, False)


@internal
@pure
def mul_div_up(x: uint256, y: uint256, d: uint256) -> uint256:
    """
    @notice ceil(x * y / d), 512-bit intermediate.
    """
    return math._mul_div(x, y, d, True)


@internal
@pure
def div_floor(a: int256, b: int256) -> int256:
    """
    @notice floor(a / b) for b > 0 (toward -inf).
    """
    q: int256 = a // b
    if a % b != 0 and a < 0:
        q -= 1
    return q


@internal
@pure
def div_ceil(a: int256, b: int256) -> int256:
    """
    @notice ceil(a / b) for b > 0 (toward +inf).
    """
    q: int256 = a // b
    if a % b != 0 and a > 0:
        q += 1
    return q
