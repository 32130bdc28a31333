"""Long file names beside the archive: a done-marker follows a file whose name leaves no room
for the marker's suffix (real pipeline, real folders, the sandbox PAC over HTTP)."""

from __future__ import annotations

from pathlib import Path

from tests.daemon.conftest import dat_file, run_once, stamps_by_key, write_config
from tests.daemon.test_daemon_claim_crash import MARKER_SOURCE


def test_done_marker_beside_a_long_name_renamed_in_the_archive_fits_the_limit(
    tmp_path: Path, sandbox
) -> None:
    """The ERP exports a 249-byte name twice the same day (with ``.listo``: 255 bytes). The
    second is archived as ``<name>-1.dat`` (251 bytes): its marker beside it would take 257,
    so it is shortened (the end kept), and the file is archived, not stuck in work/."""
    config = write_config(tmp_path / "ws", timbrado_url=sandbox.fel_timbrado_url,
                          extra_sources=MARKER_SOURCE.replace(".done", ".listo"))  # fmt: skip
    ws = config.parent
    inbox = ws / "inbox-marcas"
    inbox.mkdir()
    name = "ventas_" + "n" * (249 - len("ventas_.dat")) + ".dat"
    assert len((name + ".listo").encode()) == 255
    for folio in (1, 2):
        (inbox / name).write_bytes(dat_file("L", [folio]))
        (inbox / (name + ".listo")).write_bytes(b"")
        run_once(config)
    archived = sorted(p.name for p in (ws / "archive").rglob("*") if p.is_file())
    again = name.replace(".dat", "-1.dat")
    assert name in archived and again in archived and name + ".listo" in archived
    (marker,) = [n for n in archived if n not in (name, again, name + ".listo")]
    assert marker.endswith(again[-16:] + ".listo") and len(marker.encode()) <= 255
    assert list(inbox.iterdir()) == [] and list((ws / "failed").iterdir()) == []
    assert [p for p in (ws / "work").rglob("*") if p.is_file()] == []
    assert sorted(stamps_by_key(sandbox.store)) == [("L", "1"), ("L", "2")]
