"""Folder source: stability, done-markers, filters, order, atomic claims, watchdog wake-ups."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from connector.adapters.folder import FolderSource


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _touch(path: Path, data: bytes = b"x", mtime: float | None = None) -> Path:
    path.write_bytes(data)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def test_file_written_in_chunks_is_not_taken_until_stable(tmp_path: Path) -> None:
    inbox, clock = tmp_path / "in", Clock()
    inbox.mkdir()
    src = FolderSource(inbox, tmp_path / "work", include=["*.dat"], stable_seconds=2.0, clock=clock)
    target = inbox / "ventas.dat"
    with target.open("wb") as fh:
        for i in range(6):
            fh.write(b"CONCEPTO|%d|\n" % i * 50)
            fh.flush()
            assert src.scan() == []  # growing: never ready
            clock.now += 1.5  # less than stable_seconds between changes
    assert src.scan() == []  # last chunk unchanged for 1.5 s only
    clock.now += 0.5
    assert src.scan() == [target]  # unchanged for 2 s across two observations


def test_a_change_restarts_the_stability_wait(tmp_path: Path) -> None:
    clock = Clock()
    src = FolderSource(tmp_path, tmp_path / "w", stable_seconds=2.0, clock=clock)
    f = _touch(tmp_path / "a.dat", b"1", mtime=100)
    assert src.scan() == []
    clock.now += 3
    _touch(f, b"12", mtime=100)  # same mtime, new size
    assert src.scan() == []
    clock.now += 3
    _touch(f, b"34", mtime=200)  # same size, new mtime
    assert src.scan() == []
    clock.now += 3
    assert src.scan() == [f]


def test_files_present_before_start_are_found_by_the_first_scans(tmp_path: Path) -> None:
    for name in ("a.dat", "b.dat"):
        _touch(tmp_path / name)
    assert {p.name for p in FolderSource(tmp_path, tmp_path / "w", stable_seconds=0).scan()} == {
        "a.dat",
        "b.dat",
    }
    clock = Clock()
    src = FolderSource(tmp_path, tmp_path / "w", stable_seconds=2, clock=clock)
    assert src.scan() == []
    clock.now += 2
    assert {p.name for p in src.scan()} == {"a.dat", "b.dat"}


def test_done_marker_mode(tmp_path: Path) -> None:
    inbox, work = tmp_path / "in", tmp_path / "work"
    inbox.mkdir()
    src = FolderSource(inbox, work, include=["*.dat"], stable_seconds=60, done_marker=".done")
    f = _touch(inbox / "v1.dat")
    _touch(inbox / "v2.dat")
    assert src.scan() == []  # no marker, no file (stability is not used)
    _touch(inbox / "v1.dat.done", b"")
    assert src.scan() == [f]
    claimed = src.claim(f)
    assert claimed is not None and claimed.read_bytes() == b"x"
    assert FolderSource.original_name(claimed) == "v1.dat"
    assert not (inbox / "v1.dat.done").exists()  # the marker moved along, not deleted
    assert claimed.with_name(claimed.name + ".done").exists()
    assert src.scan() == []


def test_include_exclude_and_ignored_names(fs) -> None:  # pyfakefs: pure naming logic
    inbox = Path("/erp/out")
    fs.create_dir(inbox)
    for name in (
        "a.DAT",
        "b.dat",
        "c.csv",
        "skip_b.dat",
        ".hidden.dat",
        "~$tmp.dat",
        "x.dat.tmp",
        "y.dat.part",
        "z.dat~",
        "d.txt",
    ):
        fs.create_file(inbox / name)
    fs.create_dir(inbox / "sub.dat")
    src = FolderSource(
        inbox, Path("/erp/work"), include=["*.dat", "*.csv"], exclude=["skip_*"], stable_seconds=0
    )
    assert sorted(p.name for p in src.scan()) == ["a.DAT", "b.dat", "c.csv"]


def test_oldest_first_then_name(fs) -> None:
    inbox = Path("/in")
    fs.create_dir(inbox)
    for name, mtime in (("c.dat", 300), ("a.dat", 200), ("b.dat", 200), ("d.dat", 100)):
        fs.create_file(inbox / name)
        os.utime(inbox / name, (mtime, mtime))
    assert [p.name for p in FolderSource(inbox, Path("/w"), stable_seconds=0).scan()] == [
        "d.dat",
        "a.dat",
        "b.dat",
        "c.dat",
    ]
    by_name = FolderSource(inbox, Path("/w"), stable_seconds=0, oldest_first=False)
    assert [p.name for p in by_name.scan()] == ["a.dat", "b.dat", "c.dat", "d.dat"]


def test_claim_returns_none_when_already_taken(tmp_path: Path) -> None:
    f = _touch(tmp_path / "a.dat", b"data")
    a = FolderSource(tmp_path, tmp_path / "work", stable_seconds=0)
    b = FolderSource(tmp_path, tmp_path / "work", stable_seconds=0)
    assert a.scan() == b.scan() == [f]
    first = a.claim(f)
    assert first is not None and first.parent == tmp_path / "work" and first.read_bytes() == b"data"
    assert b.claim(f) is None
    assert a.scan() == []


def test_two_racing_sources_never_both_claim_a_file(tmp_path: Path) -> None:
    inbox, work = tmp_path / "in", tmp_path / "work"
    inbox.mkdir()
    names = {f"f{i:03d}.dat" for i in range(120)}
    for name in names:
        _touch(inbox / name, name.encode())
    results: dict[int, list[Path]] = {0: [], 1: []}
    barrier = threading.Barrier(2)

    def run(k: int) -> None:
        src = FolderSource(inbox, work, stable_seconds=0)
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
    taken = [FolderSource.original_name(p) for p in results[0] + results[1]]
    assert sorted(taken) == sorted(names)  # each file exactly once
    assert len(list(work.iterdir())) == len(names)
    for p in results[0] + results[1]:
        assert p.read_bytes() == FolderSource.original_name(p).encode()


@pytest.mark.parametrize("polling", [False, True])
def test_watch_wakes_the_scanner(tmp_path: Path, polling: bool) -> None:
    src = FolderSource(
        tmp_path,
        tmp_path.parent / f"{tmp_path.name}-work",
        stable_seconds=0,
        polling=polling,
        poll_interval=0.2,
    )
    wake = threading.Event()
    src.watch(wake)
    try:
        assert src.observer_kind == ("polling" if polling else "native")
        assert not wake.is_set()
        _touch(tmp_path / "nuevo.dat")
        assert wake.wait(timeout=30)
        assert [p.name for p in src.scan()] == ["nuevo.dat"]
    finally:
        src.stop()


def test_watch_falls_back_to_polling_when_native_cannot_start(tmp_path: Path, monkeypatch) -> None:
    import watchdog.observers

    class Broken(watchdog.observers.Observer):  # what an exhausted inotify limit looks like
        def start(self) -> None:
            raise OSError(28, "inotify watch limit reached")

    monkeypatch.setattr(watchdog.observers, "Observer", Broken)
    src = FolderSource(tmp_path, tmp_path.parent / "w2", poll_interval=0.2)
    wake = threading.Event()
    src.watch(wake)
    try:
        assert src.observer_kind == "polling"
        _touch(tmp_path / "x.dat")
        assert wake.wait(timeout=30)
    finally:
        src.stop()


@pytest.mark.skipif(not Path("/proc/self/fdinfo").is_dir(), reason="needs Linux /proc")
def test_file_another_process_holds_open_for_writing_is_not_taken(tmp_path: Path) -> None:
    """The ERP keeps its export open between chunks: never ready while it does, however long
    the pause; after it closes the file, it must stay stable again before it is taken."""
    import subprocess
    import sys

    clock = Clock()
    src = FolderSource(tmp_path, tmp_path / "w", stable_seconds=2.0, clock=clock)
    target = tmp_path / "lento.dat"
    target.write_bytes(b"COMPROBANTE|4.0|A|1|")
    writer = subprocess.Popen(
        [sys.executable, "-c", "import sys; f = open(sys.argv[1], 'ab'); sys.stdin.read()",
         str(target)],
        stdin=subprocess.PIPE,
    )  # fmt: skip
    try:
        for _ in range(100):  # until the writer has it open
            if src.scan() == [] and src._writing:
                break
            clock.now += 5
        assert set(src._writing) == {"lento.dat"}
        clock.now += 3600  # an hour without a change: still open, still not ready
        assert src.scan() == []
    finally:
        writer.communicate(b"")
    assert src.scan() == []  # closed: it must be stable again from now on
    clock.now += 2
    assert src.scan() == [target]


def test_windows_sharing_violation_on_claim_is_not_ready_not_an_error(
    tmp_path: Path, monkeypatch
) -> None:
    """Windows refuses to rename a file the ERP still has open (ERROR_SHARING_VIOLATION, 32):
    the claim returns None, the file stays in the inbox untouched, and it is tried again only
    once stable again. (Injected: Windows cannot run here.)"""
    import connector.adapters.folder as folder

    clock = Clock()
    src = FolderSource(tmp_path, tmp_path / "w", stable_seconds=2.0, clock=clock)
    f = _touch(tmp_path / "a.dat", b"1", mtime=100)
    assert src.scan() == []
    clock.now += 2
    assert src.scan() == [f]
    real_rename = os.rename

    def sharing_violation(a: object, b: object) -> None:
        exc = PermissionError(13, "El proceso no tiene acceso al archivo porque está siendo "
                              "utilizado por otro proceso", str(a))  # fmt: skip
        exc.winerror = 32  # type: ignore[attr-defined]
        raise exc

    monkeypatch.setattr(folder.os, "rename", sharing_violation)
    assert src.claim(f) is None
    assert f.exists() and not list((tmp_path / "w").iterdir())
    monkeypatch.setattr(folder.os, "rename", real_rename)
    assert src.scan() == []  # backing off
    clock.now += 1.5
    assert src.scan() == []  # and it must be stable again, from the refusal on
    clock.now += 0.5
    assert src.scan() == [f]
    claimed = src.claim(f)
    assert claimed is not None and claimed.read_bytes() == b"1"
