"""Bad scenarios end in one line naming the file and the field, a non-zero
exit and nothing deployed; the demo's entry point runs outside make; a run
that fails part-way leaves no report folder behind.

The library checks (scripts/scenario.py) run on files written here; the
command line runs in process (click's runner on scripts/demo.cli, the chain
head compared before and after) and once as the README's command, by hand:
`.venv/bin/ape run demo` with PATH=/usr/bin:/bin and nothing else exported,
which before the entry point set its own environment failed with
FoundryNotInstalledError."""

import copy
import os
import re
import shutil
import socket
import subprocess

import click
import pytest
import yaml
from ape import chain
from click.testing import CliRunner

from scripts import scenario as S
from scripts.demo import ROOT, cli, run_demo, tool_env

SHIPPED = yaml.safe_load(S.DEFAULT_PATH.read_text())


def _write(tmp_path, data, name="bad.yaml"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def _edit(change):
    data = copy.deepcopy(SHIPPED)
    change(data)
    return data


def _rename(d, old, new):
    d[new] = d.pop(old)


# (id, the scenario, the message after "<file>: ")
BAD = [
    ("nested typo", _edit(lambda d: _rename(d["traders"]["stop_loss"], "percent_of_longs", "percent_of_long")),
     "traders.stop_loss: unknown key 'percent_of_long' (did you mean 'percent_of_longs'?) (and 1 more)"),
    ("negative crash price", _edit(lambda d: d["crash"][5].__setitem__(1, -76800)),
     "crash[5] (t=6 s): price -76800 must be above 0"),
    ("wrong type", _edit(lambda d: d["traders"].__setitem__("count", "300")),
     "traders.count must be an integer, got '300'"),
    ("float for an integer", _edit(lambda d: d["lps"].__setitem__("deposit", [100000, 8e5])),
     "lps.deposit[1] must be an integer, got 800000.0"),
    ("crash times not increasing", _edit(lambda d: d["crash"][3].__setitem__(0, 2)),
     "crash[3] (t=2 s): seconds 2 must be after the step before (2 s)"),
    ("crash step not a pair", _edit(lambda d: d["crash"].__setitem__(2, [2])),
     "crash[2] must be [seconds, price], got [2]"),
    ("range backwards", _edit(lambda d: d["traders"].__setitem__("margin", [5000, 200])),
     "traders.margin must be [lowest, highest], got [5000, 200]"),
    ("missing section", _edit(lambda d: d.pop("keeper")), "keeper is missing"),
    ("unknown market", _edit(lambda d: d.__setitem__("market", "DOGE-PERP")),
     "market 'DOGE-PERP' is not a market of config/networks.yaml local (markets: BTC-PERP, ETH-PERP)"),
    ("leverage above 1 / imf", _edit(lambda d: d["traders"]["leverage"].__setitem__(200, 5)),
     "traders.leverage 200x is above BTC-PERP's 100x (imf_bps 100)"),
    ("keeper signs as the owner", _edit(lambda d: d["keeper"].__setitem__("account", 0)),
     "keeper.account 0 must be at least 1"),
    ("a step between blocks", _edit(lambda d: d.__setitem__("block_time", 2)),
     "crash[1] (t=1 s): seconds 1 must be a multiple of block_time (2 s): each price lands in its own block"),
    ("not YAML", "name: [unclosed\n", "line 2: not valid YAML: expected ',' or ']', but got '<stream end>'"),
    ("not a mapping", "- 1\n- 2\n", "must be a mapping of fields (name, seed, market, ...), got [1, 2]"),
]


@pytest.mark.parametrize("data, message", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_scenario__bad__one_line_naming_file_and_field(tmp_path, data, message):
    path = _write(tmp_path, data)
    with pytest.raises(S.ScenarioError) as e:
        S.load_scenario(path)
    assert str(e.value) == f"{path}: {message}"


def test_scenario__missing_file__one_line():
    with pytest.raises(S.ScenarioError) as e:
        S.load_scenario(ROOT / "scenarios" / "no-such.yaml")
    assert str(e.value) == "scenarios/no-such.yaml: cannot read: No such file or directory"


def test_scenario__shipped__valid_and_round_trips():
    sc = S.load_scenario()
    assert sc.block_time == 1
    d = sc.as_dict()
    assert d["crash"] == SHIPPED["crash"] and d["traders"] == SHIPPED["traders"]
    assert S.validate(d, "again").as_dict() == d


def _head():
    return chain.blocks.head.number


@pytest.mark.parametrize("data, message", [b[1:] for b in BAD[:3]], ids=[b[0] for b in BAD[:3]])
def test_demo_cli__bad_scenario__one_line_exit_1_nothing_deployed(tmp_path, data, message):
    path = _write(tmp_path, data)
    out = tmp_path / "reports"
    head = _head()
    result = CliRunner().invoke(cli, ["--scenario", str(path), "--out", str(out),
                                      "--network", "ethereum:local:foundry"])
    assert result.exit_code == 1
    assert result.output == f"Error: {path}: {message}\n"
    assert _head() == head
    assert not out.exists()


def test_demo_cli__missing_scenario__one_line_exit_1(tmp_path):
    result = CliRunner().invoke(cli, ["--scenario", str(tmp_path / "nope.yaml"), "--network",
                                      "ethereum:local:foundry"])
    assert result.exit_code == 1
    assert result.output == f"Error: {tmp_path / 'nope.yaml'}: cannot read: No such file or directory\n"


def test_demo_cli__out_under_a_file__one_line_exit_1_nothing_deployed(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    head = _head()
    result = CliRunner().invoke(cli, ["--out", str(blocker / "reports"), "--network", "ethereum:local:foundry"])
    assert result.exit_code == 1
    assert result.output == f"Error: --out {blocker / 'reports'}: {blocker} is not a folder this user can write to\n"
    assert _head() == head


def test_run_demo__bad_scenario__raises_before_deploying(owner, tmp_path):
    head = _head()
    with pytest.raises(S.ScenarioError, match=r"^scenario: crash\[0\] \(t=0 s\): price 0 must be above 0$"):
        run_demo(_edit(lambda d: d["crash"][0].__setitem__(1, 0)), owner, out_dir=tmp_path / "reports")
    assert _head() == head
    assert not (tmp_path / "reports").exists()


def test_run_demo__fails_part_way__leaves_no_report_folder(owner, tmp_path, capsys):
    """A real failure after deploying and starting the keeper: the warmup's
    second price is 12% above the first, above the longs' acceptable price,
    so their orders are cancelled and the demo stops. Its report folder
    (and the reports/ it created) is gone; the keeper's log was printed."""
    sc = _edit(lambda d: (d.update(name="fails", insurance_fund=0, crash=[[0, 80000]]),
                          d["traders"].update(count=2, long_percent=100),
                          d["lps"].update(count=1, deposit=[1_000_000, 1_000_000]),
                          d["warmup"].update(prices=[80000, 90000])))
    out = tmp_path / "reports"
    with pytest.raises(click.ClickException, match="did not open its position.*price above acceptable"):
        run_demo(sc, owner, out_dir=out)
    assert not out.exists()
    printed = capsys.readouterr().out
    assert "keeper log (keeper.log) ends:" in printed
    pid = int(re.search(r"keeper process started \(pid (\d+)\)", printed).group(1))
    with pytest.raises(ProcessLookupError):  # stopped and reaped
        os.kill(pid, 0)


def test_tool_env__bare_path__finds_anvil_and_the_pinned_compiler():
    env = tool_env({"PATH": "/usr/bin:/bin"})
    assert shutil.which("anvil", path=env["PATH"]) == str(ROOT / "node_modules" / ".bin" / "anvil")
    assert shutil.which("ape", path=env["PATH"]) == str(ROOT / ".venv" / "bin" / "ape")
    assert env["VVM_BINARY_PATH"] == str(ROOT / ".vvm")
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(ROOT)
    kept = tool_env({"PATH": "/usr/bin", "VVM_BINARY_PATH": "/elsewhere", "BACKSTOP_PORT": "9999"})
    assert kept["VVM_BINARY_PATH"] == "/elsewhere" and kept["BACKSTOP_PORT"] == "9999"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_readme_command_outside_make__bad_scenario__one_line_no_node(tmp_path):
    """The README's command with nothing of make's environment: the
    scenario is refused in one line before ape starts a node."""
    path = _write(tmp_path, BAD[1][1])
    port = _free_port()
    out = tmp_path / "reports"
    env = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root"), "BACKSTOP_PORT": str(port)}
    r = subprocess.run([str(ROOT / ".venv" / "bin" / "ape"), "run", "demo", "--network", "ethereum:local:foundry",
                        "--scenario", str(path), "--out", str(out)], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert r.returncode == 1
    assert (r.stdout + r.stderr).splitlines() == [f"Error: {path}: {BAD[1][2]}"]
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0  # no node was started
    assert not out.exists()
