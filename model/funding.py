"""Mirror of contracts/funding.vy: skew-based rate, index step, owed."""

from model.fixed_point import WAD, div_floor, div_ceil, mul_div_up


def rate(long_oi, short_oi, k, max_rate):
    """funding.rate: clamp(floor(k * skew / total), -max, +max)."""
    total = long_oi + short_oi
    if total == 0:
        return 0
    r = div_floor(k * (long_oi - short_oi), total)
    return max(-max_rate, min(max_rate, r))


def index_step(r, price, dt):
    """funding.index_step: floor(rate * price * dt / 1e18)."""
    return div_floor(r * price * dt, WAD)


def owed(size, index_now, index_at, scale):
    """funding.owed: ceil(size * (index_now - index_at) / scale)."""
    return div_ceil(size * (index_now - index_at), scale)


def borrow_step(rate, price, dt):
    """funding.borrow_step: ceil(borrow_rate * price * dt / 1e18)."""
    return mul_div_up(rate * price, dt, WAD)


def side_index(size, index, borrow):
    """funding.side_index: index - borrow for a short, index + borrow otherwise."""
    if size < 0:
        return index - borrow
    return index + borrow
