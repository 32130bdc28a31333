"""Atomic writers, moves that never overwrite, error files (real temp folders)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from connector.sinks import (
    TMP_MARK,
    ItemError,
    archive_folder,
    atomic_write,
    atomic_write_all,
    clean_temp_files,
    free_name,
    move_file,
    output_stem,
    write_error_files,
)


def test_atomic_write_replaces_whole_and_leaves_no_temp(tmp_path: Path) -> None:
    p = tmp_path / "A1_U.xml"
    atomic_write(p, b"<a/>")
    atomic_write(p, b"<b/>")
    assert p.read_bytes() == b"<b/>"
    assert list(tmp_path.iterdir()) == [p]


def test_atomic_write_failure_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "x.xml"  # folder missing → error, no debris
    with pytest.raises(FileNotFoundError):
        atomic_write(target, b"data")
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_all_writes_each_whole_and_stops_at_the_first_failure(
    tmp_path: Path,
) -> None:
    xml_dir, acuse_dir = tmp_path / "xml", tmp_path / "acuses"
    xml_dir.mkdir()
    acuse_dir.mkdir()
    big = b"<cfdi>\r\n" + b"x" * 3_000_000 + b"\n</cfdi>"  # bytes as given, no translation
    written = atomic_write_all(
        [(xml_dir / "A1_U.xml", big), (acuse_dir / "A1_U_acuse.xml", b"<acuse/>")]
    )
    assert written == [xml_dir / "A1_U.xml", acuse_dir / "A1_U_acuse.xml"]
    assert written[0].read_bytes() == big and written[1].read_bytes() == b"<acuse/>"
    with pytest.raises(FileNotFoundError):
        atomic_write_all(
            [(xml_dir / "A2_U.xml", b"<a2/>"), (tmp_path / "missing" / "A2.pdf", b"%PDF")]
        )
    assert (xml_dir / "A2_U.xml").read_bytes() == b"<a2/>"  # written before the failure
    assert sorted(p.name for p in tmp_path.rglob("*")) == [
        "A1_U.xml", "A1_U_acuse.xml", "A2_U.xml", "acuses", "xml"
    ]  # fmt: skip


def test_clean_temp_files_removes_only_ours(tmp_path: Path) -> None:
    ours = tmp_path / f".A1_U.xml.abcd1234{TMP_MARK}"
    ours.write_bytes(b"half")
    theirs = tmp_path / ".hidden"
    theirs.write_bytes(b"x")
    keep = tmp_path / "A1_U.xml"
    keep.write_bytes(b"<a/>")
    assert clean_temp_files([tmp_path, None, tmp_path / "nope"]) == [ours]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".hidden", "A1_U.xml"]


def test_move_never_overwrites_and_keeps_content(tmp_path: Path) -> None:
    src = tmp_path / "in.dat"
    src.write_bytes(b"original")
    dest_dir = tmp_path / "archive"
    existing = dest_dir / "in.dat"
    dest_dir.mkdir()
    existing.write_bytes(b"older")
    dest = free_name(dest_dir, "in.dat")
    assert dest.name == "in-1.dat"
    move_file(src, dest)
    assert not src.exists() and dest.read_bytes() == b"original"
    assert existing.read_bytes() == b"older"
    other = tmp_path / "b.dat"
    other.write_bytes(b"b")
    with pytest.raises(FileExistsError):
        move_file(other, existing)
    assert other.read_bytes() == b"b"


def test_output_stem_and_archive_folder() -> None:
    stem = output_stem("{serie}{folio}_{uuid}", serie="A/B", folio="7", uuid="u-1")
    assert stem == "A_B7_u-1"
    assert archive_folder(Path("/arch"), date(2026, 11, 21)) == Path("/arch/2026-11-21")


def test_error_files_for_people_and_machines(tmp_path: Path) -> None:
    errs = [
        ItemError("ventas.dat:3", "A2", "CFDI40108", "TipoDeComprobante", "No es válido."),
        ItemError("ventas.dat:9", "", "CONN-DATA", "Fecha", "Es obligatorio."),
    ]
    txt, js = write_error_files(tmp_path, "ventas.dat", errs, ["A1"])
    assert txt.name == "ventas.dat.error.txt" and js.name == "ventas.dat.error.json"
    text = txt.read_text(encoding="utf-8")
    assert "CFDI40108" in text and "ventas.dat:3" in text and "factura A2" in text
    assert "A1" in text
    doc = json.loads(js.read_text(encoding="utf-8"))
    assert [e["code"] for e in doc["errors"]] == ["CFDI40108", "CONN-DATA"]
    assert doc["delivered"] == ["A1"]


def _other_file_system(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """``folder`` behaves as another file system: a link or rename into it fails with EXDEV
    (a second file system cannot be mounted here)."""
    import errno
    import os

    real_link = os.link

    def link(src: object, dst: object, *a: object, **k: object) -> None:
        if Path(str(dst)).is_relative_to(folder):
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        real_link(src, dst, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "link", link)


def test_a_move_across_file_systems_never_unlinks_a_source_written_during_the_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    src, archive = tmp_path / "work" / "v.dat", tmp_path / "archive"
    src.parent.mkdir()
    src.write_bytes(b"COMPROBANTE|1\n")
    _other_file_system(monkeypatch, archive)
    real_copy2 = shutil.copy2

    def copy_while_the_erp_writes(a: object, b: object, **k: object) -> object:
        out = real_copy2(a, b, **k)  # type: ignore[arg-type]
        with open(src, "ab") as fh:  # the ERP appends before the source is unlinked
            fh.write(b"COMPROBANTE|2\n")
        return out

    monkeypatch.setattr(shutil, "copy2", copy_while_the_erp_writes)
    with pytest.raises(OSError, match="cambió"):
        move_file(src, archive / "v.dat")
    assert src.read_bytes() == b"COMPROBANTE|1\nCOMPROBANTE|2\n"  # kept, whole
    assert list(archive.iterdir()) == []  # no partial copy, no temporary left
    monkeypatch.setattr(shutil, "copy2", real_copy2)
    assert move_file(src, archive / "v.dat").read_bytes() == b"COMPROBANTE|1\nCOMPROBANTE|2\n"
    assert not src.exists()
