# pragma version 0.4.3
"""
@title funding
@notice Skew-based continuous funding: the rate, the cumulative index step,
        and what a position owes. model/funding.py mirrors every function.
@dev rate_per_second = clamp(k * (long_oi - short_oi) / (long_oi + short_oi),
     -max_rate, +max_rate), 1e18 fixed point per second. The index (USD per
     unit of size, 1e18) grows by rate * price * dt. A position owes
     size * (index_now - index_at_settlement) / scale token units, rounded up:
     a payer pays the extra unit, a receiver receives one unit less. The vault
     takes the other side of every settlement, so funding is zero-sum to the
     unit (the rounding unit stays with the vault).
     The borrowing fee (decision 96) is a second index B per market that only
     grows, by borrow_rate * price * dt, rounded up: longs settle against
     F + B and shorts against F - B (side_index), so both sides pay it to
     the vault through the same `owed`.
"""

import fixed_point as fp

WAD: constant(uint256) = 10**18


@internal
@pure
def rate(long_oi: uint256, short_oi: uint256, k: uint256, max_rate: uint256) -> int256:
    """
    @notice The per-second funding rate from the skew, floored, then clamped.
    """
    total: uint256 = long_oi + short_oi
    if total == 0:
        return 0
    skew: int256 = convert(long_oi, int256) - convert(short_oi, int256)
    r: int256 = fp.div_floor(convert(k, int256) * skew, convert(total, int256))
    cap: int256 = convert(max_rate, int256)
    return max(-cap, min(cap, r))


@internal
@pure
def index_step(r: int256, price: uint256, dt: uint256) -> int256:
    """
    @notice rate * price * dt / 1e18, floored.
    """
    return fp.div_floor(r * convert(price, int256) * convert(dt, int256), convert(WAD, int256))


@internal
@pure
def owed(size: int256, index_now: int256, index_at: int256, scale: uint256) -> int256:
    """
    @notice Funding a position owes since its last settlement, token units,
            rounded up (against the trader). Negative means it receives.
    """
    return fp.div_ceil(size * (index_now - index_at), convert(scale, int256))


@internal
@pure
def borrow_step(rate: uint256, price: uint256, dt: uint256) -> int256:
    """
    @notice borrow_rate * price * dt / 1e18, rounded up (the borrower pays
            the extra unit).
    """
    return convert(fp.mul_div_up(rate * price, dt, WAD), int256)


@internal
@pure
def side_index(size: int256, index: int256, borrow: int256) -> int256:
    """
    @notice The index a position of `size` settles against: index + borrow
            for a long, index - borrow for a short (its size is negative, so
            a growing borrow index is owed by both).
    """
    if size < 0:
        return index - borrow
    return index + borrow
