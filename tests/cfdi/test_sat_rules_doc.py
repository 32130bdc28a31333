"""docs/sat-rules.md says which of SAT's CFDI 4.0 codes are checked offline and which are left
to the PAC, with the count: it must match the code that emits them."""

from __future__ import annotations

import re
from pathlib import Path

from connector.cfdi.rules import MATRIX

REPO = Path(__file__).resolve().parents[2]
CODE = re.compile(r'"(CFDI1?40\d{3})"')


def _emitted() -> set[str]:
    found: set[str] = set()
    for path in (REPO / "connector").rglob("*.py"):
        found |= set(CODE.findall(path.read_text(encoding="utf-8")))
    return found & set(MATRIX)


def test_the_page_lists_exactly_the_codes_left_to_the_pac_and_the_count() -> None:
    text = (REPO / "docs" / "sat-rules.md").read_text(encoding="utf-8")
    left_part = text.split("left to the PAC**", 1)[1]
    listed = set(re.findall(r"^\| (CFDI1?40\d{3}) \|", left_part, flags=re.M))
    emitted = _emitted()
    assert listed == set(MATRIX) - emitted
    assert f"**{len(MATRIX)} codes**" in text
    assert f"**{len(emitted)}** of them" in text
    assert f"**{len(listed)} codes are left to the PAC**" in text
