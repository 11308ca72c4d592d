def test_a(twin, owner):
    twin.act(owner, "set_pauser", owner)

def test_b(twin, owner):
    twin.act(owner, "set_pauser", owner)

def test_c(protocol, owner):
    assert protocol.engine.owner() == owner.address

def test_d(twin, owner):
    assert len(twin.accounts) == 7
    twin.act(owner, "set_pauser", owner)
    twin.assert_same()
