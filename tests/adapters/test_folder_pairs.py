"""Folder source with pairs: a header file and a lines file are taken as one unit."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from connector.adapters.folder import FolderSource, PairSpec
from tests.adapters.test_folder import Clock, _touch

PAIR = PairSpec("_H", "_D", orphan_seconds=600)


def _source(tmp_path: Path, clock: Clock | None = None, **kw: object) -> FolderSource:
    (tmp_path / "in").mkdir(exist_ok=True)
    opts: dict = {"include": ["ventas_*.csv"], "stable_seconds": 2.0, "pair": PAIR, **kw}
    if clock is not None:
        opts["clock"] = clock
    return FolderSource(tmp_path / "in", tmp_path / "work", **opts)


def test_pair_names() -> None:
    assert PAIR.split("ventas_0415_H.csv") == ("header", "ventas_0415", ".csv")
    assert PAIR.split("VENTAS_0415_d.CSV") == ("lines", "VENTAS_0415", ".CSV")
    assert PAIR.split("ventas_0415.csv") is None and PAIR.split("_H.csv") is None
    assert PAIR.partner("ventas_0415_H.csv") == "ventas_0415_D.csv"
    assert PAIR.partner("ventas_0415_D") == "ventas_0415_H"
    for bad in (("_H", "H"), ("", "_D"), ("_H", "_D.csv"), ("_H", "*")):
        with pytest.raises(ValueError):
            PairSpec(*bad)
    with pytest.raises(ValueError):
        PairSpec(orphan_seconds=0)


def test_one_half_late_is_not_taken_then_both_stable_are_taken_together(tmp_path: Path) -> None:
    clock = Clock()
    src = _source(tmp_path, clock)
    inbox = tmp_path / "in"
    header = _touch(inbox / "ventas_0415_H.csv", b"H")
    _touch(inbox / "ventas.csv", b"not a pair file")  # neither suffix: not this source's
    assert src.scan() == []
    clock.now += 5
    assert src.scan() == []  # stable, but its lines file is not there
    lines = _touch(inbox / "ventas_0415_D.csv", b"D")
    assert src.scan() == []  # the lines file is not stable yet
    clock.now += 2
    assert src.scan() == [header]  # listed once, by its header
    work = src.claim(header)
    assert work is not None and FolderSource.original_name(work) == "ventas_0415_H.csv"
    other = src.partner_in_work(work)
    assert other is not None and FolderSource.original_name(other) == "ventas_0415_D.csv"
    assert other.name.split("--")[0] == work.name.split("--")[0]  # same unique prefix
    assert (work.read_bytes(), other.read_bytes()) == (b"H", b"D")
    assert src.partner_in_work(other) == work
    assert not header.exists() and not lines.exists()
    assert sorted(p.name for p in inbox.iterdir()) == ["ventas.csv"]
    assert src.scan() == []


def test_done_markers_are_needed_on_both_files_and_move_along(tmp_path: Path) -> None:
    src = _source(tmp_path, done_marker=".ok")
    inbox = tmp_path / "in"
    header = _touch(inbox / "ventas_1_H.csv")
    _touch(inbox / "ventas_1_D.csv")
    _touch(inbox / "ventas_1_H.csv.ok", b"")
    assert src.scan() == []
    _touch(inbox / "ventas_1_D.csv.ok", b"")
    assert src.scan() == [header]
    work = src.claim(header)
    assert work is not None
    lines = src.partner_in_work(work)
    assert lines is not None
    assert {p.name for p in (tmp_path / "work").iterdir()} == {
        work.name,
        work.name + ".ok",
        lines.name,
        lines.name + ".ok",
    }
    assert list(inbox.iterdir()) == []


def test_two_racing_scanners_never_split_a_pair(tmp_path: Path) -> None:
    inbox, work = tmp_path / "in", tmp_path / "work"
    inbox.mkdir()
    bases = [f"ventas_{i:03d}" for i in range(60)]
    for b in bases:
        _touch(inbox / f"{b}_H.csv", f"{b}H".encode())
        _touch(inbox / f"{b}_D.csv", f"{b}D".encode())
    results: dict[int, list[Path]] = {0: [], 1: []}
    barrier = threading.Barrier(2)

    def run(k: int) -> None:
        src = FolderSource(inbox, work, include=["*.csv"], stable_seconds=0, pair=PAIR)
        barrier.wait()
        while paths := src.scan():
            for p in paths:
                got = src.claim(p)
                if got is not None:
                    results[k].append(got)

    threads = [threading.Thread(target=run, args=(k,)) for k in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    claimed = results[0] + results[1]
    assert sorted(FolderSource.original_name(p) for p in claimed) == [f"{b}_H.csv" for b in bases]
    assert list(inbox.iterdir()) == []
    prefixes: dict[str, set[str]] = {}
    for p in work.iterdir():
        prefix, _, name = p.name.partition("--")
        prefixes.setdefault(prefix, set()).add(name)
        assert p.read_bytes() == (name[:-6] + name[-5]).encode()  # whole and its own
    # every pair sits under one prefix: taken by one scanner, together
    assert sorted(sorted(v) for v in prefixes.values()) == [
        [f"{b}_D.csv", f"{b}_H.csv"] for b in bases
    ]


def test_a_half_alone_past_orphan_seconds_is_taken_alone_never_deleted(tmp_path: Path) -> None:
    clock = Clock()
    src = _source(tmp_path, clock)
    inbox = tmp_path / "in"
    header = _touch(inbox / "ventas_7_H.csv", b"H")
    lines = _touch(inbox / "ventas_8_D.csv", b"D")
    assert src.scan() == []
    clock.now += 599
    assert src.scan() == []
    # the timer restarts when the other half shows up and goes away again
    partner = _touch(inbox / "ventas_8_H.csv", b"x")
    assert src.scan() == []
    partner.unlink()
    clock.now += 1
    assert src.scan() == [header]  # alone for 600 s; ventas_8_D.csv alone again since now
    work = src.claim(header)
    assert work is not None and work.read_bytes() == b"H"
    assert src.partner_in_work(work) is None
    clock.now += 600
    assert src.scan() == [lines]
    work_lines = src.claim(lines)
    assert work_lines is not None and work_lines.read_bytes() == b"D"
    assert list(inbox.iterdir()) == []


def test_a_pair_with_250_byte_names_is_claimed_whole_under_shortened_names(
    tmp_path: Path,
) -> None:
    """Names too long for the claim prefix are shortened in work/ the same way for both files,
    so they still find each other; the original names are handed to ``remember_name``."""
    inbox = tmp_path / "in"
    inbox.mkdir()
    base = "ventas_" + "n" * 237
    header, lines = inbox / f"{base}_H.csv", inbox / f"{base}_D.csv"
    header.write_bytes(b"h")
    lines.write_bytes(b"d")
    assert len(header.name.encode()) == 250
    src = FolderSource(inbox, tmp_path / "w", include=["*.csv"], stable_seconds=0, pair=PairSpec())
    names: dict[str, str] = {}
    src.remember_name = names.__setitem__
    assert src.scan() == [header]
    claimed = src.claim(header)
    assert claimed is not None and claimed.read_bytes() == b"h"
    partner = src.partner_in_work(claimed)
    assert partner is not None and partner.read_bytes() == b"d"
    assert sorted(names.values()) == sorted([header.name, lines.name])
    assert names[claimed.name] == header.name and names[partner.name] == lines.name
    assert all(len(p.encode()) <= 255 - len(".claiming") - 1 for p in names)
    assert list(inbox.iterdir()) == []


def test_a_pair_claim_with_long_names_cut_by_a_crash_is_finished_at_the_next_start(
    tmp_path: Path,
) -> None:
    """Killed between the two renames of a pair claim with 250-byte names: the next start finds
    the hidden header (shortened name) and claims its partner (long name) under the same
    prefix and the same shortened form, telling ``remember_name``."""
    inbox, work = tmp_path / "in", tmp_path / "w"
    inbox.mkdir()
    base = "ventas_" + "n" * 237
    header, lines = inbox / f"{base}_H.csv", inbox / f"{base}_D.csv"
    header.write_bytes(b"h")
    lines.write_bytes(b"d")
    first = FolderSource(inbox, work, include=["*.csv"], stable_seconds=0, pair=PairSpec())
    real_rename = os.rename
    calls = []

    def crash_at_second(src: object, dst: object) -> None:
        calls.append(dst)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed")  # the process dies between the renames
        real_rename(src, dst)

    assert first.scan() == [header]
    os.rename = crash_at_second  # type: ignore[assignment]
    try:
        with pytest.raises(KeyboardInterrupt):
            first.claim(header)
    finally:
        os.rename = real_rename  # type: ignore[assignment]
    (hidden,) = work.iterdir()
    assert hidden.name.startswith(".") and hidden.name.endswith(".claiming")
    names: dict[str, str] = {}
    again = FolderSource(inbox, work, include=["*.csv"], stable_seconds=0, pair=PairSpec(),
                         remember_name=names.__setitem__)  # fmt: skip
    (done,) = again.recovered
    assert done.read_bytes() == b"h"
    partner = again.partner_in_work(done)
    assert partner is not None and partner.read_bytes() == b"d"
    assert names == {partner.name: lines.name}
    assert list(inbox.iterdir()) == []


@pytest.mark.parametrize("spare", range(-6, 8))
def test_a_pair_whose_suffixes_differ_in_length_is_shortened_both_or_neither(
    tmp_path: Path, spare: int
) -> None:
    """``_H`` and ``_LINEAS``: a header name of about the room left for a name in work/ (the
    lines file's name is 5 bytes longer) is claimed with its partner, which it still finds."""
    from connector.adapters.folder import _CLAIMING, _PREFIX_LEN, _SEP
    from connector.sinks import NAME_MAX

    room = NAME_MAX - _PREFIX_LEN - len(_SEP) - 1 - len(_CLAIMING)
    inbox = tmp_path / "in"
    inbox.mkdir()
    base = "ventas_" + "n" * (room - spare - len("ventas__H.csv"))
    header, lines = inbox / f"{base}_H.csv", inbox / f"{base}_LINEAS.csv"
    assert len(header.name.encode()) == room - spare
    header.write_bytes(b"h")
    lines.write_bytes(b"d")
    names: dict[str, str] = {}
    src = FolderSource(inbox, tmp_path / "w", include=["*.csv"], stable_seconds=0,
                       pair=PairSpec("_H", "_LINEAS"), remember_name=names.__setitem__)  # fmt: skip
    assert src.scan() == [header]
    claimed = src.claim(header)
    assert claimed is not None and claimed.read_bytes() == b"h"
    partner = src.partner_in_work(claimed)
    assert partner is not None and partner.read_bytes() == b"d"
    assert src.partner_in_work(partner) == claimed
    original = {
        p.name: names.get(p.name, FolderSource.original_name(p)) for p in (claimed, partner)
    }
    assert original == {claimed.name: header.name, partner.name: lines.name}
    assert list(inbox.iterdir()) == []
