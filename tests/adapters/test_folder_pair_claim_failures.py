"""Folder source with pairs: a claim or a start-up recovery whose partner rename fails.

A Windows sharing violation (the ERP or an antivirus holding the file) cannot happen here, so
``os.rename`` raises ``PermissionError`` for the partner's path only; every other rename — and
all of ``FolderSource`` — is real, on real folders.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from connector.adapters.folder import FolderSource, PairSpec
from tests.adapters.test_folder import Clock, _touch

PAIR = PairSpec("_H", "_D", orphan_seconds=600)


def _source(tmp_path: Path, clock: Clock | None = None, **kw: object) -> FolderSource:
    (tmp_path / "in").mkdir(exist_ok=True)
    opts: dict = {"include": ["ventas_*.csv"], "stable_seconds": 2.0, "pair": PAIR, **kw}
    if clock is not None:
        opts["clock"] = clock
    return FolderSource(tmp_path / "in", tmp_path / "work", **opts)


def _locked(
    monkeypatch: pytest.MonkeyPatch, held: Path, before: Callable[[], None] | None = None
) -> None:
    """``os.rename`` of ``held`` fails as a Windows sharing violation would."""
    real = os.rename

    def rename(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        if Path(src) == held:
            if before is not None:
                before()
            raise PermissionError(13, "sharing violation (the ERP holds the file)", str(src))
        real(src, dst)

    monkeypatch.setattr(os, "rename", rename)


def _names(folder: Path) -> list[str]:
    return sorted(os.listdir(folder)) if folder.exists() else []


def test_a_pair_whose_lines_file_cannot_be_moved_goes_back_whole_and_is_taken_by_a_later_scan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    src = _source(tmp_path, clock)
    inbox, work = tmp_path / "in", tmp_path / "work"
    header = _touch(inbox / "ventas_0415_H.csv", b"H")
    lines = _touch(inbox / "ventas_0415_D.csv", b"D")
    src.scan()
    clock.now += 2
    assert src.scan() == [header]

    with monkeypatch.context() as m:
        _locked(m, lines)
        with pytest.raises(PermissionError):
            src.claim(header)
    # nothing hidden in work/, nothing claimed: both files are back in the inbox, unchanged
    assert _names(work) == []
    assert _names(inbox) == ["ventas_0415_D.csv", "ventas_0415_H.csv"]
    assert (header.read_bytes(), lines.read_bytes()) == (b"H", b"D")

    # the next scans see the pair again (once the header is stable again) and take it whole
    src.scan()
    clock.now += 2
    assert src.scan() == [header]
    work_h = src.claim(header)
    assert work_h is not None and FolderSource.original_name(work_h) == "ventas_0415_H.csv"
    work_d = src.partner_in_work(work_h)
    assert work_d is not None and FolderSource.original_name(work_d) == "ventas_0415_D.csv"
    assert (work_h.read_bytes(), work_d.read_bytes()) == (b"H", b"D")
    assert _names(inbox) == []
    assert not any(n.startswith(".") for n in _names(work))


def test_a_pair_with_done_markers_whose_partner_cannot_be_moved_keeps_its_markers_and_is_ready(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    src = _source(tmp_path, clock, done_marker=".done")
    inbox, work = tmp_path / "in", tmp_path / "work"
    header = _touch(inbox / "ventas_0415_H.csv", b"H")
    lines = _touch(inbox / "ventas_0415_D.csv", b"D")
    _touch(inbox / "ventas_0415_H.csv.done", b"")
    _touch(inbox / "ventas_0415_D.csv.done", b"")
    assert src.scan() == [header]

    with monkeypatch.context() as m:
        _locked(m, lines)
        with pytest.raises(PermissionError):
            src.claim(header)
    assert _names(work) == []
    assert _names(inbox) == [
        "ventas_0415_D.csv",
        "ventas_0415_D.csv.done",
        "ventas_0415_H.csv",
        "ventas_0415_H.csv.done",
    ]

    assert src.scan() == []  # a failed claim is not retried at once (issue 17.4)
    clock.now += 1  # the first back-off; markers, not stability: ready again
    assert src.scan() == [header]
    work_h = src.claim(header)
    assert work_h is not None
    work_d = src.partner_in_work(work_h)
    assert work_d is not None
    assert sorted(p.name for p in work.iterdir()) == sorted(
        [work_h.name, work_h.name + ".done", work_d.name, work_d.name + ".done"]
    )
    assert _names(inbox) == []


def test_a_failed_pair_claim_never_overwrites_a_new_file_of_that_name_and_the_next_start_finishes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    src = _source(tmp_path, clock)
    inbox, work = tmp_path / "in", tmp_path / "work"
    header = _touch(inbox / "ventas_0415_H.csv", b"H old")
    lines = _touch(inbox / "ventas_0415_D.csv", b"D")
    src.scan()
    clock.now += 2
    assert src.scan() == [header]

    def erp_writes_a_new_header() -> None:
        _touch(header, b"H new")

    with monkeypatch.context() as m, capture_logs() as logs:
        _locked(m, lines, before=erp_writes_a_new_header)
        with pytest.raises(PermissionError):
            src.claim(header)
    assert header.read_bytes() == b"H new"  # the new export is not overwritten
    hidden = [n for n in _names(work) if n.endswith(".claiming")]
    assert len(hidden) == 1 and hidden[0].startswith(".")
    undo = [e for e in logs if e["event"] == "pair_claim_undo_failed"]
    assert len(undo) == 1 and undo[0]["log_level"] == "error"
    assert undo[0]["file"] == "ventas_0415_H.csv"

    # the next start: the hidden old header gets its lines file and its name
    src2 = _source(tmp_path, clock)
    assert len(src2.recovered) == 1
    work_h = src2.recovered[0]
    assert work_h.read_bytes() == b"H old"
    work_d = src2.partner_in_work(work_h)
    assert work_d is not None and work_d.read_bytes() == b"D"
    assert _names(inbox) == ["ventas_0415_H.csv"]
    assert not any(n.startswith(".") for n in _names(work))


def _hidden_claim(tmp_path: Path) -> tuple[Path, Path]:
    """The state a kill between the two renames of a pair claim leaves behind."""
    inbox, work = tmp_path / "in", tmp_path / "work"
    inbox.mkdir()
    work.mkdir()
    hidden = _touch(work / ".20260415T101500-0a1b2c3d--ventas_0415_H.csv.claiming", b"H")
    lines = _touch(inbox / "ventas_0415_d.csv", b"D")  # the scan matches names without case
    return hidden, lines


def test_a_start_whose_recovery_cannot_move_the_partner_puts_the_pair_back_in_the_inbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hidden, lines = _hidden_claim(tmp_path)
    inbox, work = tmp_path / "in", tmp_path / "work"
    clock = Clock()
    with monkeypatch.context() as m, capture_logs() as logs:
        _locked(m, lines)
        src = _source(tmp_path, clock)  # does not raise
    assert src.recovered == []
    failed = [e for e in logs if e["event"] == "claim_recovery_failed"]
    assert len(failed) == 1 and failed[0]["log_level"] == "error"
    assert failed[0]["file"] == "ventas_0415_H.csv" and "sharing violation" in failed[0]["error"]
    # the hidden header went back beside its lines file: nothing hidden, nothing alone
    assert _names(work) == []
    assert _names(inbox) == ["ventas_0415_H.csv", "ventas_0415_d.csv"]
    assert (inbox / "ventas_0415_H.csv").read_bytes() == b"H" and lines.read_bytes() == b"D"
    # once the file is no longer held, a later scan takes the pair whole
    src.scan()
    clock.now += 2
    assert src.scan() == [inbox / "ventas_0415_H.csv"]
    claimed = src.claim(inbox / "ventas_0415_H.csv")
    assert claimed is not None and src.partner_in_work(claimed) is not None
    assert _names(inbox) == []


def test_a_start_whose_unhide_fails_logs_it_and_goes_on_with_the_other_hidden_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hidden, lines = _hidden_claim(tmp_path)
    work = tmp_path / "work"
    other = _touch(work / ".20260415T101600-11223344--ventas_0416_D.csv.claiming", b"D2")
    other_h = _touch(tmp_path / "in" / "ventas_0416_H.csv", b"H2")
    with monkeypatch.context() as m, capture_logs() as logs:
        _locked(m, hidden)  # the hidden file itself cannot get its name
        src = _source(tmp_path)
    assert [e["event"] for e in logs if e["log_level"] == "error"] == [
        "claim_recovery_failed",
        "pair_claim_undo_failed",  # held: it cannot go back either, it stays hidden
    ]
    assert hidden.exists()
    # its lines file, moved into work/ before the unhide failed, is not left there alone (the
    # daemon would adopt it as an incomplete pair): it is back in the inbox
    assert not (work / "20260415T101500-0a1b2c3d--ventas_0415_d.csv").exists()
    assert lines.read_bytes() == b"D"
    # the other hidden file was recovered regardless
    assert src.recovered == [work / "20260415T101600-11223344--ventas_0416_D.csv"]
    assert not other.exists() and not other_h.exists()
    assert (work / "20260415T101600-11223344--ventas_0416_H.csv").read_bytes() == b"H2"

    src2 = _source(tmp_path)
    assert src2.recovered == [work / "20260415T101500-0a1b2c3d--ventas_0415_H.csv"]
    assert not any(n.startswith(".") for n in _names(work))


def test_a_start_whose_unhide_fails_puts_a_partner_already_in_work_back_with_its_marker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # killed after both renames of the lines file and its marker, before the header's unhide
    inbox, work = tmp_path / "in", tmp_path / "work"
    inbox.mkdir()
    work.mkdir()
    hidden = _touch(work / ".20260415T101500-0a1b2c3d--ventas_0415_H.csv.claiming", b"H")
    _touch(inbox / "ventas_0415_H.csv.done", b"")
    _touch(work / "20260415T101500-0a1b2c3d--ventas_0415_D.csv", b"D")
    _touch(work / "20260415T101500-0a1b2c3d--ventas_0415_D.csv.done", b"")
    with monkeypatch.context() as m, capture_logs() as logs:
        _locked(m, hidden)
        src = _source(tmp_path, done_marker=".done")
    assert [e["event"] for e in logs if e["log_level"] == "error"] == [
        "claim_recovery_failed",
        "pair_claim_undo_failed",  # held: it cannot go back either, it stays hidden
    ]
    assert src.recovered == []
    assert _names(work) == [hidden.name]  # nothing in work/ that the daemon could adopt
    assert _names(inbox) == [
        "ventas_0415_D.csv",
        "ventas_0415_D.csv.done",
        "ventas_0415_H.csv.done",
    ]
    assert src.scan() == []  # the lines file is not taken alone: its header is missing

    src2 = _source(tmp_path, done_marker=".done")
    target = work / "20260415T101500-0a1b2c3d--ventas_0415_H.csv"
    assert target in src2.recovered
    assert sorted(_names(work)) == sorted(
        [
            target.name,
            target.name + ".done",
            "20260415T101500-0a1b2c3d--ventas_0415_D.csv",
            "20260415T101500-0a1b2c3d--ventas_0415_D.csv.done",
        ]
    )
    assert _names(inbox) == []
