# pragma version 0.4.3
"""
@title margin
@notice Pure position math: notional, unrealised PnL, margin requirements,
        liquidation and bankruptcy prices, and the ADL score.
        model/margin.py mirrors every function here.
@dev Glossary.
     size      signed asset amount, 1e18 fixed point (long > 0, short < 0).
     price     USD per asset unit, 1e18 fixed point.
     scale     10**(36 - token decimals): size * price / scale is token units.
     notional  |size| * price / scale, in token units.
     upnl      size * (price - entry) / scale, floored (against the trader).
     margin    collateral locked in the position, token units; "effective
               margin" is margin minus funding owed and may be negative.
     equity    effective margin + upnl.
     requirement  ceil(notional_up * fraction): imf for opening, mmf for
               maintenance. Liquidatable when equity < maintenance.
     bankruptcy price  the price at which equity is zero.
     score     (upnl / margin) * (notional / (margin + upnl)), 1e18 fixed
               point: profit ratio times effective leverage. 0 unless upnl > 0.
"""

import fixed_point as fp

WAD: constant(uint256) = 10**18


@internal
@pure
def notional_down(size: int256, price: uint256, scale: uint256) -> uint256:
    """
    @notice |size| * price / scale, rounded down (a value paid out).
    """
    return fp.mul_div_down(convert(abs(size), uint256), price, scale)


@internal
@pure
def notional_up(size: int256, price: uint256, scale: uint256) -> uint256:
    """
    @notice |size| * price / scale, rounded up (a base for charges).
    """
    return fp.mul_div_up(convert(abs(size), uint256), price, scale)


@internal
@pure
def requirement(size: int256, price: uint256, fraction: uint256, scale: uint256) -> uint256:
    """
    @notice ceil(notional_up * fraction / 1e18): a margin requirement or a
            fee, always rounded up.
    """
    return fp.mul_div_up(self.notional_up(size, price, scale), fraction, WAD)


@internal
@pure
def upnl(size: int256, entry: uint256, price: uint256, scale: uint256) -> int256:
    """
    @notice size * (price - entry) / scale, floored (against the trader).
    @dev |size| < 2**120 and prices < 2**128, so the product fits int256.
    """
    return fp.div_floor(size * (convert(price, int256) - convert(entry, int256)), convert(scale, int256))


@internal
@pure
def liquidation_price(size: int256, entry: uint256, eff_margin: int256, mmf: uint256, scale: uint256) -> uint256:
    """
    @notice The price at which equity equals maintenance, ignoring fees.
            Long: (entry - m/size) / (1 - mmf), rounded up.
            Short: (entry + m/|size|) / (1 + mmf), rounded down.
            Both roundings put the reported price on the trader's unsafe side.
    @return 0 when a long cannot be liquidated by any positive price
            (or a short is liquidatable at every price).
    """
    if size == 0:
        return 0
    s: int256 = abs(size)
    num: int256 = 0
    if size > 0:
        num = s * convert(entry, int256) - eff_margin * convert(scale, int256)
        if num <= 0:
            return 0
        return fp.mul_div_up(convert(num, uint256), WAD, convert(s, uint256) * (WAD - mmf))
    num = s * convert(entry, int256) + eff_margin * convert(scale, int256)
    if num <= 0:
        return 0
    return fp.mul_div_down(convert(num, uint256), WAD, convert(s, uint256) * (WAD + mmf))


@internal
@pure
def bankruptcy_price(size: int256, entry: uint256, eff_margin: int256, scale: uint256) -> uint256:
    """
    @notice The price at which equity is zero.
            Long: entry - m/size, rounded up. Short: entry + m/|size|, rounded down.
    """
    if size == 0:
        return 0
    s: int256 = abs(size)
    num: int256 = 0
    if size > 0:
        num = s * convert(entry, int256) - eff_margin * convert(scale, int256)
        if num <= 0:
            return 0
        return convert(fp.div_ceil(num, s), uint256)
    num = s * convert(entry, int256) + eff_margin * convert(scale, int256)
    if num <= 0:
        return 0
    return convert(fp.div_floor(num, s), uint256)


@internal
@pure
def adl_score(pnl: int256, margin: uint256, notional: uint256) -> uint256:
    """
    @notice (upnl / margin) * (notional / (margin + upnl)), 1e18 fixed point,
            each division rounded down. 0 when not in profit.
    @dev margin >= 1 for every open position (min_margin >= 1).
    """
    if pnl <= 0 or margin == 0:
        return 0
    p: uint256 = convert(pnl, uint256)
    return fp.mul_div_down(fp.mul_div_down(p, WAD, margin), notional, margin + p)
