"""The README and docs/ send a user only to files the repository has (issue 17, item 11: the
README linked a design file that only the developers' machines had)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
_LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
_CODE_PATH = re.compile(r"`((?:\.\./|docs/)[^`\s]+\.md)`")


def test_documentation_links_point_at_files_of_the_repository() -> None:
    missing = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        assert "../shared" not in text, f"{doc.name} refers to ../shared"
        for target in _LINK.findall(text) + _CODE_PATH.findall(text):
            if "://" in target or target.startswith("mailto:"):
                continue
            base = (
                REPO if target.startswith("docs/") and doc.parent == REPO / "docs" else doc.parent
            )
            path = (base / target).resolve()
            if not path.exists() or REPO not in path.parents:
                missing.append(f"{doc.relative_to(REPO)} → {target}")
    assert missing == []
