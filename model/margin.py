"""Mirror of contracts/margin.vy: notional, upnl, requirements, liquidation
and bankruptcy prices, ADL score. See that file's glossary."""

from model.fixed_point import WAD, mul_div_down, mul_div_up, div_floor, div_ceil


def notional_down(size, price, scale):
    """margin.notional_down"""
    return mul_div_down(abs(size), price, scale)


def notional_up(size, price, scale):
    """margin.notional_up"""
    return mul_div_up(abs(size), price, scale)


def requirement(size, price, fraction, scale):
    """margin.requirement: ceil(notional_up * fraction / 1e18)."""
    return mul_div_up(notional_up(size, price, scale), fraction, WAD)


def upnl(size, entry, price, scale):
    """margin.upnl: size * (price - entry) / scale, floored."""
    return div_floor(size * (price - entry), scale)


def liquidation_price(size, entry, eff_margin, mmf, scale):
    """margin.liquidation_price"""
    if size == 0:
        return 0
    s = abs(size)
    if size > 0:
        num = s * entry - eff_margin * scale
        if num <= 0:
            return 0
        return mul_div_up(num, WAD, s * (WAD - mmf))
    num = s * entry + eff_margin * scale
    if num <= 0:
        return 0
    return mul_div_down(num, WAD, s * (WAD + mmf))


def bankruptcy_price(size, entry, eff_margin, scale):
    """margin.bankruptcy_price"""
    if size == 0:
        return 0
    s = abs(size)
    if size > 0:
        num = s * entry - eff_margin * scale
        if num <= 0:
            return 0
        return div_ceil(num, s)
    num = s * entry + eff_margin * scale
    if num <= 0:
        return 0
    return div_floor(num, s)


def adl_score(pnl, margin_, notional):
    """margin.adl_score: (upnl / margin) * (notional / (margin + upnl))."""
    if pnl <= 0 or margin_ == 0:
        return 0
    return mul_div_down(mul_div_down(pnl, WAD, margin_), notional, margin_ + pnl)
