"""python -m risk: one clear line and a non-zero exit for every bad input,
before any run; a small run writes its report and JSON."""

import json
import subprocess
import sys

import pytest

from risk.cli import main

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("args,says", [
    (["run", "--policy", "fastest"], "unknown policy 'fastest'"),
    (["run", "--accounts", "0"], "an empty book"),
    (["run", "--path", "moon"], "unknown path 'moon'"),
    (["run", "--set", "mmf_bps=150"], "mmf_bps: must be below imf_bps"),
    (["run", "--set", "mmf_bps"], "expected KEY=VALUE"),
    (["run", "--engine", "max_profit_bps=1"], "max_profit_bps"),
    (["run", "--accounts", "many"], "many"),
    (["sweep", "--scenarios", "0"], "scenarios must be at least 1"),
    (["sweep", "--local-cluster", "2", "--cluster", "tcp://127.0.0.1:9"], "choose one of"),
])
def test_bad_input__one_line_and_exit_2(args, says, capsys):
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 2
    out, errout = capsys.readouterr()
    assert out == ""
    assert errout.count("\n") == 1 and errout.startswith("risk: ") and says in errout, errout


def test_bad_input__a_negative_price_in_the_csv(tmp_path, capsys):
    f = tmp_path / "path.csv"
    f.write_text("seconds,price\n0,80000\n10,79000\n20,-1\n")
    with pytest.raises(SystemExit) as e:
        main(["run", "--path", f"csv:{f}"])
    assert e.value.code == 2
    assert capsys.readouterr().err == f"risk: path csv {f}: line 4: price must be positive, got -1\n"


def test_bad_input__a_cluster_that_does_not_answer__one_line_from_the_process():
    # a port nothing listens on: the client's connection is refused
    p = subprocess.run([sys.executable, "-m", "risk", "sweep", "--cluster", "tcp://127.0.0.1:9", "--scenarios", "1",
                        "--accounts", "10"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert p.returncode == 2
    assert p.stderr.startswith("risk: cluster tcp://127.0.0.1:9: no answer") and p.stderr.count("\n") == 1, p.stderr
    assert "Traceback" not in p.stderr


def test_run__a_small_book_writes_report_and_json(tmp_path, capsys):
    f = tmp_path / "path.csv"
    f.write_text("seconds,price\n0,80000\n5,76000\n10,70000\n15,72000\n")
    main(["run", "--accounts", "150", "--path", f"csv:{f}", "--fund", "100", "--out", str(tmp_path / "r"), "--json"])
    res = json.loads(capsys.readouterr().out)
    assert res["liquidations"] > 0 and res["accounts"] == 150 and res["ticks"] == 4
    assert set(res["policies"]) == {"ranking", "pro_rata", "drain"}
    for name in ("report.html", "result.json", "path.png", "waterfall.png", "concentration.png"):
        assert (tmp_path / "r" / name).stat().st_size > 0
