"""Read config/networks.yaml into integers the contracts take (no floats)."""

from pathlib import Path

import yaml

from model.positions import MarketParams

ROOT = Path(__file__).resolve().parent.parent
BPS = 10**14  # 1 bp in 1e18 fixed point
HOUR = 3600


def load(network_name):
    """The config entry for an ape network name ('local', 'sepolia', ...)."""
    data = yaml.safe_load((ROOT / "config" / "networks.yaml").read_text())
    if network_name not in data:
        raise KeyError(f"no entry for network {network_name!r} in config/networks.yaml")
    return data[network_name]


def market_params(m, feed, token_decimals):
    """A MarketParams (model dataclass, same field order as the contract struct)."""
    unit = 10**token_decimals
    return MarketParams(
        feed=str(feed),
        imf=m["imf_bps"] * BPS,
        mmf=m["mmf_bps"] * BPS,
        liq_fee=m["liq_fee_bps"] * BPS,
        keeper_share=m["keeper_share_bps"] * BPS,
        trading_fee=m["trading_fee_bps"] * BPS,
        insurance_share=m["insurance_share_bps"] * BPS,
        funding_k=m["funding_k_bps_per_hour"] * BPS // HOUR,
        max_funding_rate=m["max_funding_bps_per_hour"] * BPS // HOUR,
        max_price_age=m["max_price_age"],
        max_open_interest=m["max_open_interest"] * 10**18,
        min_margin=m["min_margin"] * unit,
        execution_fee=m["execution_fee_units"],
    )
