"""One serie/folio twice in the same export file: the later record is CONN-FOLIO-DUPLICADO
(naming the earlier line), the earlier record keeps its own outcome, the file goes to failed/
with its error files, and the other invoices of the file still flow."""

from __future__ import annotations

import json
from pathlib import Path

from connector.journal import State
from tests.daemon.conftest import dat_invoice, fecha, stamps_by_key, start_pipeline


def _report(ws: Path, name: str) -> list[dict[str, str]]:
    doc = json.loads((ws / "failed" / f"{name}.error.json").read_text(encoding="utf-8"))
    return doc["errors"]


def test_repeated_folio_after_an_invalid_record_is_rejected_and_both_errors_reported(
    workspace: Path, sandbox
) -> None:
    ws = workspace.parent
    old = fecha(5 * 24 * 60)  # more than 72 hours ago: invalid at SAT
    data = (
        dat_invoice("A", "1", precio="100.00", when=old)  # lines 1-5
        + dat_invoice("A", "1", precio="200.00")  # lines 6-10: same serie/folio, valid
        + dat_invoice("A", "2")  # lines 11-15: another invoice of the file
    )
    (ws / "inbox" / "v.dat").write_bytes(data.encode())
    pipe = start_pipeline(workspace)
    try:
        assert pipe.run_until_idle(60)
        j = pipe.journal
        a1 = j.get(("EKU9003173C9", "A", "1"))
        assert a1.state is State.FAILED and a1.error_origin == "rules" and not a1.uuid
        assert j.get(("EKU9003173C9", "A", "2")).state is State.DELIVERED
        (outcome,) = pipe.finished
        assert [d["invoice"] for d in outcome.delivered] == ["A2"]
        dup = [e for e in outcome.errors if e.code == "CONN-FOLIO-DUPLICADO"]
        assert len(dup) == 1 and dup[0].location == "v.dat:6" and dup[0].invoice == "A1"
        assert "v.dat:1" in dup[0].message and "'A'" in dup[0].message
        assert "'1'" in dup[0].message
        first = [e for e in outcome.errors if e.code != "CONN-FOLIO-DUPLICADO"]
        assert first and all(e.invoice == "A1" for e in first)
    finally:
        pipe.close()
    assert sorted(p.name for p in (ws / "failed").iterdir()) == [
        "v.dat",
        "v.dat.error.json",
        "v.dat.error.txt",
    ]
    codes = [e["code"] for e in _report(ws, "v.dat")]
    assert "CONN-FOLIO-DUPLICADO" in codes and len(codes) >= 2
    assert list((ws / "archive").rglob("*.dat")) == []
    assert {k: len(v) for k, v in stamps_by_key(sandbox.store).items()} == {("A", "2"): 1}


def test_same_invoice_twice_in_one_file_is_stamped_once_and_the_repeat_reported(
    workspace: Path, sandbox
) -> None:
    ws = workspace.parent
    data = dat_invoice("C", "7") + dat_invoice("C", "7")
    (ws / "inbox" / "dos.dat").write_bytes(data.encode())
    pipe = start_pipeline(workspace)
    try:
        assert pipe.run_until_idle(60)
        assert pipe.journal.get(("EKU9003173C9", "C", "7")).state is State.DELIVERED
        (outcome,) = pipe.finished
        assert [d["invoice"] for d in outcome.delivered] == ["C7"]
        assert [(e.code, e.location) for e in outcome.errors] == [
            ("CONN-FOLIO-DUPLICADO", "dos.dat:6")
        ]
    finally:
        pipe.close()
    assert [e["code"] for e in _report(ws, "dos.dat")] == ["CONN-FOLIO-DUPLICADO"]
    assert len(list((ws / "out" / "xml").iterdir())) == 1
    assert {k: len(v) for k, v in stamps_by_key(sandbox.store).items()} == {("C", "7"): 1}
