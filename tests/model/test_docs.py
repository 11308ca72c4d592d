"""docs/ must match the code: the revert-reason table lists exactly the
reasons written in contracts/ with the functions that raise them, and every
`module.name` the docs cite exists in that module."""

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
    for rel in set(re.findall(r"`((?:contracts|model|scripts|tests|config|bots)/[\w/.-]+\.(?:py|vy|vyi|yaml))", doc.read_text())):
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
