"""Every built-in adapter is documented: a table row in docs/adapters.md or docs/adapters-*.md that names
it, its suffixes and its conventions (origin / y, units, first frame, occlusion)."""

from __future__ import annotations

import re

from _adapter_helpers import REPO, registry


def _rows():
    docs = [REPO / "docs" / "adapters.md"] + sorted((REPO / "docs").glob("adapters-*.md"))
    rows = []
    for d in docs:
        for ln in d.read_text().splitlines():
            if ln.startswith("|") and not set(ln) <= set("|-: "):
                rows.append((d.name, [c.strip() for c in ln.strip().strip("|").split("|")]))
    return rows


def test_every_builtin_adapter_has_a_documented_row():
    reg = registry()
    rows = _rows()
    missing = []
    for a in reg:
        if not reg.is_builtin(a.name):
            continue
        ok = False
        for _, cells in rows:
            if cells[0] not in (a.name, f"`{a.name}`"):
                continue
            text = " ".join(cells)
            has_suffixes = all(f"`{s}`" in text for s in a.suffixes)
            conventions = [c for c in cells[1:] if c and c != "-"]
            if has_suffixes and len(conventions) >= 5:
                ok = True
        if not ok:
            missing.append(a.name)
    assert not missing, f"adapters without a docs row naming suffixes and conventions: {missing}"


def test_docs_header_names_the_conventions():
    text = (REPO / "docs" / "adapters.md").read_text()
    head = next(ln for ln in text.splitlines() if ln.startswith("| adapter |"))
    for col in ("suffixes", "origin / y", "units", "first frame", "occlusion"):
        assert col in head
    assert re.search(r"`0\.5 1079\.5`", text)  # the hand-computed Nuke example
