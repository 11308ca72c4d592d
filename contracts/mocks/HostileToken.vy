# pragma version 0.4.3
"""
@title HostileToken
@notice TEST MOCK. An ERC-20 that misbehaves on demand: MODE_FEE takes 1% of
        every transfer (fee-on-transfer), MODE_FALSE returns false without
        moving anything, MODE_REENTER calls `hook_target` with `hook_data`
        in the middle of every transfer (a re-entering token).
"""

MODE_NORMAL: constant(uint256) = 0
MODE_FEE: constant(uint256) = 1
MODE_FALSE: constant(uint256) = 2
MODE_REENTER: constant(uint256) = 3

name: public(String[25])
symbol: public(String[5])
decimals: public(uint8)
totalSupply: public(uint256)
balanceOf: public(HashMap[address, uint256])
allowance: public(HashMap[address, HashMap[address, uint256]])
mode: public(uint256)
hook_target: public(address)
hook_data: public(Bytes[512])

event Transfer:
    sender: indexed(address)
    receiver: indexed(address)
    value: uint256

event Approval:
    owner: indexed(address)
    spender: indexed(address)
    value: uint256


@deploy
def __init__(decimals: uint8):
    self.name = "Hostile"
    self.symbol = "HOST"
    self.decimals = decimals


@external
def mint(to: address, amount: uint256):
    self.balanceOf[to] += amount
    self.totalSupply += amount


@external
def set_mode(mode: uint256):
    self.mode = mode


@external
def set_hook(target: address, data: Bytes[512]):
    self.hook_target = target
    self.hook_data = data


@external
def approve(spender: address, amount: uint256) -> bool:
    self.allowance[msg.sender][spender] = amount
    log Approval(owner=msg.sender, spender=spender, value=amount)
    return True


@external
def transfer(to: address, amount: uint256) -> bool:
    return self._transfer(msg.sender, to, amount)


@external
def transferFrom(owner: address, to: address, amount: uint256) -> bool:
    if self.mode != MODE_FALSE:
        self.allowance[owner][msg.sender] -= amount
    return self._transfer(owner, to, amount)


@internal
def _transfer(owner: address, to: address, amount: uint256) -> bool:
    if self.mode == MODE_FALSE:
        return False
    if self.mode == MODE_REENTER:
        raw_call(self.hook_target, self.hook_data)
    fee: uint256 = 0
    if self.mode == MODE_FEE:
        fee = amount // 100
    self.balanceOf[owner] -= amount
    self.balanceOf[to] += amount - fee
    self.totalSupply -= fee
    log Transfer(sender=owner, receiver=to, value=amount - fee)
    return True
