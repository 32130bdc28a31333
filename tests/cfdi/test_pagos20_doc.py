"""docs/pagos20.md says which of SAT's Pagos 2.0 codes are checked offline, which are reported
with a CFDI 4.0 code and which are left to the PAC, with the count: it must match the code."""

from __future__ import annotations

import re
from pathlib import Path

from connector.cfdi.rules_pagos import MATRIX_PAGOS

REPO = Path(__file__).resolve().parents[2]
CODE = re.compile(r'"(CRP2\d{4})"')
IN_COMPUTATION = {"CRP20277"}  # the CRP20276 limits


def _emitted(pattern: re.Pattern[str]) -> set[str]:
    found: set[str] = set()
    for path in (REPO / "connector").rglob("*.py"):
        found |= set(pattern.findall(path.read_text(encoding="utf-8")))
    return found


def test_the_page_lists_exactly_the_codes_left_to_the_pac_and_the_count() -> None:
    page = (REPO / "docs" / "pagos20.md").read_text(encoding="utf-8")
    count_part = page.split("**Count**", 1)[1]
    prose = " ".join(count_part.split())  # the sentences, whatever their line breaks
    emitted = _emitted(CODE) & set(MATRIX_PAGOS)
    as_cfdi = dict(re.findall(r"(CRP2\d{4}) \w+ as (CFDI40\d{3})", prose))
    assert set(as_cfdi.values()) <= _emitted(re.compile(r'"(CFDI40\d{3})"'))
    listed = set(re.findall(r"^\| (CRP2\d{4}) \|", count_part, flags=re.M))
    assert listed == set(MATRIX_PAGOS) - emitted - set(as_cfdi) - IN_COMPUTATION
    assert f"**{len(MATRIX_PAGOS)} codes**" in prose
    assert f"**{len(emitted)}** of them" in prose
    assert f"**{len(listed)} codes are left to the PAC**" in prose
