"""What fails once is tried again while the daemon runs: a move to archive/ or failed/ (the
share offline, a permission, a full disk) or an error file that could not be written is
completed by the periodic tick, not only by a restart."""

from __future__ import annotations

import json
from pathlib import Path

from connector.journal import FileState, State
from tests.daemon.conftest import dat_file, dat_invoice, start_pipeline


def _until(pipe, cond, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    for _ in range(int(timeout / 0.05)):
        pipe.poll_once()
        if cond():
            return
        pipe.wake.wait(0.05)
    raise AssertionError("condition not reached")


def _mixto_decided_while_failed_is_unwritable(ws: Path, pipe) -> None:  # type: ignore[no-untyped-def]
    """failed/ replaced by a file (a share offline); mixto.dat (B1 valid, B2 invalid) is
    decided FAILING and its move cannot be done."""
    (ws / "failed").rmdir()
    (ws / "failed").write_text("no es una carpeta")
    data = dat_invoice("B", "1") + dat_invoice("B", "2", tipo="Z")  # B2 is invalid
    (ws / "inbox" / "mixto.dat").write_bytes(data.encode())
    _until(pipe, lambda: pipe.journal.file_counts()["failing"] == 1 and not pipe._inflight)


def test_archive_move_that_failed_is_retried_while_running(workspace: Path, sandbox) -> None:
    ws = workspace.parent
    pipe = start_pipeline(workspace)
    pipe.redeliver_seconds = 0.2
    try:
        (ws / "archive").rmdir()
        (ws / "archive").write_text("no es una carpeta (recurso compartido caído)")
        (ws / "inbox" / "v.dat").write_bytes(dat_file("A", [1]))
        _until(pipe, lambda: pipe.journal.file_counts()["archiving"] == 1 and not pipe._inflight)
        assert pipe.journal.get(("EKU9003173C9", "A", "1")).state is State.DELIVERED
        pipe.run_until_idle(1.0)  # the tick tries again and fails again: still not idle
        assert not pipe.idle()
        assert list((ws / "work" / "ventas").iterdir())
        (ws / "archive").unlink()
        (ws / "archive").mkdir()  # the share is back
        assert pipe.run_until_idle(30)
        assert {k: v for k, v in pipe.journal.file_counts().items() if v} == {"archived": 1}
        (outcome,) = pipe.finished
        assert outcome.state is FileState.ARCHIVED and not outcome.errors
        assert [d["invoice"] for d in outcome.delivered] == ["A1"]
    finally:
        pipe.close()
    assert [p.name for p in (ws / "archive").rglob("*.dat")] == ["v.dat"]
    assert list((ws / "work" / "ventas").iterdir()) == []


def test_failed_folder_unwritable_error_files_and_move_retried_while_running(
    workspace: Path, sandbox
) -> None:
    ws = workspace.parent
    pipe = start_pipeline(workspace)
    pipe.redeliver_seconds = 0.2
    try:
        _mixto_decided_while_failed_is_unwritable(ws, pipe)
        assert not pipe.idle()
        (ws / "failed").unlink()
        (ws / "failed").mkdir()
        assert pipe.run_until_idle(30)
        assert {k: v for k, v in pipe.journal.file_counts().items() if v} == {"failed": 1}
        (outcome,) = pipe.finished
        assert outcome.state is FileState.FAILED
        assert [d["invoice"] for d in outcome.delivered] == ["B1"]
        assert {e.invoice for e in outcome.errors} == {"B2"}
    finally:
        pipe.close()
    names = sorted(p.name for p in (ws / "failed").iterdir())
    assert names == ["mixto.dat", "mixto.dat.error.json", "mixto.dat.error.txt"]
    report = json.loads((ws / "failed" / "mixto.dat.error.json").read_text(encoding="utf-8"))
    assert report["errors"] and all(e["invoice"] == "B2" for e in report["errors"])
    assert list((ws / "work" / "ventas").iterdir()) == []


def test_tick_with_a_stale_record_does_not_finish_a_file_twice(workspace: Path, sandbox) -> None:
    import dataclasses

    ws = workspace.parent
    (ws / "inbox" / "v.dat").write_bytes(dat_file("A", [1]))
    pipe = start_pipeline(workspace)
    try:
        assert pipe.run_until_idle(60)
        (rec,) = pipe.journal.files(FileState.ARCHIVED)
        # what the tick read (ARCHIVING) while a worker held the lock and finished the file
        pipe.files.retry_move(dataclasses.replace(rec, state=FileState.ARCHIVING))
        assert [(o.name, o.state) for o in pipe.finished] == [("v.dat", FileState.ARCHIVED)]
        assert pipe.idle()
    finally:
        pipe.close()


def test_error_file_written_late_reports_the_file_as_it_was_decided(
    workspace: Path, sandbox
) -> None:
    """failed/ is unwritable when mixto.dat is decided (B2 invalid); meanwhile the ERP
    exports B2 fixed and it is stamped. The error file written once failed/ is back still
    says B2 failed in mixto.dat (it used to list B2 as delivered: the report was rebuilt
    from the journal's current rows)."""
    ws = workspace.parent
    pipe = start_pipeline(workspace)
    pipe.redeliver_seconds = 0.2
    try:
        _mixto_decided_while_failed_is_unwritable(ws, pipe)
        (ws / "inbox" / "b2.dat").write_bytes(dat_invoice("B", "2").encode())  # fixed
        key = ("EKU9003173C9", "B", "2")
        _until(pipe, lambda: pipe.journal.get(key).state is State.DELIVERED)
        (ws / "failed").unlink()
        (ws / "failed").mkdir()
        assert pipe.run_until_idle(30)
    finally:
        pipe.close()
    report = json.loads((ws / "failed" / "mixto.dat.error.json").read_text(encoding="utf-8"))
    assert report["delivered"] == ["B1"]
    assert report["errors"] and all(e["invoice"] == "B2" for e in report["errors"])
    assert [p.name for p in (ws / "archive").rglob("*.dat")] == ["b2.dat"]


def test_an_invoice_whose_queued_work_was_cancelled_holds_no_file_back(
    workspace: Path, sandbox
) -> None:
    """A file is left to another of its invoices only while that one will still come back
    to it: a worker's job still queued or running, not one cancelled by a stop (it never
    runs, so it would never finish the file)."""
    from concurrent.futures import Future

    pipe = start_pipeline(workspace)
    try:
        queued, cancelled = Future(), Future()  # type: ignore[var-annotated]
        assert cancelled.cancel()
        with pipe._lock:
            pipe._inflight.update({101: queued, 102: cancelled})
        assert pipe.any_in_flight({101, 7})
        assert not pipe.any_in_flight({102, 7})
        queued.set_result(None)  # ran: done (its worker finishes the file itself)
        assert not pipe.any_in_flight({101})
    finally:
        with pipe._lock:
            pipe._inflight.clear()
        pipe.close()
