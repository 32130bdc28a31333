"""What the inbox holds and the daemon cannot take is said once, with a code, in the log and in
``status`` (issue 17, items 4 and 6): links, folders, FIFOs; a file whose claim keeps failing.
And a file with a legal long name (250 bytes) is taken like any other.

A real daemon (``cfdi-connector run``) on real folders, the sandbox PAC over HTTP.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import time
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from tests.daemon.conftest import dat_file, dat_invoice, stamps_by_key, until, write_config


def _events(ws: Path, name: str) -> list[dict[str, object]]:
    log = ws / "var" / "connector.log"
    if not log.exists():
        return []
    out = []
    for line in log.read_text(encoding="utf-8").splitlines():
        with_event = json.loads(line)
        if with_event.get("event") == name:
            out.append(with_event)
    return out


class Daemon:
    def __init__(self, config: Path) -> None:
        self.ws = config.parent
        started = len(_events(self.ws, "pipeline_started"))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "connector.cli", "run", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert until(lambda: len(_events(self.ws, "pipeline_started")) > started, 60)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def _status(config: Path) -> dict[str, object]:
    from connector.cli import main

    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["status", "--config", str(config), "--json"]) == 0
    return json.loads(out.getvalue())


def _status_text(config: Path) -> str:
    from connector.cli import main

    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["status", "--config", str(config)]) == 0
    return out.getvalue()


def _archived(ws: Path) -> list[str]:
    return sorted(p.name for p in (ws / "archive").rglob("*") if p.is_file())


def test_links_folders_and_fifos_in_the_inbox_are_reported_once_never_followed(
    tmp_path: Path, sandbox
) -> None:
    config = write_config(tmp_path / "ws", timbrado_url=sandbox.fel_timbrado_url)
    ws = config.parent
    inbox = ws / "inbox"
    outside = ws / "fuera"
    outside.mkdir()
    (outside / "secreto.dat").write_bytes(dat_file("Z", [1]))  # must never be stamped
    (inbox / "real.dat").write_bytes(dat_file("R", [1]))
    os.symlink(inbox / "real.dat", inbox / "enlace_dentro.dat")
    os.symlink(outside / "secreto.dat", inbox / "enlace_fuera.dat")
    (inbox / "carpeta.dat").mkdir()
    os.mkfifo(inbox / "tuberia.dat")  # opened, it would block the daemon forever
    daemon = Daemon(config)
    try:
        assert until(lambda: _archived(ws) == ["real.dat"], 60)
        (inbox / "bueno.dat").write_bytes(dat_file("R", [2]))  # other files keep flowing
        assert until(lambda: _archived(ws) == ["bueno.dat", "real.dat"], 60)
        time.sleep(1.0)  # many more scans: still reported once
    finally:
        daemon.stop()
    rejected = {str(e["file"]): str(e["code"]) for e in _events(ws, "inbox_item_rejected")}
    assert rejected == {
        "enlace_dentro.dat": "CONN-BANDEJA-ENLACE",
        "enlace_fuera.dat": "CONN-BANDEJA-ENLACE",
        "carpeta.dat": "CONN-BANDEJA-CARPETA",
        "tuberia.dat": "CONN-BANDEJA-ESPECIAL",
    }
    assert len(_events(ws, "inbox_item_rejected")) == 4
    assert all(e["level"] == "error" for e in _events(ws, "inbox_item_rejected"))
    # never followed: only what was really in the inbox was stamped; the entries stay as they are
    assert sorted(stamps_by_key(sandbox.store)) == [("R", "1"), ("R", "2")]
    assert (inbox / "enlace_fuera.dat").is_symlink() and (outside / "secreto.dat").is_file()
    assert (inbox / "carpeta.dat").is_dir() and (inbox / "tuberia.dat").exists()
    listed = _inbox_failures(config)
    assert {f: i["code"] for f, i in listed.items()} == rejected
    assert "secreto.dat" in listed["enlace_fuera.dat"]["message"]
    assert "FIFO" in listed["tuberia.dat"]["message"]
    text = _status_text(config)
    assert "CONN-BANDEJA-CARPETA" in text and "carpeta.dat" in text

    # a restart does not report them again; a new folder under a taken name is reported
    (inbox / "carpeta.dat").rmdir()
    (inbox / "carpeta.dat").write_bytes(dat_file("R", [3]))
    daemon = Daemon(config)
    try:
        assert until(lambda: _archived(ws) == ["bueno.dat", "carpeta.dat", "real.dat"], 60)
        (inbox / "otra.dat").mkdir()
        assert until(lambda: len(_events(ws, "inbox_item_rejected")) == 5, 30)
        time.sleep(1.0)
    finally:
        daemon.stop()
    assert [e["file"] for e in _events(ws, "inbox_item_rejected")][4:] == ["otra.dat"]
    assert len(_status(config)["recent_failures"]) == 5  # type: ignore[arg-type]


def _inbox_failures(config: Path) -> dict[str, dict[str, str]]:
    """status --json's recent failures with a CONN-BANDEJA-* code, by file."""
    failures = _status(config)["recent_failures"]
    return {f["file"]: f for f in failures if f["code"].startswith("CONN-BANDEJA")}  # type: ignore[union-attr]


LONG = "x" * 236  # + "_factura_N.dat" = 250 bytes: legal, but not with the claim's prefix


