"""A claimed file read again because it changed after its read: the invoices it already
committed are matched by their business key (serie/folio, emisor), not by their place in the
file, and their content is compared with what the file now holds.

Real pipeline on real folders, the sandbox PAC over HTTP. The archive is made unreachable
while the file is decided (a share that went away), so the ERP's change lands in work/ after
the invoices were stamped and before the move, deterministically; the ERP writes without
holding the file open (as over a network share: no open-file check can see it).
"""

from __future__ import annotations

import json
from pathlib import Path

from connector.journal import FileState
from tests.daemon.conftest import dat_file, dat_invoice, stamps_by_key, start_pipeline, until

SECOND_CONCEPTO = (
    "\tCONCEPTO|43201800|USB64|2|H87|Pieza|Memoria USB 64 GB|250.00|||02|\n"
    "\t\tTRASLADOCONCEPTO||002|Tasa|0.160000||\n"
)


def _files(folder: Path, pattern: str = "*") -> list[Path]:
    return sorted(p for p in folder.rglob(pattern) if p.is_file())


def _stamped_then_changed(ws: Path, pipe, first: bytes, change) -> None:  # type: ignore[no-untyped-def]
    """``first`` is claimed and its invoices stamped while archive/ is unreachable; then
    ``change(work_file)`` runs (the ERP writing again) and the archive comes back."""
    (ws / "archive").rmdir()
    (ws / "archive").write_text("no es una carpeta (recurso compartido caído)")
    (ws / "inbox" / "v.dat").write_bytes(first)
    assert until(lambda: pipe.poll_once() >= 0 and pipe.journal.file_counts()["archiving"] == 1
                 and not pipe._inflight, 30)  # fmt: skip
    (work,) = _files(ws / "work" / "ventas")
    change(work)
    (ws / "archive").unlink()
    (ws / "archive").mkdir()  # the share is back
    assert pipe.run_until_idle(30)


def test_invoice_stamped_half_written_fails_the_file_never_archived(
    workspace: Path, sandbox
) -> None:
    """The ERP paused right after M1's first CONCEPTO: M1 was stamped with one concepto. The
    second CONCEPTO it appends afterwards must not be ignored: the file fails with
    CONN-FOLIO-USADO for M1 (stamped with the earlier content), never archived as done."""
    ws = workspace.parent
    pipe = start_pipeline(workspace)
    pipe.redeliver_seconds = 0.2
    first = dat_invoice("M", "1").encode()

    def append(work: Path) -> None:
        with open(work, "ab") as fh:
            fh.write(SECOND_CONCEPTO.encode())

    try:
        _stamped_then_changed(ws, pipe, first, append)
    finally:
        pipe.close()
    (outcome,) = pipe.finished
    assert outcome.state is FileState.FAILED
    assert [e.code for e in outcome.errors] == ["CONN-FOLIO-USADO"]
    assert outcome.errors[0].invoice == "M1"
    assert _files(ws / "archive") == []
    (failed,) = _files(ws / "failed", "v.dat")
    assert failed.read_bytes() == first + SECOND_CONCEPTO.encode()  # the original, whole
    report = json.loads((ws / "failed" / "v.dat.error.json").read_text(encoding="utf-8"))
    assert [e["code"] for e in report["errors"]] == ["CONN-FOLIO-USADO"]
    (uuid,) = stamps_by_key(sandbox.store)[("M", "1")]
    assert uuid in report["errors"][0]["message"]
    assert report["delivered"] == ["M1"]  # stamped (with one concepto): its XML is delivered
    assert len(_files(ws / "out" / "xml")) == 1


def test_file_rewritten_in_another_order_loses_no_invoice(workspace: Path, sandbox) -> None:
    """The file held M1 (stamped); the ERP rewrites it as M2 then M1: M2 is stamped, M1 is
    recognised (not a duplicate, not stamped again) and the file archived whole."""
    ws = workspace.parent
    pipe = start_pipeline(workspace)
    pipe.redeliver_seconds = 0.2
    rewritten = dat_file("M", [2, 1])
    try:
        _stamped_then_changed(ws, pipe, dat_file("M", [1]), lambda w: w.write_bytes(rewritten))
    finally:
        pipe.close()
    (outcome,) = pipe.finished
    assert outcome.state is FileState.ARCHIVED and outcome.errors == []
    assert sorted(d["invoice"] for d in outcome.delivered) == ["M1", "M2"]
    (kept,) = _files(ws / "archive", "v.dat")
    assert kept.read_bytes() == rewritten
    keys = stamps_by_key(sandbox.store)
    assert sorted(keys) == [("M", "1"), ("M", "2")]
    assert all(len(uuids) == 1 for uuids in keys.values())


def test_file_written_during_its_copy_to_an_archive_on_another_file_system_is_read_again(
    workspace: Path, sandbox, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """archive/ is on another file system (a link into it fails with EXDEV: the move copies,
    then unlinks); the ERP appends an invoice while the file is being copied: the work file is
    not unlinked, it is read again, the new invoice stamped and the file archived whole."""
    import errno
    import os
    import shutil

    ws = workspace.parent
    archive = ws / "archive"
    real_link, real_copy2 = os.link, shutil.copy2
    first, more = dat_file("X", [1]), dat_file("X", [2])
    appended: list[Path] = []

    def link(src, dst, *a, **k):  # type: ignore[no-untyped-def]
        if Path(dst).is_relative_to(archive):
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        return real_link(src, dst, *a, **k)

    def copy2(src, dst, **k):  # type: ignore[no-untyped-def]
        out = real_copy2(src, dst, **k)
        if Path(dst).is_relative_to(archive) and not appended:
            appended.append(Path(src))
            with open(src, "ab") as fh:  # the ERP writes before the source is unlinked
                fh.write(more)
        return out

    monkeypatch.setattr(os, "link", link)
    monkeypatch.setattr(shutil, "copy2", copy2)
    pipe = start_pipeline(workspace)
    pipe.redeliver_seconds = 0.2
    try:
        (ws / "inbox" / "v.dat").write_bytes(first)
        assert until(lambda: pipe.poll_once() >= 0 and bool(pipe.finished), 60)
    finally:
        pipe.close()
    assert appended
    (outcome,) = pipe.finished
    assert outcome.state is FileState.ARCHIVED and outcome.errors == []
    assert sorted(d["invoice"] for d in outcome.delivered) == ["X1", "X2"]
    (kept,) = _files(archive, "v.dat")
    assert kept.read_bytes() == first + more
    assert [p for p in _files(archive) if p != kept] == []  # no half copy left
    keys = stamps_by_key(sandbox.store)
    assert sorted(keys) == [("X", "1"), ("X", "2")]
    assert all(len(uuids) == 1 for uuids in keys.values())
