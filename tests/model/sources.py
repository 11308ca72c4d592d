"""Read facts out of the Vyper sources without compiling them: constants
(`NAME: constant(type) = value` or `NAME: public(constant(type)) = value`)
and revert reasons (`assert cond, "reason"`) with the function that raises
each. The model tests compare the model against these."""

import ast
import operator
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = ROOT / "contracts"

_CONSTANT = re.compile(r"^(\w+):\s*(?:public\()?constant\((\w+)\)\)?\s*=\s*([^#\n]+)", re.M)
_DEF = re.compile(r"^def (\w+)\(", re.M)
_REASON = re.compile(r'^\s*assert\b.*,\s*"([^"]+)"\s*$')

_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
        ast.Pow: operator.pow, ast.FloorDiv: operator.floordiv, ast.LShift: operator.lshift}


def _eval_int(expr, env):
    """Evaluate an integer constant expression (literals, + - * ** // <<,
    unary minus, names of constants already read)."""
    def ev(node):
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -ev(node.operand)
        if isinstance(node, ast.Name) and node.id in env:
            return env[node.id]
        raise ValueError(f"not an integer constant expression: {expr!r}")
    return ev(ast.parse(expr.strip(), mode="eval").body)


def contract_files():
    """Every .vy file under contracts/, mocks included."""
    return sorted(CONTRACTS.rglob("*.vy"))


def constants(path):
    """{NAME: int} of the integer constants declared in one .vy file."""
    env = {}
    for name, _type, value in _CONSTANT.findall(Path(path).read_text()):
        env[name] = _eval_int(value, env)
    return env


def revert_sites(path):
    """[(function, reason, line)] of every `assert ..., "reason"` in one file.
    A function is the nearest `def` above the assert."""
    sites = []
    function = None
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        m = _DEF.match(line)
        if m:
            function = m.group(1)
            continue
        r = _REASON.match(line)
        if r:
            sites.append((function, r.group(1), n))
    return sites


def all_revert_reasons():
    """Every revert reason written in contracts/."""
    return {reason for f in contract_files() for _, reason, _ in revert_sites(f)}


# snekmate (the pinned library the contracts and MockToken build on) raises
# these through the contracts' external functions; docs/revert-reasons.md
# lists each with what triggers it. Reasons snekmate has but no exported
# function can reach (a zero msg.sender, ownable's one-step transfer) are
# left out, so a model that raised one would be caught.
SNEKMATE_REASONS = {
    "ownable: caller is not the owner",
    "ownable_2step: caller is not the new owner",
    "pausable: contract is paused",
    "pausable: contract is not paused",
    "erc20: transfer to the zero address",
    "erc20: transfer amount exceeds balance",
    "erc20: mint to the zero address",
    "erc20: burn amount exceeds balance",
    "erc20: approve to the zero address",
    "erc20: insufficient allowance",
    "math: mul_div division by zero",
    "math: mul_div overflow",
    # TimelockController (snekmate's timelock_controller and access_control)
    "access_control: account is missing role",
    "timelock_controller: insufficient delay",
    "timelock_controller: operation already scheduled",
    "timelock_controller: operation is not ready",
    "timelock_controller: operation cannot be cancelled",
    "timelock_controller: caller must be timelock",
}