def test_file_with_a_250_byte_name_is_claimed_processed_and_failed_with_its_name(
    tmp_path: Path, sandbox
) -> None:
    config = write_config(tmp_path / "ws", timbrado_url=sandbox.fel_timbrado_url)
    ws = config.parent
    good, bad = f"{LONG}_factura_1.dat", f"{LONG}_factura_2.dat"
    assert len(good.encode()) == 250
    (ws / "inbox" / good).write_bytes(dat_file("L", [1]))
    (ws / "inbox" / bad).write_bytes(dat_invoice("L", "2", tipo="Z").encode())  # invalid
    daemon = Daemon(config)
    try:
        assert until(lambda: _archived(ws) == [good] and (ws / "failed" / bad).exists(), 60)
    finally:
        daemon.stop()
    assert sorted(stamps_by_key(sandbox.store)) == [("L", "1")]
    assert os.listdir(ws / "inbox") == []
    assert _events(ws, "claim_failed") == []
    # the error files beside it and in the errors folder: names within 255 bytes, whole name inside
    for folder in (ws / "failed", ws / "out" / "errors"):
        reports = sorted(p.name for p in folder.iterdir() if p.name != bad)
        assert [n.endswith((".error.json", ".error.txt")) for n in reports] == [True, True]
        assert all(len(n.encode()) <= 255 for n in reports)
        doc = json.loads(next(folder.glob("*.error.json")).read_text(encoding="utf-8"))
        assert doc["file"] == bad and doc["errors"]
    counts = _status(config)["files"]
    assert counts["archived"] == 1 and counts["failed"] == 1  # type: ignore[index]


def test_claim_that_keeps_failing_backs_off_then_fails_with_a_code_in_status(
    tmp_path: Path, sandbox
) -> None:
    config = write_config(tmp_path / "ws", timbrado_url=sandbox.fel_timbrado_url)
    ws = config.parent
    daemon = Daemon(config)
    work = ws / "work" / "ventas"
    try:
        shutil.rmtree(work)
        work.write_text("no es una carpeta (un recurso compartido mal montado)")
        (ws / "inbox" / "atorado.dat").write_bytes(dat_file("T", [1]))
        started = time.monotonic()
        assert until(lambda: bool(_events(ws, "inbox_item_rejected")), 90)
        took = time.monotonic() - started
    finally:
        daemon.stop()
    failures = _events(ws, "claim_failed")
    assert len(failures) == 5  # backed off 1, 2, 4, 8 s between them: never a tight loop
    assert took >= 1 + 2 + 4 + 8
    (rejected,) = _events(ws, "inbox_item_rejected")
    assert rejected["code"] == "CONN-BANDEJA-TOMA" and rejected["file"] == "atorado.dat"
    listed = _inbox_failures(config)["atorado.dat"]
    assert listed["code"] == "CONN-BANDEJA-TOMA" and "5 intentos" in listed["message"]
    assert (ws / "inbox" / "atorado.dat").read_bytes().startswith(b"COMPROBANTE|")
    # the share is fixed and the daemon restarted: taken and stamped
    work.unlink()
    daemon = Daemon(config)
    try:
        assert until(lambda: _archived(ws) == ["atorado.dat"], 60)
    finally:
        daemon.stop()
    assert sorted(stamps_by_key(sandbox.store)) == [("T", "1")]


@pytest.mark.parametrize("name", ["a" * 255, "ñ" * 120 + ".dat"])
def test_claim_names_fit_and_the_original_name_comes_back(tmp_path: Path, name: str) -> None:
    from connector.adapters.folder import FolderSource

    inbox = tmp_path / "in"
    inbox.mkdir()
    (inbox / name).write_bytes(b"x")
    remembered: dict[str, str] = {}
    src = FolderSource(inbox, tmp_path / "w", include=["*"], stable_seconds=0, done_marker=None)
    src.remember_name = lambda work, original: remembered.__setitem__(work, original)
    claimed = src.claim(inbox / name)
    assert claimed is not None and claimed.read_bytes() == b"x"
    assert len(claimed.name.encode()) <= 255 - len(".claiming") - 1
    assert remembered == {claimed.name: name}


def test_the_sources_own_folders_inside_its_inbox_are_not_reported(tmp_path: Path, sandbox) -> None:
    """With ``include = ["*"]`` and failed/ placed inside the inbox, that folder is the
    source's own, not an ERP's mistake: no CONN-BANDEJA-CARPETA for it (another folder is)."""
    from tests.daemon.conftest import start_pipeline

    config = write_config(tmp_path / "ws", timbrado_url=sandbox.fel_timbrado_url)
    ws = config.parent
    text = config.read_text(encoding="utf-8")
    text = text.replace('include = ["*.dat"]', 'include = ["*"]', 1)
    text = text.replace('failed = "failed"', 'failed = "inbox/failed"', 1)
    config.write_text(text, encoding="utf-8")
    (ws / "inbox" / "failed").mkdir()
    (ws / "inbox" / "otra").mkdir()
    pipe = start_pipeline(config)
    try:
        pipe.poll_once()
        noted = {(f.file, f.code) for f in pipe.journal.recent_failures()}
    finally:
        pipe.close()
    assert noted == {("otra", "CONN-BANDEJA-CARPETA")}
