"""The deployment manifest (scripts/manifest.py): written atomically and
read back equal; a missing, unreadable or malformed one is one line naming
the file and the field."""

import json

import pytest

from scripts import manifest as mf

A = "0x" + "11" * 20
B = "0x" + "22" * 20


def _entry(**over):
    m = {
        "format": 1, "network": "local", "ecosystem": "ethereum", "chain_id": 31337, "block": 12,
        "block_hash": "0x" + "ab" * 32, "from_block": 1, "timestamp": 1_700_000_000, "deployer": A,
        "config": "config/networks.yaml",
        "contracts": {k: A for k in ("engine", "exits", "orders", "admin", "timelock", "vault", "insurance_fund", "token", "lens")},
        "engine_code_hash": "0x" + "cd" * 32, "token": {"symbol": "mUSD", "decimals": 6}, "order_expiry": 7200,
        "markets": [{"id": 0, "name": "BTC-PERP", "feed": B, "params": {"feed": B, "imf": 10**16, "max_profit": 9}}],
    }
    m.update(over)
    return m


def test_manifest__written_then_loaded__equal_with_checksummed_addresses(tmp_path):
    path = mf.write(_entry(), tmp_path / "deployments" / "local.json")
    m = mf.load(path)
    assert m.contracts.engine == "0x1111111111111111111111111111111111111111"
    assert m.markets[0].params["max_profit"] == 9  # a field the struct gains needs no change here
    assert json.loads(path.read_text())["chain_id"] == 31337
    assert [p.name for p in path.parent.iterdir()] == ["local.json"]  # no temporary file left


def test_manifest__path_for_a_network_choice__is_the_network_name(tmp_path, monkeypatch):
    monkeypatch.setenv("BACKSTOP_DEPLOYMENTS", str(tmp_path))
    assert mf.path_for("ethereum:local:foundry") == tmp_path / "local.json"
    assert mf.path_for("sepolia") == tmp_path / "sepolia.json"


@pytest.mark.parametrize("change,expected", [
    ({"chain_id": "31337"}, "chain_id: Input should be a valid integer"),
    ({"format": 2}, "format: Value error, format 2 is not 1"),
    ({"surprise": 1}, "surprise: Extra inputs are not permitted"),
    ({"contracts": {"engine": "0x1234"}}, "contracts.engine: Value error, '0x1234' is not a 20-byte hex address"),
])
def test_manifest__malformed__one_line_naming_file_and_field(tmp_path, change, expected):
    path = tmp_path / "local.json"
    path.write_text(json.dumps(_entry(**change)))
    with pytest.raises(mf.ManifestError) as e:
        mf.load(path)
    assert str(e.value).startswith(f"{path}: ") and expected in str(e.value) and "\n" not in str(e.value)


def test_manifest__missing_or_not_json__one_line(tmp_path):
    with pytest.raises(mf.ManifestError, match=r"none.json: no deployment manifest \(run `make deploy`"):
        mf.load(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(mf.ManifestError, match=r"bad.json: unreadable \(JSONDecodeError"):
        mf.load(tmp_path / "bad.json")
