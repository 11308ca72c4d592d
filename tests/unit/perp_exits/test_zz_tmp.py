from tests.unit.perp_exits.helpers import *
from tests.unit.perp_exits.test_adl import _liquidate
import model.positions as P

def test_dbg(twin, owner, keeper, trader, crowd):
    set_params(twin, owner, trading_fee=0, funding_k=10**14, max_funding_rate=10**14)
    short = crowd[0]
    twin.fund(short, 1_000 * USDC, spenders=[twin.p.engine])
    open_position(twin, short, -10**17, 160 * USDC)
    open_position(twin, trader, 5 * 10**16, 40 * USDC)
    twin.advance(700)
    price(twin, owner, 76_000)
    orig = P._settle
    def spy(w, vd, fa):
        print("model settle", vd, fa)
        return orig(w, vd, fa)
    P._settle = spy
    try:
        n = _liquidate(twin, keeper, trader, [short])
    finally:
        P._settle = orig
    print("chain transfers", chain_events("Transfer"))
    print(model_events(twin, "AutoDeleveraged", n), model_events(twin, "PositionLiquidated", n))
    step(twin)
