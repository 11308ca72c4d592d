"""Every bad input to `python -m bots.keeper` ends in one line on stderr
(`keeper: error: ...`), no traceback, exit code 2, and nothing sent.

The inputs an operator got wrong in issue 17 run as separate processes
against the test's node, all at once (each spends its time importing ape);
the other checks (manifests, passphrases, numbers) call the same `main` in
this process, which is connected to the same node.
"""

import json
import logging
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from ape import chain
from ape_accounts.accounts import KeyfileAccount
from eth_account import Account

from bots import cli
from bots import devnet as D

ROOT = Path(__file__).resolve().parents[2]
PASSPHRASE = "correct horse battery staple"


def _keeper(args, env):
    return subprocess.run([sys.executable, "-m", "bots.keeper", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=180, stdin=subprocess.DEVNULL)


def _one_error_line(code, out, err, expected, name):
    lines = err.strip().splitlines()
    assert code == 2, f"{name}: exit {code}\n{out}\n{err}"
    assert len(lines) == 1 and lines[0].startswith("keeper: error: "), f"{name}: {err!r}"
    assert expected in lines[0], f"{name}: {lines[0]!r}"
    assert "Traceback" not in out + err, name


def _sent(address):
    return chain.provider.web3.eth.get_transaction_count(address)


def test_keeper_cli__operators_bad_inputs__one_line_exit_2_nothing_sent(protocol, keeper, keeper_account, accounts,
                                                                         tmp_path):
    """The inputs of issue 17, each in its own `python -m bots.keeper`."""
    engine, vault = protocol.engine.address, protocol.vault.address
    broke = accounts[29]
    chain.provider.make_request("anvil_setBalance", [broke.address, "0x0"])  # undone by the test's snapshot
    state = str(tmp_path / "state.json")
    base = ["--network", "ethereum:local:foundry", "--state-file", state]
    cases = {
        # input: (arguments, what the one line must say)
        "vault address as --engine": (base + ["--account", keeper_account, "--engine", vault],
                                      f"--engine {vault}: that is"),
        "--engine 0x1234": (base + ["--account", keeper_account, "--engine", "0x1234"],
                            "--engine '0x1234' is not an address"),
        "misspelled network": (["--network", "ethereum:lokal:foundry", "--account", keeper_account, "--engine", engine],
                               "No network in 'ethereum' named 'lokal'. Did you mean 'local'?"),
        "unknown account alias": (base + ["--account", "nosuchalias", "--engine", engine],
                                  "Account with alias 'nosuchalias' not found"),
        "TEST:99": (base + ["--account", "TEST:99", "--engine", engine], "Index '99' is not valid"),
        "state file in a missing folder": (["--account", keeper_account, "--engine", engine, "--state-file",
                                            str(tmp_path / "missing" / "state.json")],
                                           f"folder {tmp_path / 'missing'} does not exist"),
        "zero-ETH account": (base + ["--account", "TEST::29", "--engine", engine],
                             f"keeper account {broke.address} holds 0 ETH on chain {chain.chain_id}, below --min-balance"),
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEEPER_")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    before = {a: _sent(a) for a in (keeper.address, broke.address)}
    with ThreadPoolExecutor(max_workers=len(cases)) as pool:
        results = dict(zip(cases, pool.map(lambda c: _keeper(c[0], env), cases.values())))
    for name, (_, expected) in cases.items():
        r = results[name]
        _one_error_line(r.returncode, r.stdout, r.stderr, expected, name)
    assert {a: _sent(a) for a in before} == before
    assert not Path(state).exists()


@pytest.fixture
def keep_logging():
    """`main` sets up the process's logging as the keeper's: put it back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _manifest(protocol, **over):
    """The test deployment's manifest as deploy writes it, fields overridden."""
    blk = chain.provider.web3.eth.get_block("latest")
    m = {
        "format": 1, "network": "local", "ecosystem": "ethereum", "chain_id": chain.chain_id, "block": blk["number"],
        "block_hash": blk["hash"].to_0x_hex(), "from_block": 0, "timestamp": blk["timestamp"],
        "deployer": protocol.engine.address, "config": "config/networks.yaml",
        "contracts": {"engine": protocol.engine.address, "exits": protocol.exits.address,
                      "orders": protocol.orders.address, "admin": protocol.admin.address, "timelock": protocol.timelock.address, "vault": protocol.vault.address,
                      "insurance_fund": protocol.insurance_fund.address, "token": protocol.token.address,
                      "lens": protocol.lens.address},
        "engine_code_hash": "0x" + bytes(chain.provider.web3.keccak(chain.provider.get_code(protocol.engine.address))).hex(),
        "token": {"symbol": "mUSD", "decimals": 6}, "order_expiry": 7200, "markets": [],
    }
    m.update(over)
    return m


@pytest.mark.parametrize("case,args,expected", [
    ("manifest of another chain", ["--manifest", "{tmp}/other-chain.json"], "chain id 1, but the node is on chain"),
    ("manifest of a reset chain", ["--manifest", "{tmp}/reset-chain.json"],
     "the chain was reset or reorganised since `make deploy`"),
    ("malformed manifest", ["--manifest", "{tmp}/garbled.json"], "chain_id: Input should be a valid integer"),
    ("missing manifest", ["--manifest", "{tmp}/none.json"], "no deployment manifest (run `make deploy`"),
    ("--engine other than the manifest's", ["--manifest", "{tmp}/good.json", "--engine", "{vault}"],
     "is not {tmp}/good.json's engine"),
    ("no contract at --engine", ["--engine", "{nobody}"], "no contract there"),
    ("negative --max-fee-gwei", ["--engine", "{engine}", "--max-fee-gwei", "-1"],
     "--max-fee-gwei '-1' must be a number at least 0"),
    ("fee bump below 10%", ["--engine", "{engine}", "--fee-bump-pct", "5"], "--fee-bump-pct '5' must be a number at least 10"),
    ("no node", ["--engine", "{engine}", "--rpc", "http://127.0.0.1:9"], "no node answers at http://127.0.0.1:9"),
    ("config file with an unknown key", ["--config", "{tmp}/keeper.yaml"], "unknown option 'max-fee'"),
])
def test_keeper_cli__bad_configuration__one_line_exit_2_nothing_sent(protocol, keeper, keeper_account, tmp_path,
                                                                     capsys, keep_logging, case, args, expected):
    (tmp_path / "good.json").write_text(json.dumps(_manifest(protocol)))
    (tmp_path / "other-chain.json").write_text(json.dumps(_manifest(protocol, chain_id=1)))
    (tmp_path / "reset-chain.json").write_text(json.dumps(_manifest(protocol, block_hash="0x" + "ab" * 32)))
    (tmp_path / "garbled.json").write_text(json.dumps(_manifest(protocol, chain_id="31337")))
    (tmp_path / "keeper.yaml").write_text("max-fee: 50\n")
    fill = {"tmp": str(tmp_path), "vault": protocol.vault.address, "engine": protocol.engine.address,
            "nobody": D.trader_address("nobody")}
    args = [a.format(**fill) for a in args]
    expected = expected.format(**fill)
    nonce = _sent(keeper.address)
    code = cli.main(["--account", keeper_account, "--state-file", str(tmp_path / "state.json"), *args])
    out, err = capsys.readouterr()
    _one_error_line(code, out, err, expected, case)
    assert _sent(keeper.address) == nonce


def test_keeper_cli__keyfile_account__decrypted_with_keeper_passphrase(tmp_path, monkeypatch):
    """A keyfile account signs through eth-account once KEEPER_PASSPHRASE
    opens it; a wrong or missing passphrase is one line."""
    acct = Account.create()
    path = tmp_path / "ops.json"
    path.write_text(json.dumps(Account.encrypt(acct.key, PASSPHRASE, kdf="pbkdf2", iterations=1000)))
    keyfile = KeyfileAccount(keyfile_path=path)
    monkeypatch.setenv("KEEPER_PASSPHRASE", PASSPHRASE)
    assert cli._signing_account(keyfile).address == acct.address
    monkeypatch.setenv("KEEPER_PASSPHRASE", "wrong")
    with pytest.raises(cli.click.ClickException, match=r"^--account ops: wrong passphrase \(KEEPER_PASSPHRASE\)$"):
        cli._signing_account(keyfile)
    monkeypatch.delenv("KEEPER_PASSPHRASE")
    monkeypatch.setattr(cli.sys.stdin, "isatty", lambda: False)
    with pytest.raises(cli.click.ClickException, match="set KEEPER_PASSPHRASE"):
        cli._signing_account(keyfile)
