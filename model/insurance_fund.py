"""Mirror of contracts/InsuranceFund.vy."""

from model.fixed_point import check


def fund_balance(w):
    """InsuranceFund.fund_balance"""
    return w.token.balance_of(w.fund_address)


def cover(w, receiver, amount):
    """InsuranceFund.cover (engine only)"""
    check(w.caller == w.engine_address, "fund: only engine")
    check(amount <= fund_balance(w), "fund: insufficient")
    w.token.transfer(w.fund_address, receiver, amount)


def set_floor(w, new_floor):
    """InsuranceFund.set_floor"""
    check(w.sender == w.fund_owner, "ownable: caller is not the owner")
    w.fund_floor = new_floor


def withdraw_surplus(w, receiver, amount):
    """InsuranceFund.withdraw_surplus"""
    check(w.sender == w.fund_owner, "ownable: caller is not the owner")
    check(amount > 0, "fund: zero amount")
    bal = fund_balance(w)
    check(amount <= bal and bal - amount >= w.fund_floor, "fund: below floor")
    w.token.transfer(w.fund_address, receiver, amount)
