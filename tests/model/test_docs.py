"""docs/ must match the code: the revert-reason table lists exactly the
reasons written in contracts/ with the functions that raise them, and every
`module.name` the docs cite exists in that module."""

import ast
import re
from pathlib import Path

import pytest

from tests.model.sources import CONTRACTS, ROOT, SNEKMATE_REASONS, all_revert_reasons, contract_files, revert_sites

DOCS = ROOT / "docs"
REVERTS = DOCS / "revert-reasons.md"
SNEKMATE = next((p for p in (ROOT / ".venv" / "lib").glob("python3*/site-packages/snekmate")), None)


def table_rows(text, heading):
    """(reason, {functions}) of the table under `## heading`."""
    section = text.split(f"## {heading}", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`"):
            continue
        reason = cells[0].strip("`")
        functions = set(re.findall(r"`([\w.]+)`", cells[1]))
        rows.append((reason, functions))
    return rows


def source_sites():
    """{reason: {Contract.function}} from contracts/."""
    sites = {}
    for path in contract_files():
        for fn, reason, _ in revert_sites(path):
            sites.setdefault(reason, set()).add(f"{path.stem}.{fn}")
    return sites


def test_revert_reasons_doc__lists_every_reason_in_contracts_once():
    rows = table_rows(REVERTS.read_text(), "contracts/")
    reasons = [r for r, _ in rows]
    assert len(reasons) == len(set(reasons)), "a reason is listed twice"
    assert set(reasons) == all_revert_reasons(), (
        f"missing from the doc: {sorted(all_revert_reasons() - set(reasons))}; "
        f"not in contracts/: {sorted(set(reasons) - all_revert_reasons())}")


def test_revert_reasons_doc__names_exactly_the_raising_functions():
    sites = source_sites()
    for reason, functions in table_rows(REVERTS.read_text(), "contracts/"):
        assert functions == sites.get(reason, set()), f"{reason!r}: doc {sorted(functions)}, sources {sorted(sites.get(reason, ()))}"


def test_revert_reasons_doc__lists_the_reachable_snekmate_reasons():
    rows = table_rows(REVERTS.read_text(), "From snekmate")
    assert {r for r, _ in rows} == SNEKMATE_REASONS


@pytest.mark.skipif(SNEKMATE is None, reason="snekmate sources not installed in .venv")
def test_snekmate_reasons__exist_in_the_pinned_snekmate():
    text = "\n".join(p.read_text() for p in SNEKMATE.rglob("*.vy"))
    for reason in SNEKMATE_REASONS:
        assert f'"{reason}"' in text, reason


def _names_in(path):
    text = path.read_text()
    return (set(re.findall(r"^\s*def (\w+)\(", text, re.M))
            | set(re.findall(r"^(\w+):", text, re.M))
            | set(re.findall(r"^(\w+)\s*=", text, re.M))
            | set(re.findall(r"^class (\w+)", text, re.M)))


def _resolve(module):
    """The source file a doc's `module.name` refers to, or None."""
    for p in contract_files():
        if p.stem == module:
            return p
    if SNEKMATE is not None:
        hits = list(SNEKMATE.rglob(f"{module}.vy"))
        if hits:
            return hits[0]
    return None


def cited_spans(doc):
    """The text of every `code span` of a doc, a call's parentheses dropped."""
    return {re.sub(r"\(.*", "", span) for span in re.findall(r"`([^`\n]+)`", doc.read_text())}


@pytest.mark.parametrize("doc", sorted(DOCS.glob("*.md")), ids=lambda p: p.name)
def test_docs__every_cited_contract_name_exists(doc):
    """`PerpExits.liquidate`, `positions._reduce`, `ownable._check_owner`: the
    module is a contract (or snekmate) file and it defines the name."""
    for span in cited_spans(doc):
        m = re.fullmatch(r"([A-Za-z]\w*)\.(_?\w+)", span)
        if not m or span.startswith("model.") or m.group(2) in ("vy", "vyi", "py", "md", "yaml"):
            continue
        path = _resolve(m.group(1))
        if path is None:
            continue
        assert m.group(2) in _names_in(path), f"{doc.name} cites {span}, which {path.name} does not define"


@pytest.mark.parametrize("doc", sorted(DOCS.glob("*.md")), ids=lambda p: p.name)
def test_docs__every_cited_model_name_exists(doc):
    """`model.perp_engine.adl_ranking`, `model/adl.py`: the model file exists
    and defines the name."""
    for span in cited_spans(doc):
        m = re.fullmatch(r"model\.(\w+)\.(\w+)", span)
        if m:
            path = ROOT / "model" / f"{m.group(1)}.py"
            assert path.exists(), f"{doc.name} cites {span}"
            assert m.group(2) in _names_in(path), f"{doc.name} cites {span}"
    for module in set(re.findall(r"(?<![\w/])model/(\w+)\.py", doc.read_text())):
        assert (ROOT / "model" / f"{module}.py").exists(), f"{doc.name} cites model/{module}.py"


@pytest.mark.parametrize("doc", sorted(DOCS.glob("*.md")), ids=lambda p: p.name)
def test_docs__every_cited_repo_file_exists(doc):
    for rel in set(re.findall(r"`((?:contracts|model|scripts|tests|config|bots)/[\w/.-]+\.(?:py|vyi|vy|yaml))(?!\w)", doc.read_text())):
        assert (ROOT / rel).exists(), f"{doc.name} cites {rel}"


def test_doc_constants__match_the_contracts():
    """Figures the docs state by name."""
    text = "\n".join(p.read_text() for p in DOCS.glob("*.md"))
    consts = {}
    for p in contract_files():
        from tests.model.sources import constants
        consts.update({f"{p.stem}.{k}": v for k, v in constants(p).items()})
    assert consts["positions.MAX_SIDE_POSITIONS"] == 1000 and "MAX_SIDE_POSITIONS = 1000" in text
    assert consts["positions.MAX_ADL_TARGETS"] == 20 and "MAX_ADL_TARGETS = 20" in text
    assert consts["LiquidityVault.DECIMALS_OFFSET"] == 3 and "10**3" in text
    # the scan cost the docs quote is the one positions.vy states
    assert "6.5k gas" in (CONTRACTS / "positions.vy").read_text() and "6.5k gas" in text


PROPERTIES = DOCS / "properties.md"
MACHINE = ROOT / "tests" / "stateful" / "machine.py"
WORLD_PROPERTIES = ROOT / "tests" / "model" / "test_world_properties.py"
_PATH_OR_NAME = re.compile(r"`(tests/[\w/.-]+\.py)`|`(test_\w+)(?:\[[^`\]]*\])?`")
_RULES = re.compile(r"\b[Rr]ules? (`\w+`(?:(?:, and |, | and | or )`\w+`)*)")
_MACHINE_SPAN = re.compile(r"\b[Mm]achine: `(\w+)`")


def _units(text):
    """The pieces a citation cannot cross: each cell of a table row, each
    paragraph or list item of the rest."""
    units, para = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            units.extend(c for c in line.strip().strip("|").split("|"))
        elif not line.strip() or line.lstrip().startswith("- "):
            units.append(" ".join(para))
            para = [line] if line.strip() else []
        else:
            para.append(line)
    units.append(" ".join(para))
    return [u for u in units if u.strip()]


def _defined(path, classes=None):
    """Names of the functions a Python file defines (methods included; only
    those of `classes` when given), and its module-level assignments."""
    tree = ast.parse(path.read_text())
    if classes is not None:
        return {f.name for c in tree.body if isinstance(c, ast.ClassDef) and c.name in classes
                for f in c.body if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))}
    names = {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        names |= {t.id for t in targets if isinstance(t, ast.Name)}
    return names


def properties_doc_citations(text):
    """(cited path or None, test name) for every `test_x` span, attributed to
    the last `tests/....py` span before it in the same cell or paragraph;
    and the machine names the doc cites (`WorldMachine.x`, rule `x`,
    machine: `x`, `_check_x`)."""
    tests, world, machine = [], set(), set()
    for unit in _units(text):
        path = None
        for m in _PATH_OR_NAME.finditer(unit):
            if m.group(1):
                path = m.group(1)
            else:
                tests.append((path, m.group(2)))
        world |= set(re.findall(r"`WorldMachine\.(\w+)`", unit))
        machine |= set(re.findall(r"`BackstopMachine\.(\w+)`", unit))
        for m in _RULES.finditer(unit):
            machine |= set(re.findall(r"`(\w+)`", m.group(1)))
        machine |= set(_MACHINE_SPAN.findall(unit)) | set(re.findall(r"`(_check_\w+)`", unit))
    return tests, world, machine


def test_properties_doc__every_cited_test_exists():
    """Every `tests/x.py`: `test_a`, `test_b` citation names a test function
    that file defines (`test_a[...]` counts as `test_a`); a test name with no
    path before it in its cell must exist somewhere under tests/; every
    `WorldMachine.x` is a method of WorldMachine, and every rule or check the
    doc names for the machine is defined in tests/stateful/machine.py."""
    tests, world, machine = properties_doc_citations(PROPERTIES.read_text())
    assert len(tests) > 100, "the citation parser found almost nothing: has the doc's format changed?"
    defined, missing = {}, []
    everywhere = set().union(*(_defined(p) for p in (ROOT / "tests").rglob("test_*.py")))
    for path, name in tests:
        if path is None:
            if name not in everywhere:
                missing.append(f"`{name}` (no file before it; defined nowhere under tests/)")
            continue
        if not (ROOT / path).exists():
            missing.append(f"{path}: the file does not exist (cited for `{name}`)")
            continue
        if path not in defined:
            defined[path] = _defined(ROOT / path)
        if name not in defined[path]:
            missing.append(f"{path}: `{name}`")
    missing += [f"WorldMachine.{n}" for n in sorted(world - _defined(WORLD_PROPERTIES, {"WorldMachine"}))]
    missing += [f"tests/stateful/machine.py: `{n}`" for n in sorted(machine - _defined(MACHINE))]
    assert not missing, "docs/properties.md cites tests that do not exist:\n" + "\n".join(sorted(set(missing)))
