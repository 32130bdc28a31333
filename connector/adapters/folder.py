"""Folder source: the ERP drops export files in an inbox; we take each one exactly once.

Why this module is over 500 lines: ``FolderSource`` (about 550 of them) is one claim protocol
over one set of in-memory observations (``_seen``, ``_ready``, ``_alone``, ``_busy_until``,
``_given_up``): the scan, the claim, the pair claim and the crash recovery at start each read
and update them, and split apart each would reach into the others' state. What stands on its
own has moved out: pairs' names (``connector.adapters.folder_pairs``) and what the operating
system says of an inbox entry (``connector.adapters.inbox_entries``).

- **The scan is the truth.** ``scan()`` lists the inbox; file-system events (watchdog) only wake
  the caller up (``watch(wake)`` sets a ``threading.Event``), because events get lost on network
  shares and on overflow.
- **Taken only when complete.** A file is ready when its size and mtime did not change across
  at least ``stable_seconds`` between two scans (the observations are kept in memory), so a
  file written slowly in chunks is never taken half-written — or, with ``done_marker`` (e.g.
  ``".done"``), only once ``name + marker`` exists.
- **Claimed by atomic rename.** ``claim(path)`` renames the file into ``work_dir`` (same file
  system) under a unique name; when two scanners race, exactly one wins, the other gets
  ``None``. The done-marker moves along with its file. Inputs are never deleted.

- **Pairs and sets** (``pair=PairSpec(...)``: a header file and a lines file per export, e.g.
  ``ventas_0415_H.csv`` + ``ventas_0415_D.csv``, and the complements' files of ``extras``,
  ``ventas_0415_CCE.csv``…): only names ending (before the extension) in one of the suffixes
  are candidates. A set is ready when ALL its files are (stable or with their own
  done-markers); ``scan()`` then lists the header file only. ``claim(header)`` renames the
  header first — whoever wins it owns the set — then each other file, under the same unique
  prefix. An incomplete set waits; after ``orphan_seconds`` (counted from when this source
  first saw it incomplete) the files that are there are listed and claimed together, so that
  the daemon reports it as an error instead of waiting forever. While the others are being
  claimed, the first file sits in work/ under a hidden name (``.<prefix>--<name>.claiming``).
  If one of them cannot be moved (e.g. a Windows sharing violation: the ERP or an antivirus
  holds it), every file moved goes back to the inbox and ``claim`` raises, so the next scan
  takes the set whole.
- **Crash-safe claims.** A kill between the renames of a claim is finished when the source is
  next created (the daemon's start): a hidden first file of a set gets the set's other files
  from the inbox and its name; a done-marker left in the inbox while its file was already in work/
  moves next to that file (so it cannot make the next export of that name look complete).
  A hidden file whose recovery fails (its partner cannot be moved) is logged and stays hidden
  until the next start; it never stops the source from being created.

Hidden files (``.x``), temporary and partial names (``~$x``, ``x.tmp``, ``x.part``,
``x.partial``, ``x.crdownload``, ``x.swp``, ``x~``) and done-markers themselves are ignored.
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog

from connector.adapters.folder_pairs import PairSpec, beside, free_pair_name
from connector.adapters.inbox_entries import (
    _inode,
    _not_a_file,
    open_for_writing,
    sharing_violation,
)

log = structlog.get_logger("connector.adapters.folder")

# beside, free_pair_name and open_for_writing are imported from here by the pipeline's parts
__all__ = [
    "MAX_CLAIM_FAILURES",
    "OPEN_NOTE_SECONDS",
    "TEMP_PATTERNS",
    "FolderSource",
    "PairSpec",
    "beside",
    "free_pair_name",
    "open_for_writing",
    "sharing_violation",
]

TEMP_PATTERNS = ("~$*", "*.tmp", "*.temp", "*.part", "*.partial", "*.crdownload", "*.swp", "*~")
_SEP = "--"
_CLAIMING = ".claiming"  # a pair's first file in work/ while its other file is being claimed
_PREFIX_LEN = len("YYYYmmddTHHMMSS-") + 8  # a claim's unique prefix: time and 4 random bytes


def _patterns(patterns: Sequence[str]) -> re.Pattern[str] | None:
    """Shell patterns (``*.dat``) as one compiled regular expression; None when empty."""
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(p.lower())})" for p in patterns))


_temp_re = _patterns(TEMP_PATTERNS)
assert _temp_re is not None
_TEMP_RE: re.Pattern[str] = _temp_re

OPEN_NOTE_SECONDS = 300.0  # an inbox file held open for writing this long is listed in status
MAX_CLAIM_FAILURES = 5  # claims of one file failed in a row before it is left alone


@dataclass
class _Seen:
    size: int
    mtime_ns: int
    since: float  # clock() when this (size, mtime) was first observed


class FolderSource:
    """One watched inbox. Not shared between threads: give each scanner its own instance."""

    def __init__(
        self,
        inbox: Path,
        work_dir: Path,
        include: Sequence[str] = ("*.dat",),
        exclude: Sequence[str] = (),
        stable_seconds: float = 2.0,
        done_marker: str | None = None,
        oldest_first: bool = True,
        polling: bool = False,
        poll_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        pair: PairSpec | None = None,
        remember_name: Callable[[str, str], None] | None = None,
    ) -> None:
        if done_marker is not None and not done_marker:
            raise ValueError('done_marker no puede estar vacío (use p. ej. ".done")')
        if stable_seconds < 0:
            raise ValueError("stable_seconds no puede ser negativo")
        self.inbox = Path(inbox)
        self.work_dir = Path(work_dir)
        self.include = [p.lower() for p in include]
        self.exclude = [p.lower() for p in exclude]
        self._include_re = _patterns(self.include)
        self._exclude_re = _patterns(self.exclude)
        self.stable_seconds = stable_seconds
        self.done_marker = done_marker
        self.oldest_first = oldest_first
        self.polling = polling
        self.poll_interval = poll_interval
        self._clock = clock
        self._seen: dict[str, _Seen] = {}
        self.pair = pair
        self._alone: dict[str, float] = {}  # half of a pair → clock() when first seen alone
        self._ready: set[str] = set()  # names ready at the last scan
        # names held open for writing at the last scan → clock() when first seen so
        self._writing: dict[str, float] = {}
        self.open_note_seconds = OPEN_NOTE_SECONDS  # held open this long: listed in rejected
        self._busy_until: dict[str, float] = {}  # name → clock() before which it is not tried
        self._claim_failures: dict[str, int] = {}  # name → claims failed in a row
        # name → ((size, mtime_ns) when given up, (code, message)): not tried while unchanged
        self._given_up: dict[str, tuple[tuple[int, int], tuple[str, str]]] = {}
        # what the last scan found in the inbox and does not take: name → (code, message,
        # identity: the same entry keeps it, a new one with that name gets another)
        self.rejected: dict[str, tuple[str, str, str]] = {}
        # called with (work name, original name) before a claim renames a file to a shortened
        # name (a name too long for the claim prefix): the daemon keeps the map in its journal
        self.remember_name = remember_name
        self._observer: Any = None
        self.observer_kind: str | None = None  # "native" or "polling" once watching
        self.recovered = self._recover()

    # --- naming ----------------------------------------------------------------------------

    def _candidate(self, name: str) -> bool:
        low = name.lower()
        if low.startswith(".") or _TEMP_RE.match(low):
            return False
        if self.done_marker and low.endswith(self.done_marker.lower()):
            return False
        if self._include_re is None or not self._include_re.match(low):
            return False
        if self.pair is not None and self.pair.split(name) is None:
            return False
        return self._exclude_re is None or not self._exclude_re.match(low)

    @staticmethod
    def original_name(claimed: Path | str) -> str:
        """The name the ERP gave the file, from the unique name ``claim`` moved it to."""
        name = Path(claimed).name
        return name.split(_SEP, 1)[1] if _SEP in name else name

    # --- scanning --------------------------------------------------------------------------

    def scan(self) -> list[Path]:
        """Files ready to be taken: stable (or with their done-marker), oldest first."""
        now = self._clock()
        try:
            entries = list(os.scandir(self.inbox))
        except OSError:
            return []
        names = {e.name for e in entries}
        ready: list[tuple[int, str, Path]] = []
        alive: set[str] = set()
        rejected: dict[str, tuple[str, str, str]] = {}
        for entry in entries:
            if not self._candidate(entry.name):
                continue
            try:
                st = entry.stat(follow_symlinks=False)
                if not entry.is_file(follow_symlinks=False):
                    rejected[entry.name] = (*_not_a_file(entry), f"inode {st.st_ino}")
                    continue
            except OSError:
                continue  # vanished (taken by another scanner) between list and stat
            given_up = self._given_up.get(entry.name)
            if given_up is not None:
                if given_up[0] == (st.st_size, st.st_mtime_ns):
                    rejected[entry.name] = (*given_up[1], f"{st.st_size}:{st.st_mtime_ns}")
                    continue
                del self._given_up[entry.name]  # the ERP wrote it again: tried afresh
            alive.add(entry.name)
            if self.done_marker is not None:
                if entry.name + self.done_marker in names:
                    ready.append((st.st_mtime_ns, entry.name, Path(entry.path)))
                continue
            seen = self._seen.get(entry.name)
            if seen is None or seen.size != st.st_size or seen.mtime_ns != st.st_mtime_ns:
                self._seen[entry.name] = _Seen(st.st_size, st.st_mtime_ns, now)
                if self.stable_seconds > 0:
                    continue
            elif now - seen.since < self.stable_seconds:
                continue
            ready.append((st.st_mtime_ns, entry.name, Path(entry.path)))
        for gone in set(self._seen) - alive:
            del self._seen[gone]
        self._busy_until = {n: t for n, t in self._busy_until.items() if t > now}
        ready = [r for r in ready if r[1] not in self._busy_until]  # backing off
        self._given_up = {n: g for n, g in self._given_up.items() if n in names}
        self._claim_failures = {n: c for n, c in self._claim_failures.items() if n in names}
        self._writing = {n: t for n, t in self._writing.items() if n in names}
        self.rejected = rejected
        ready = self._not_being_written(ready, now)
        if self.pair is not None:
            ready = self._pairs_ready(ready, alive, now)
        if self.oldest_first:
            ready.sort(key=lambda r: (r[0], r[1]))
        else:
            ready.sort(key=lambda r: r[1])
        return [r[2] for r in ready]

    def _not_being_written(
        self, ready: list[tuple[int, str, Path]], now: float
    ) -> list[tuple[int, str, Path]]:
        """Leave out the files a process still holds open for writing (see
        ``open_for_writing``): renamed into work/, such a file would go on growing there
        after it was read. Its stability starts again once the writer closes it."""
        busy = open_for_writing(r[2] for r in ready) if ready else set()
        for name in {p.name for p in busy} - set(self._writing):
            log.info("file_open_for_writing", file=name, inbox=str(self.inbox))
        checked = {r[1] for r in ready}  # one not stable yet keeps its time, not checked
        self._writing = {n: t for n, t in self._writing.items() if n not in checked} | {
            p.name: self._writing.get(p.name, now) for p in busy
        }
        for p in busy:
            seen = self._seen.get(p.name)
            if seen is not None:
                seen.since = now
            since = self._writing[p.name]
            if now - since >= self.open_note_seconds:  # status says why it is not taken
                minutes = max(1, round((now - since) / 60))
                self.rejected[p.name] = (
                    "CONN-ARCHIVO-ABIERTO",
                    f"{p.name} lleva {minutes} min abierto para escritura por otro proceso; el "
                    "conector no lo toma mientras siga abierto. Si el ERP ya terminó de "
                    "escribirlo, revise qué programa lo mantiene abierto; si lo escribe por "
                    "partes con pausas largas, configure done_marker en la fuente.",
                    f"inode {_inode(p)}",  # one note per file, however long it stays open
                )
        return [r for r in ready if r[2] not in busy]

    def _pairs_ready(
        self, ready: list[tuple[int, str, Path]], alive: set[str], now: float
    ) -> list[tuple[int, str, Path]]:
        """Sets whose files are all ready (listed by their first file, the header), and
        incomplete sets (all of whose present files are ready) waiting longer than
        ``orphan_seconds``."""
        assert self.pair is not None
        by_name = {r[1]: r for r in ready}
        roles = [r for r, _ in self.pair.roles()]
        groups: dict[tuple[str, str], dict[str, str]] = {}
        for name in sorted(alive):
            parts = self.pair.split(name)
            if parts is not None:
                groups.setdefault((parts[1].lower(), parts[2].lower()), {})[parts[0]] = name
        out: list[tuple[int, str, Path]] = []
        alone: dict[str, float] = {}
        for group in groups.values():
            present = [group[r] for r in roles if r in group]
            first = present[0]
            all_ready = all(n in by_name for n in present)
            mtime = max((by_name[n][0] for n in present if n in by_name), default=0)
            if len(present) == len(roles):
                if all_ready:
                    out.append((mtime, first, by_name[first][2]))
                continue
            since = min(self._alone.get(n, now) for n in present)
            alone.update(dict.fromkeys(present, since))
            if all_ready and now - since >= self.pair.orphan_seconds:
                out.append((mtime, first, by_name[first][2]))
        self._alone = alone
        self._ready = set(by_name)
        return out

    # --- claiming --------------------------------------------------------------------------

    def claim(self, path: Path) -> Path | None:
        """Move ``path`` into ``work_dir`` under a unique name; ``None`` if someone else took it,
        or if the OS refused the rename because a process still has the file open (a Windows
        sharing violation: the ERP is still writing it; it is tried again after
        ``stable_seconds``, at least a second, and must then be stable again).

        With pairs, claiming a header also claims its lines file (when the last scan found it
        ready) under the same unique prefix; claiming a half that was alone also takes its
        other half if it became ready since, and then returns the header's work path.
        """
        path = Path(path)
        try:
            claimed = self._claim(path)
        except OSError as exc:
            if not sharing_violation(exc):
                self._claim_failed(path, exc)
                raise
            log.info("file_in_use", file=path.name, inbox=str(self.inbox), error=str(exc))
            self._forget(path.name)
            self._busy_until[path.name] = self._clock() + max(self.stable_seconds, 1.0)
            return None
        self._claim_failures.pop(path.name, None)
        return claimed

    def _claim_failed(self, path: Path, exc: OSError) -> None:
        """A claim that failed is tried again after 1, 2, 4… seconds (never in a tight loop);
        after ``MAX_CLAIM_FAILURES`` in a row the file is left alone (listed in ``rejected``
        with CONN-BANDEJA-TOMA) until the ERP writes it again."""
        name = path.name
        n = self._claim_failures[name] = self._claim_failures.get(name, 0) + 1
        if n < MAX_CLAIM_FAILURES:
            self._busy_until[name] = self._clock() + min(60.0, 2.0 ** (n - 1))
            return
        self._claim_failures.pop(name, None)
        try:
            st = os.stat(path, follow_symlinks=False)
        except OSError:
            return
        reason = exc.strerror or str(exc)
        self._given_up[name] = (
            (st.st_size, st.st_mtime_ns),
            (
                "CONN-BANDEJA-TOMA",
                f"No se pudo tomar {name} de la bandeja {self.inbox} para procesarlo "
                f"({MAX_CLAIM_FAILURES} intentos; el último: {reason}). Queda en la bandeja, "
                "sin procesar; se intenta de nuevo cuando el ERP lo vuelva a escribir o al "
                "reiniciar el conector.",
            ),
        )

    def _claim(self, path: Path) -> Path | None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
        prefix = f"{stamp}-{secrets.token_hex(4)}"
        target = self.work_dir / self._work_name(prefix, path.name)
        if self.pair is not None:
            others = self._members_among(path.name, self._ready)
            if others:
                return self._claim_set(path, others, prefix, target)
        return self._move_in(path, target)

    def _work_name(self, prefix: str, name: str) -> str:
        """``<prefix>--<name>``, within the file-name limit (``_short``); ``remember_name`` is
        told before the rename when the name had to be shortened."""
        short = self._short(name)
        work_name = f"{prefix}{_SEP}{short}"
        if short != name and self.remember_name is not None:
            self.remember_name(work_name, name)
        return work_name

    def _short(self, name: str) -> str:
        """``name`` as it is claimed: itself, or, when ``<prefix>--<name>`` would not fit the
        file-name limit even hidden as ``.x.claiming`` and with the done-marker appended, a
        shorter name (``sinks.fit_name``; for a pair, its common part, so that both files
        still match). The same name always gives the same result."""
        from connector.sinks import NAME_MAX, fit_name

        room = NAME_MAX - _PREFIX_LEN - len(_SEP) - 1 - len(_CLAIMING)
        room -= len((self.done_marker or "").encode())
        parts = self.pair.split(name) if self.pair is not None else None
        if parts is None:
            return name if len(name.encode()) <= room else fit_name(name, room)
        assert self.pair is not None
        _, base, ext = parts
        # decided on the pair's longer name: both files are shortened, or neither
        longest = max(len(s.encode()) for _, s in self.pair.roles())
        if max(len(name.encode()), len(base.encode()) + longest + len(ext.encode())) <= room:
            return name
        suffix = name[len(base) : len(name) - len(ext)]
        longest *= 4
        key = (base + ext).lower()
        short = fit_name(base, room - longest - len(ext.encode()), key=key, ext=False)
        return short + suffix + ext

    def _claim_set(
        self, path: Path, others: list[str], prefix: str, target: Path
    ) -> Path | None:
        """Claim ``path`` and the other ready files ``others`` of its set under ``prefix``. The
        first file goes to a hidden name (``.<prefix>--<name>.claiming``, ignored by everyone)
        until the others are in work/ too, so a crash in between never leaves a part of a set
        that looks claimed alone: ``_recover`` finishes the claim at the next start.

        If moving one of the others fails (other than by its being gone), every file moved
        goes back to its inbox path and the error is raised: the claim did not happen, and the
        next scan takes the set whole. Returns the work path of the set's first file (the
        header when it is there)."""
        hidden = self.work_dir / f".{target.name}{_CLAIMING}"
        if self._rename_in(path, hidden) is None:
            return None  # another scanner won: the set is theirs
        self._forget(path.name)
        moved: list[tuple[Path, Path]] = []
        for found in others:
            source = path.with_name(found)
            try:
                got = self._rename_in(source, self.work_dir / self._work_name(prefix, found))
            except OSError:
                for back_from, back_to in reversed(moved):
                    self._put_back(back_to, back_from)
                self._put_back(hidden, path)
                raise
            if got is not None:
                self._forget(found)
                moved.append((source, got))
        self._unhide(hidden, target)
        for source, got in moved:
            self._marker_in(source, got)
        self._marker_in(path, target)
        claimed = [(path.name, target)] + [(source.name, got) for source, got in moved]
        assert self.pair is not None
        return min(claimed, key=lambda c: self.pair.order(c[0]))[1]  # type: ignore[union-attr]

    def _put_back(self, moved: Path, path: Path) -> bool:
        """Undo a rename into work/ of a failed pair claim: ``moved`` goes back to ``path`` in
        the inbox — unless a file of that name appeared there meanwhile (it is never
        overwritten): then ``moved`` stays where it is (logged). True when it went back."""
        try:
            if os.path.lexists(path):
                raise FileExistsError(errno.EEXIST, "otro archivo con ese nombre", str(path))
            os.rename(moved, path)
        except OSError as exc:
            log.error("pair_claim_undo_failed", file=path.name, moved=str(moved), error=str(exc))
            return False
        return True

    def _partner_back(self, target: Path) -> None:
        """The other files of a set whose first file stays hidden must not sit in work/ alone
        (the daemon would adopt them as an incomplete set): they go back to the inbox, with
        their done-markers, and wait there with it for the next start."""
        for other in self.members_in_work(target):
            self._one_back(other)

    def _one_back(self, other: Path) -> None:
        path = self.inbox / self.original_name(other)
        if self._put_back(other, path) and self.done_marker:
            marker = other.with_name(other.name + self.done_marker)
            if marker.exists():
                self._put_back(marker, path.with_name(path.name + self.done_marker))

    def _members_among(
        self, name: str, names: Iterable[str], *, shortened: bool = False
    ) -> list[str]:
        """The names in ``names`` of the other files of ``name``'s set, compared without
        regard to case (as the scan matches them), in the set's order; [] without sets.
        ``shortened``: ``name`` is a claimed name (``_short``), ``names`` are the ERP's."""
        if self.pair is None:
            return []
        wanted = [m.lower() for m in self.pair.members(name)]
        as_claimed = self._short if shortened else (lambda n: n)
        found = {as_claimed(n).lower(): n for n in names}
        return [found[w] for w in wanted if w in found]

    def _unhide(self, hidden: Path, target: Path) -> None:
        try:
            os.rename(hidden, target)
        except FileNotFoundError:
            if not target.exists():  # finished by another instance's _recover, or gone
                raise

    def recover(self) -> list[Path]:
        """``_recover`` again: after a takeover moved another instance's claims in."""
        return self._recover()

    def _recover(self) -> list[Path]:
        """At start (construction): finish what a crash interrupted in ``claim``.

        - a set's hidden first file (``.<prefix>--<name>.claiming``): the set's other files
          still in the inbox are claimed under the same prefix, then the first file gets its
          name;
        - a done-marker left in the inbox while its file was already renamed into work/ (the
          crash came between the two renames): it goes next to that file, so it can no longer
          make the next export of that name look complete before it is.

        Returns the work/ paths it completed."""
        done: list[Path] = []
        try:
            work_names = os.listdir(self.work_dir)
        except OSError:
            return done
        for hname in sorted(n for n in work_names if n.startswith(".") and n.endswith(_CLAIMING)):
            inner = hname[1 : len(hname) - len(_CLAIMING)]
            if _SEP not in inner:
                continue
            prefix, name = inner.split(_SEP, 1)
            target = self.work_dir / inner
            try:
                if self.pair is not None:
                    have = {self.original_name(p).lower() for p in self.members_in_work(target)}
                    try:
                        inbox_names = [n for n in os.listdir(self.inbox) if self._candidate(n)]
                    except OSError:
                        inbox_names = []
                    found = self._members_among(name, inbox_names) + self._members_among(
                        name, inbox_names, shortened=True
                    )
                    for other in dict.fromkeys(found):
                        if self._short(other).lower() not in have:
                            have.add(self._short(other).lower())
                            self._move_in(
                                self.inbox / other, self.work_dir / self._work_name(prefix, other)
                            )
                self._unhide(self.work_dir / hname, target)
            except OSError as exc:
                # back to the inbox with its partner, so the next scan takes the pair whole
                # (left hidden, its partner would be taken alone after orphan_seconds); if
                # even that fails it stays hidden until the next start
                log.error("claim_recovery_failed", file=name, hidden=hname, error=str(exc))
                self._partner_back(target)
                self._put_back(self.work_dir / hname, self.inbox / name)
                continue
            done.append(target)
        if self.done_marker:
            done.extend(self._recover_markers())
        return done

    def _recover_markers(self) -> list[Path]:
        marker = self.done_marker
        assert marker
        try:
            inbox = {e.name: e for e in os.scandir(self.inbox)}
            work_names = set(os.listdir(self.work_dir))
        except OSError:
            return []
        done: list[Path] = []
        for mname, mentry in inbox.items():
            if not mname.endswith(marker) or len(mname) == len(marker):
                continue
            fname = mname[: len(mname) - len(marker)]
            with contextlib.suppress(OSError):
                fentry = inbox.get(fname)
                if fentry is not None and (fentry.stat().st_mtime_ns <= mentry.stat().st_mtime_ns):
                    continue  # its file is there and complete: an ordinary ready file
                claimed = sorted(
                    n
                    for n in work_names
                    if _SEP in n
                    and not n.startswith(".")
                    and self.original_name(n) == self._short(fname)
                    and n + marker not in work_names
                )
                if not claimed:
                    continue
                os.rename(mentry.path, self.work_dir / (claimed[-1] + marker))
                work_names.add(claimed[-1] + marker)
                done.append(self.work_dir / claimed[-1])
        return done

    def partner_in_work(self, claimed: Path) -> Path | None:
        """The first other file of a claimed set (same unique prefix in ``work_dir``), if any."""
        members = self.members_in_work(claimed)
        return members[0] if members else None

    def members_in_work(self, claimed: Path) -> list[Path]:
        """The other files of a claimed set (same unique prefix in ``work_dir``), in the set's
        order; [] without sets."""
        if self.pair is None:
            return []
        claimed = Path(claimed)
        name = self.original_name(claimed)
        if _SEP not in claimed.name or self.pair.role(name) is None:
            return []
        pre = f"{claimed.name.split(_SEP, 1)[0]}{_SEP}"
        try:
            names = os.listdir(claimed.parent)
        except OSError:
            return []
        marker = self.done_marker
        here = [
            n[len(pre) :]
            for n in names
            if n.startswith(pre) and not (marker and n.endswith(marker))
        ]
        return [claimed.with_name(pre + found) for found in self._members_among(name, here)]

    def _move_in(self, path: Path, target: Path) -> Path | None:
        """Rename ``path`` to ``target`` in ``work_dir`` (with its done-marker)."""
        if self._rename_in(path, target) is None:
            return None
        self._forget(path.name)
        self._marker_in(path, target)
        return target

    def _rename_in(self, path: Path, target: Path) -> Path | None:
        try:
            os.rename(path, target)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.EXDEV:
                raise OSError(
                    exc.errno,
                    f"La carpeta de trabajo {self.work_dir} debe estar en el mismo sistema de "
                    f"archivos que la bandeja {self.inbox} (el archivo se toma con un rename "
                    "atómico).",
                ) from exc
            raise
        return target

    def _forget(self, name: str) -> None:
        self._seen.pop(name, None)
        self._alone.pop(name, None)
        self._ready.discard(name)

    def _marker_in(self, path: Path, target: Path) -> None:
        """The done-marker follows its file (renamed after it; ``_recover`` finishes this
        after a crash in between)."""
        if self.done_marker is not None:
            marker = path.with_name(path.name + self.done_marker)
            with contextlib.suppress(FileNotFoundError):
                os.rename(marker, target.with_name(target.name + self.done_marker))

    # --- watching --------------------------------------------------------------------------

    def watch(self, wake: threading.Event) -> None:
        """Start an observer whose events only set ``wake``; the next scan finds the files.

        Native (inotify, …) unless ``polling=True`` (network shares) or the native observer
        cannot start (e.g. inotify watch limit), in which case it falls back to polling.
        """
        from watchdog.events import FileSystemEvent, FileSystemEventHandler
        from watchdog.observers import Observer
        from watchdog.observers.polling import PollingObserver

        class _Wake(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                if event.event_type not in ("opened", "closed_no_write"):
                    wake.set()

        self.stop()
        kinds: list[tuple[str, Callable[[], Any]]] = []
        if not self.polling:
            kinds.append(("native", Observer))
        kinds.append(("polling", lambda: PollingObserver(timeout=self.poll_interval)))
        last_error: Exception | None = None
        for kind, factory in kinds:
            observer = factory()
            try:
                observer.schedule(_Wake(), str(self.inbox), recursive=False)
                observer.start()
            except Exception as exc:  # inotify limits, unsupported file system…
                last_error = exc
                with contextlib.suppress(Exception):
                    observer.stop()
                continue
            self._observer = observer
            self.observer_kind = kind
            return
        raise OSError(f"No se puede vigilar la carpeta {self.inbox}: {last_error}")

    def stop(self) -> None:
        observer, self._observer = self._observer, None
        if observer is not None:
            observer.stop()
            with contextlib.suppress(RuntimeError):
                observer.join(timeout=5)
        self.observer_kind = None
