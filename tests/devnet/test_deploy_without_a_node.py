"""Deploying with no node to deploy to is one line and a non-zero exit,
never a throwaway node: `make deploy` and `ape run deploy` on a port where
nothing listens, and Sepolia without SEPOLIA_RPC_URL (ape-config.yaml reads
the node's URI from it)."""

import os
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_deploy__no_node__one_line_nonzero_exit_nothing_started(tmp_path):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAKE", "MFLAGS", "SEPOLIA_RPC_URL"))}
    env.update(BACKSTOP_PORT=str(port), BACKSTOP_DEPLOYMENTS=str(tmp_path))
    ape = str(Path(sys.executable).parent / "ape")
    cases = {
        # -o: the suite installed and compiled already; never again under the other tests' feet
        "make deploy": (["make", "--no-print-directory", "-o", ".venv/.stamp", "-o", "node_modules/.stamp", "-o",
                         ".vvm/vyper-0.4.3", "-o", ".build/.stamp", "deploy"], 2,
                        f"make deploy: no node at 127.0.0.1:{port}; start one with 'make devnet'"),
        "ape run deploy": ([ape, "run", "deploy"], 1,
                           f"Error: no node at http://127.0.0.1:{port}: start the devnet first (`make devnet`)"),
        "sepolia without SEPOLIA_RPC_URL": (
            [ape, "run", "deploy", "--network", "ethereum:sepolia:node", "--account", "TEST::0"], 1,
            "Error: no node URI for ethereum:sepolia:node (Invalid uri: $SEPOLIA_RPC_URL): export SEPOLIA_RPC_URL="),
    }

    def run(cmd):
        return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
                              stdin=subprocess.DEVNULL)

    with ThreadPoolExecutor(len(cases)) as pool:
        results = dict(zip(cases, pool.map(lambda c: run(c[0]), cases.values())))
    for name, (_, code, expected) in cases.items():
        r = results[name]
        out = r.stdout + r.stderr
        # make adds its own "make: *** [...] Error 2" after the command's line
        errors = [line for line in out.splitlines() if ("rror" in line or "no node" in line)
                  and not line.startswith("make: ***")]
        assert r.returncode == code and "Traceback" not in out, f"{name}: exit {r.returncode}\n{out}"
        assert len(errors) == 1 and errors[0].startswith(expected.split(": ")[0]), f"{name}: {errors}"
        assert expected in errors[0], f"{name}: {errors[0]!r}"
    # nothing was started on the port, nothing written
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0
    assert list(tmp_path.iterdir()) == []
