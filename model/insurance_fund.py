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


def transfer_ownership(w, new_owner):
    """InsuranceFund.transfer_ownership (snekmate ownable_2step)"""
    check(w.sender == w.fund_owner, "ownable: caller is not the owner")
    w.fund_pending_owner = new_owner


def accept_ownership(w):
    """InsuranceFund.accept_ownership (snekmate ownable_2step)"""
    check(w.fund_pending_owner == w.sender, "ownable_2step: caller is not the new owner")
    w.fund_pending_owner = "0x" + "00" * 20
    w.fund_owner = w.sender


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
