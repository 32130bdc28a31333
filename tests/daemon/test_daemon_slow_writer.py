"""An ERP that writes an export in chunks, with pauses longer than ``stable_seconds``, must
never get the file archived (or failed) with only the invoices present when it was read.

Real daemons on real folders, the sandbox PAC over HTTP. The writer either holds the file open
between chunks (the daemon sees it on Linux and waits), or writes it through a hard link from
outside the inbox, which no open-file check can see (like an ERP writing over a network share
from another machine): then the file's size, mtime and content, compared after its invoices
were processed and again right before the move, make it be read again.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from connector.journal import FileState
from tests.daemon.conftest import dat_file, stamps_by_key, start_pipeline, until, write_config


def _cut_mid_record(content: bytes, every: int) -> list[bytes]:
    """``content`` in chunks that each end in the middle of a COMPROBANTE line (a record
    cut in two), one cut every ``every`` invoices."""
    starts = [i for i in range(len(content)) if content.startswith(b"COMPROBANTE|", i)]
    cuts = [starts[k] + 20 for k in range(every, len(starts), every)]
    bounds = [0, *cuts, len(content)]
    return [content[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


def _files(folder: Path, pattern: str = "*") -> list[Path]:
    return sorted(p for p in folder.rglob(pattern) if p.is_file())


def test_erp_holding_the_file_open_between_pauses_is_never_taken_half_written(
    tmp_path: Path, sandbox
) -> None:
    config = write_config(tmp_path / "ws", timbrado_url=sandbox.fel_timbrado_url,
                          stable_seconds=0.3, poll=0.1)  # fmt: skip
    ws = config.parent
    log = ws / "var" / "connector.log"  # the configured log_file
    daemon = subprocess.Popen(
        [sys.executable, "-m", "connector.cli", "run", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    content = dat_file("S", list(range(1, 13)))
    chunks = _cut_mid_record(content, 3)
    assert len(chunks) == 4
    try:
        assert until(lambda: log.exists() and b"pipeline_started" in log.read_bytes(), 60)
        with open(ws / "inbox" / "lento.dat", "wb") as fh:  # open from first to last chunk
            for chunk in chunks:
                fh.write(chunk)
                fh.flush()
                time.sleep(1.2)  # four times stable_seconds: the old daemon took it here
        archived = ws / "archive"
        assert until(lambda: bool(_files(archived, "lento.dat")), 60), log.read_text()
        assert until(lambda: len(_files(ws / "out" / "xml")) == 12, 30)
    finally:
        daemon.terminate()
        daemon.wait(30)
    (kept,) = _files(ws / "archive", "lento.dat")
    assert kept.read_bytes() == content  # archived whole: every invoice was read
    assert _files(ws / "failed") == [] and _files(ws / "out" / "errors") == []
    keys = stamps_by_key(sandbox.store)
    assert sorted(keys) == sorted(("S", str(i)) for i in range(1, 13))
    assert all(len(uuids) == 1 for uuids in keys.values())
    assert b"file_open_for_writing" in log.read_bytes()


def _invisible_writer(ws: Path, name: str, chunks: list[bytes], pause: float) -> threading.Thread:
    """Writes ``chunks`` into ``inbox/name`` through a hard link outside the inbox, pausing
    between them; the file is open only under the other name."""
    hidden = ws / "erp" / name
    hidden.parent.mkdir()
    hidden.write_bytes(b"")
    os.link(hidden, ws / "inbox" / name)

    def write() -> None:
        with open(hidden, "ab") as fh:
            for i, chunk in enumerate(chunks):
                if i:
                    time.sleep(pause)
                fh.write(chunk)
                fh.flush()

    t = threading.Thread(target=write)
    t.start()
    return t


def test_file_that_grows_after_it_was_read_is_read_again_and_archived_whole(
    tmp_path: Path,
) -> None:
    from connector.pac.sandbox import SandboxPac

    # the PAC answers after 2 s: each chunk lands while the previous ones are being stamped
    pac = SandboxPac.demo(tmp_path / "pac.db", latency=2.0)
    pac.start()
    config = write_config(tmp_path / "ws", timbrado_url=pac.fel_timbrado_url,
                          stable_seconds=0.3, poll=0.05)  # fmt: skip
    ws = config.parent
    pipe = start_pipeline(config)
    stop = threading.Event()
    runner = threading.Thread(target=pipe.run, args=(stop,))
    runner.start()
    content = dat_file("G", list(range(1, 10)))
    chunks = _cut_mid_record(content, 3)
    try:
        writer = _invisible_writer(ws, "crece.dat", chunks, pause=0.7)
        writer.join(30)
        assert until(lambda: len(pipe.finished) >= 1, 90)
        time.sleep(0.5)
        keys = stamps_by_key(pac.store)
    finally:
        stop.set()
        runner.join(30)
        pipe.close()
        pac.close()
    (outcome,) = pipe.finished
    assert outcome.state is FileState.ARCHIVED and outcome.errors == []
    assert sorted(d["invoice"] for d in outcome.delivered) == sorted(f"G{i}" for i in range(1, 10))
    (kept,) = _files(ws / "archive", "crece.dat")
    assert kept.read_bytes() == content
    assert sorted(keys) == sorted(("G", str(i)) for i in range(1, 10))
    assert all(len(uuids) == 1 for uuids in keys.values())


def test_file_that_keeps_changing_fails_with_a_code_never_archived(tmp_path: Path, sandbox) -> None:
    config = write_config(tmp_path / "ws", timbrado_url=sandbox.fel_timbrado_url,
                          stable_seconds=0.3, poll=0.05)  # fmt: skip
    ws = config.parent
    # each stamp takes a second: the writer (which the daemon cannot see, it writes through a
    # hard link) appends after every read well before that read's invoices are decided, even
    # on a loaded machine (without it, a slow writer thread let a settled file be archived)
    sandbox.latency = 1.0
    pipe = start_pipeline(config)
    pipe.max_changes = 2
    stop = threading.Event()
    runner = threading.Thread(target=pipe.run, args=(stop,))
    runner.start()
    hidden = ws / "erp" / "eterno.dat"
    hidden.parent.mkdir()
    hidden.write_bytes(dat_file("K", [1]))
    os.link(hidden, ws / "inbox" / "eterno.dat")
    folio = 1
    try:
        # every read is followed by one more invoice, after the file settled again
        deadline = time.monotonic() + 90
        while not pipe.finished and time.monotonic() < deadline:
            time.sleep(0.2)
            with pipe.files._lock:
                read = list(pipe.files._parsed.values())
            if read and any(f[0][1] == hidden.stat().st_size for f in read):
                folio += 1
                with open(hidden, "ab") as fh:
                    fh.write(dat_file("K", [folio]))
        assert pipe.journal is not None
        noted = [f.code for f in pipe.journal.recent_failures() if f.file == "eterno.dat"]
    finally:
        stop.set()
        runner.join(30)
        pipe.close()
    (outcome,) = pipe.finished
    assert outcome.state is FileState.FAILED
    assert [e.code for e in outcome.errors] == ["CONN-ARCHIVO-CAMBIO"]
    assert noted == ["CONN-ARCHIVO-CAMBIO"]  # status lists it
    assert _files(ws / "archive") == []
    (failed,) = _files(ws / "failed", "eterno.dat")
    report = json.loads((ws / "failed" / "eterno.dat.error.json").read_text(encoding="utf-8"))
    assert report["errors"][0]["code"] == "CONN-ARCHIVO-CAMBIO"
    # what it held at the last read was stamped, once each; nothing else
    keys = stamps_by_key(sandbox.store)
    assert all(len(uuids) == 1 for uuids in keys.values())
    assert sorted(report["delivered"]) == sorted(f"K{k[1]}" for k in keys)


def test_file_changed_between_its_decision_and_its_move_is_read_again(
    workspace: Path, sandbox
) -> None:
    """The archive is unreachable when the file is decided; the ERP then appends an invoice to
    the same file (in work/); when the archive is back, the move finds the file changed: it
    is read again and the new invoice stamped, instead of archiving what was not read."""
    ws = workspace.parent
    pipe = start_pipeline(workspace)
    pipe.redeliver_seconds = 0.2
    try:
        (ws / "archive").rmdir()
        (ws / "archive").write_text("no es una carpeta (recurso compartido caído)")
        first, more = dat_file("M", [1]), dat_file("M", [2])
        (ws / "inbox" / "v.dat").write_bytes(first)
        assert until(lambda: pipe.poll_once() >= 0 and pipe.journal.file_counts()["archiving"] == 1
                      and not pipe._inflight, 30)  # fmt: skip
        (work,) = _files(ws / "work" / "ventas")
        with open(work, "ab") as fh:
            fh.write(more)
        (ws / "archive").unlink()
        (ws / "archive").mkdir()  # the share is back
        assert pipe.run_until_idle(30)
    finally:
        pipe.close()
    (outcome,) = pipe.finished
    assert outcome.state is FileState.ARCHIVED and outcome.errors == []
    assert sorted(d["invoice"] for d in outcome.delivered) == ["M1", "M2"]
    (kept,) = _files(ws / "archive", "v.dat")
    assert kept.read_bytes() == first + more
    keys = stamps_by_key(sandbox.store)
    assert sorted(keys) == [("M", "1"), ("M", "2")]
    assert all(len(uuids) == 1 for uuids in keys.values())


def test_file_held_open_for_a_long_time_is_listed_by_status_once(workspace: Path) -> None:
    """An export some process keeps open for writing is not taken; after ``open_note_seconds``
    (5 minutes; 1 s here) ``status`` lists it with CONN-ARCHIVO-ABIERTO, once, instead of an
    info line in the log only. Closed, it is taken as usual."""
    ws = workspace.parent
    pipe = start_pipeline(workspace)
    pipe.sources["ventas"].folder.open_note_seconds = 1.0
    assert pipe.journal is not None

    def noted() -> list[str]:
        return [f.code for f in pipe.journal.recent_failures() if f.file == "abierto.dat"]

    try:
        with open(ws / "inbox" / "abierto.dat", "wb") as fh:  # held open, nothing more written
            fh.write(dat_file("O", [1]))
            fh.flush()
            assert until(lambda: pipe.poll_once() >= 0 and bool(noted()), 30)
            for _ in range(20):
                pipe.poll_once()
                time.sleep(0.1)
            assert noted() == ["CONN-ARCHIVO-ABIERTO"]
            (note,) = [f for f in pipe.journal.recent_failures() if f.file == "abierto.dat"]
            assert "abierto para escritura" in note.message and "done_marker" in note.message
            assert (ws / "inbox" / "abierto.dat").exists() and pipe.finished == []
        assert pipe.run_until_idle(60, settle=1.0)
    finally:
        pipe.close()
    (outcome,) = pipe.finished
    assert outcome.state is FileState.ARCHIVED and outcome.errors == []


def test_claimed_file_held_open_for_a_long_time_is_listed_by_status_once(
    workspace: Path, sandbox
) -> None:
    """A file already claimed (its invoice stamped, the archive unreachable) is opened for
    writing by another program and kept open: it is not finished while open, and after
    ``busy_note_seconds`` (5 minutes; 1 s here) ``status`` lists it with CONN-ARCHIVO-ABIERTO,
    once. Closed, it is archived."""
    ws = workspace.parent
    pipe = start_pipeline(workspace)
    pipe.redeliver_seconds = 0.2
    pipe.busy_note_seconds = 1.0
    assert pipe.journal is not None

    def noted() -> list[str]:
        return [f.code for f in pipe.journal.recent_failures() if f.file == "w.dat"]

    try:
        (ws / "archive").rmdir()
        (ws / "archive").write_text("no es una carpeta (recurso compartido caído)")
        (ws / "inbox" / "w.dat").write_bytes(dat_file("W", [1]))
        assert until(lambda: pipe.poll_once() >= 0 and pipe.journal.file_counts()["archiving"] == 1
                     and not pipe._inflight, 30)  # fmt: skip
        (work,) = _files(ws / "work" / "ventas")
        with open(work, "ab"):  # held open by another program, nothing written
            (ws / "archive").unlink()
            (ws / "archive").mkdir()  # the share is back
            assert until(lambda: pipe.poll_once() >= 0 and bool(noted()), 30)
            for _ in range(20):
                pipe.poll_once()
                time.sleep(0.1)
            assert noted() == ["CONN-ARCHIVO-ABIERTO"]
            assert pipe.finished == [] and work.exists()
        assert pipe.run_until_idle(60, settle=1.5)
    finally:
        pipe.close()
    (outcome,) = pipe.finished
    assert outcome.state is FileState.ARCHIVED and outcome.errors == []
    assert [d["invoice"] for d in outcome.delivered] == ["W1"]
