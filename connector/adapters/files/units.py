"""The folder source kind: its units of work are claimed files. It scans each inbox, claims
what is ready into ``work/``, reads it whole, hands each invoice to the invoice flow's
admission and, when every invoice of a file is final, moves the file to the archive or to
``failed/`` beside its error files (``finishing``).

Restart safety: a file stays in ``work/`` until its invoices end; on start every file left in
``work/`` is processed again and each invoice continues from its journal state — sealed bytes
are resent as they are, an invoice found in ``sending`` is first recovered from the PAC by its
``referencia``, stamped ones are only delivered.

Over 500 lines because a file's life from its claim to its decision is one story told by one
class: claim, settle, read, admit, finish; its end (moves, error files) is ``finishing``, its
reading ``reading``, the instances' work folders ``adapters.work_folders``.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from connector.adapters.work_folders import find_claim
from connector.config import SourceConfig
from connector.flow.runtime import Admitted, SourceRuntime
from connector.journal import (
    COMMITTED_STATES,
    Entry,
    FileItem,
    FileRecord,
    FileState,
    journal_retry,
)
from connector.sinks import archive_folder, clean_temp_files

from .finishing import FileFinishing, FileOutcome
from .reading import Fingerprint, Settling, StillWriting, read_whole

if TYPE_CHECKING:
    from connector.flow.sending import InvoiceFlow

log = structlog.get_logger("connector.pipeline")

_CHUNK = 32  # invoices journaled per transaction before their sends are dispatched
MAX_CHANGES = 10  # times a file may be found changed after it was read before it fails


class FileUnits(FileFinishing):
    """Every folder source of one pipeline (``flow``): their claimed files and what each
    file's invoices became."""

    def __init__(self, flow: InvoiceFlow) -> None:
        self.flow = flow
        self._lock = threading.RLock()
        self._open: dict[int, tuple[str, Path]] = {}  # file_id → (source, work path)
        self._files_of: dict[int, set[int]] = {}  # invoice_id → open files carrying it
        self._carried: dict[int, set[int]] = {}  # file_id → the invoices it carries
        self._reread: set[int] = set()  # claimed files whose processing raised: read again
        # files that changed while (or after) they were read: file_id → watched until settled
        self._settling: dict[int, Settling] = {}
        self._settling_since: dict[int, float] = {}  # file_id → monotonic() first watched
        self._parsed: dict[int, Fingerprint] = {}  # file_id → the bytes its invoices came from
        self._changes: dict[int, int] = {}  # file_id → times it was found changed after a read
        self._noted: set[str] = set()  # inbox entries not taken, already noted in the journal
        self.max_changes = MAX_CHANGES
        self.busy_note_seconds = 300.0  # watched this long: listed by status (once)
        self.finished: list[FileOutcome] = []  # outcomes since start (for submit / demo)

    def tick(self) -> None:
        self.flow.tick()

    # --- the source's folders ---------------------------------------------------------------

    def make_folder(self, s: SourceConfig, poll_seconds: float) -> Any:
        from connector.adapters.folder import FolderSource

        pair = s.pair.spec() if s.pair is not None else None
        assert s.inbox is not None and s.work is not None
        s.work.mkdir(parents=True, exist_ok=True)
        return FolderSource(
            s.inbox,
            s.work,
            include=s.include,
            exclude=s.exclude,
            stable_seconds=s.stable_seconds,
            done_marker=s.done_marker,
            polling=s.polling,
            poll_interval=s.poll_seconds or poll_seconds,
            pair=pair,
            remember_name=self.flow.journal.remember_name if self.flow.journal else None,
        )

    def clean(self, src: SourceRuntime, today: Any) -> None:
        """Temporary files a kill left in the source's folders."""
        o, archive = src.cfg.output, src.cfg.archive
        assert o is not None and archive is not None  # a folder source's
        clean_temp_files([o.xml, o.pdf, o.acuse, o.errors, archive, src.cfg.failed])
        clean_temp_files([archive_folder(archive, today), src.cfg.work])

    def original_name(self, work: Path) -> str:
        """The ERP's name of a claimed file (from the journal when the claim shortened it)."""
        from connector.adapters.folder import FolderSource

        return self.journal.claimed_name(work.name) or FolderSource.original_name(work)

    # --- the loop ---------------------------------------------------------------------------

    def poll(self, src: SourceRuntime, stop: Callable[[], bool]) -> int:
        """Scan the source's inbox and take every ready file. Returns files taken."""
        try:
            ready = src.folder.scan()
            self.note_rejected(src)
        except Exception as exc:
            log.error("scan_failed", source=src.cfg.name, error=str(exc))
            return 0
        taken = 0
        for path in ready:
            if stop():
                return taken
            self.tick()
            self.flow._wait_for_room(self.tick)
            try:
                work = src.folder.claim(path)
            except Exception as exc:
                log.error("claim_failed", source=src.cfg.name, file=str(path), error=str(exc))
                continue
            if work is None:
                continue
            taken += 1
            try:
                self.process_file(src, Path(work), just_claimed=True)
            except Exception as exc:  # stays in work/: read again by the next tick
                if journal_retry(exc):
                    self.flow.journal_away(exc)
                else:
                    log.exception("file_failed_internal", file=Path(work).name)
        return taken

    def note_rejected(self, src: SourceRuntime) -> None:
        """What the scan found in the inbox and does not take (links, folders, FIFOs, files
        that cannot be claimed): noted in the journal (``status`` lists it) and logged, once
        per entry — across restarts too."""
        inbox = src.cfg.inbox
        assert inbox is not None  # a folder source's
        for name, (code, message, ident) in getattr(src.folder, "rejected", {}).items():
            once = f"inbox:{src.cfg.name}:{name}:{code}:{ident}"
            if once in self._noted or _own_folder(src.cfg, inbox / name):
                continue
            location = str(inbox / name)
            if self.journal.note_failure(src.cfg.name, name, code, message, location=location,
                                         once=once):  # fmt: skip
                log.error("inbox_item_rejected", code=code, file=name, source=src.cfg.name,
                          message=message)  # fmt: skip
            self._noted.add(once)

    def idle(self) -> bool:
        with self._lock:
            return not self._open

    @property
    def settling(self) -> bool:
        return bool(self._settling)

    def inbox_waiting(self, sources: list[SourceRuntime]) -> bool:
        """Some inbox holds a file this pipeline would take once it is stable."""
        for src in sources:
            candidate = getattr(src.folder, "_candidate", None)
            try:
                names = os.listdir(src.cfg.inbox)
            except OSError:
                continue
            marker = src.cfg.done_marker
            present = set(names)
            rejected = getattr(src.folder, "rejected", {})
            for n in names:
                if n in rejected:
                    continue  # not taken: listed by status, never waited for
                if marker and n + marker not in present:
                    continue  # waits for the ERP's done-marker, not for us
                if candidate is None or candidate(n):
                    return True
        return False

    def retry_stuck(self) -> None:
        """Moves to archive/ or failed/ and error files that failed (share offline,
        permissions, disk full), and claimed files whose processing failed."""
        for rec in self.journal.files(FileState.ARCHIVING, FileState.FAILING):
            if rec.source in self.flow.sources:
                self.retry_move(rec)
        for rec in self.journal.files(FileState.CLAIMED):
            src = self.flow.sources.get(rec.source)
            if src is None or src.folder is None:
                continue
            with self._lock:
                is_open = rec.id in self._open
                reread = rec.id in self._reread
            if not is_open:  # taken over and not brought in yet (a resume that failed)
                rec = self._relocated(rec)
            try:
                if (reread or not is_open) and Path(rec.work_path).is_file():
                    log.info("file_read_again", file=rec.name, source=rec.source)
                    self.process_file(src, Path(rec.work_path))
                elif is_open:
                    self.maybe_finish(rec.id)
            except Exception:
                log.exception("file_failed_internal", file=rec.name)

    def resume(self) -> None:
        """Finish what a previous run left: moves decided but not done, files left in work/.
        Also what this instance took over from a stopped one sharing the journal (its files
        moved into this one's work folder: ``connector.membership``); a file open here is
        left to its run."""
        for each in self.flow.sources.values():
            if each.folder is not None:  # a pair half-claimed in a folder taken over
                each.folder.recover()
        for rec in self.journal.files(FileState.ARCHIVING, FileState.FAILING):
            self.retry_move(self._relocated(rec))
        known: set[str] = set()
        for rec in self.journal.files(FileState.CLAIMED):
            with self._lock:
                is_open = rec.id in self._open
            rec = self._relocated(rec)
            known.add(rec.work_path)
            src = self.flow.sources.get(rec.source)
            if is_open or src is None or src.folder is None:
                continue
            if Path(rec.work_path).exists():
                self.tick()
                log.info("resume_file", file=rec.name, source=rec.source)
                try:
                    self.process_file(src, Path(rec.work_path))
                except Exception:
                    log.exception("file_failed_internal", file=rec.name)
        for src in self.flow.sources.values():
            if src.folder is None:
                continue
            assert src.cfg.work is not None
            marker = src.cfg.done_marker
            for p in sorted(src.cfg.work.iterdir()):
                if marker and p.name.endswith(marker):
                    continue
                if self._lines_of_a_claimed_pair(src, p):
                    continue  # read (and moved) with its header file
                if p.is_file() and not p.name.startswith(".") and str(p) not in known:
                    self.tick()
                    log.info("adopt_file", file=p.name, source=src.cfg.name)
                    self.process_file(src, p)

    def _relocated(self, rec: FileRecord) -> FileRecord:
        """A claimed file of this instance outside its work folder — still in the folder of
        the instance it was taken over from, or in ``<work>/`` itself (claimed before the
        journal was shared) — brought into it with the rest of its claim, and recorded at its
        new place. Also found by name when a takeover moved it (its row not yet told)."""
        src = self.flow.sources.get(rec.source)
        mine = None if src is None else src.cfg.work
        work = Path(rec.work_path)
        if mine is None or work.parent == mine:
            return rec
        found = find_claim(work, mine)
        if found is None:
            return rec
        self.journal.file_moved(rec.id, str(found))
        log.info("file_taken_over", file=rec.name, source=rec.source, work=str(found))
        return self.journal.get_file(rec.id)

    def _lines_of_a_claimed_pair(self, src: SourceRuntime, work: Path) -> bool:
        """A file of a set in work/ whose first file (the header) is there too: the first
        one carries the set."""
        from connector.adapters.folder import FolderSource

        pair = getattr(src.folder, "pair", None)
        if pair is None or pair.role(FolderSource.original_name(work)) is None:
            return False
        mine, name = pair.order(FolderSource.original_name(work)), FolderSource.original_name
        return any(pair.order(name(m)) < mine for m in src.folder.members_in_work(work))

    # --- one file ---------------------------------------------------------------------------

    def process_file(
        self, src: SourceRuntime, work: Path, *, just_claimed: bool = False
    ) -> FileRecord:
        """Parse the file, run each invoice to the PAC hand-off; finish it when all are final.
        ``just_claimed``: the scan that claimed it a moment ago found no process writing it.

        Read again after a restart, the invoices this file already committed (sealed or later)
        stay linked to it and continue from their journal rows — resent as sealed, recovered,
        or delivered — whatever the file parses to now (a mapping edited meanwhile, a read or
        adapter error): a committed invoice is never re-sealed and never left behind.
        """
        name = self.original_name(work)
        rec = self.journal.file_claimed(src.cfg.name, name, str(work))
        with self._lock:
            self._open[rec.id] = (src.cfg.name, work)
            self._reread.discard(rec.id)
        try:
            return self._process_file(src, work, rec, name, just_claimed)
        except Exception:  # e.g. the journal busy: the periodic tick reads the file again
            if self.journal.get_file(rec.id).state is FileState.CLAIMED:
                with self._lock:
                    self._reread.add(rec.id)
            raise

    def _process_file(
        self, src: SourceRuntime, work: Path, rec: FileRecord, name: str, just_claimed: bool
    ) -> FileRecord:
        flog = log.bind(file=name, source=src.cfg.name)
        # on resume: what this very file already committed, by its index in the file
        previous: dict[int, tuple[Entry, str]] = {}
        for it in self.journal.file_items(rec.id):
            if it.invoice_id is not None:
                pe = self.journal.get_id(it.invoice_id)
                if pe.state in COMMITTED_STATES:
                    previous[it.idx] = (pe, it.location)
        spare = max(previous, default=-1) + 1  # the index of a whole-file error
        items: list[FileItem] = []
        admitted: list[Admitted] = []
        invoices: list[Any] = []
        seen: dict[tuple[str, str, str], str] = {}  # business key → where it first appeared
        # read again in this process because its bytes changed (the ERP still writing it):
        # its committed invoices are found by business key and their content compared
        # (journal.admit), not taken by their place in the file
        earlier_read = self._parsed.get(rec.id)
        by_key = False
        try:
            read = read_whole(src.folder, work, writers=not just_claimed)
        except StillWriting as busy:
            flog.info("file_still_being_written", reason=busy.reason)
            self._settle(rec)
            return rec
        except OSError as exc:
            flog.error("read_failed", error=str(exc))
            items.append(_whole_file_error(rec.id, spare, name, "CONN-LECTURA",
                                           f"No se pudo leer el archivo: {exc}"))  # fmt: skip
        else:
            data, others, self._parsed[rec.id] = read
            by_key = earlier_read is not None and [f[3] for f in earlier_read] != [
                f[3] for f in read[2]
            ]
            try:
                with self.flow._stage("parse_map"):
                    invoices = list(self._load(src, data, name, work, others))
            except Exception as exc:  # never crash the daemon on one file
                flog.exception("load_failed")
                items.append(_whole_file_error(
                    rec.id, spare, name, "CONN-ADAPTADOR",
                    f"Error interno al leer el archivo: {type(exc).__name__}: {exc}"))  # fmt: skip
        # invoices are journaled in chunks (one commit each); a chunk's sends leave only
        # after its commit
        for start in range(0, len(invoices), _CHUNK):
            with self.journal.batch():
                first = len(items)
                for idx in range(start, min(start + _CHUNK, len(invoices))):
                    inp = invoices[idx]
                    committed = None if by_key else previous.pop(idx, None)
                    try:
                        if committed is not None:
                            where = inp.location or committed[1]
                            seen.setdefault(committed[0].key, where)
                            a = self.flow.resume_committed(committed[0], where, inp, rec.name)
                        else:
                            with self.flow._stage("validate_seal"):
                                a = self.flow.admit(
                                    src, inp, inp.location or f"{name}#{idx + 1}",
                                    source_file=name, seen=seen,
                                )  # fmt: skip
                    except Exception as exc:
                        if journal_retry(exc):  # not the file's fault: it is read again
                            raise
                        flog.exception("invoice_failed_internal", index=idx)
                        a = Admitted(inp.location, None, [
                            {"code": "CONN-INTERNO", "path": "", "location": inp.location,
                             "message": f"Error interno al procesar la factura: {exc}"}])  # fmt: skip
                    items.append(FileItem(rec.id, idx, a.location, a.invoice_id, a.problems))
                    admitted.append(a)
                # linked to the file in the commit of their seals: after a crash before the
                # file's final items, a restart still finds them (and never admits them anew)
                self.journal.link_file_items(rec.id, items[first:])
            if start + _CHUNK < len(invoices):
                self.flow.dispatch_admitted(admitted)
                admitted.clear()
        # committed invoices the file no longer yields (where they were, or at all when read
        # by key; one whose content changed was refused above): still this file's
        yielded = {it.invoice_id for it in items}
        extra = max((it.idx + 1 for it in items), default=0)  # a free index
        for idx, (pe, location) in sorted(previous.items()):
            if pe.id in yielded:
                continue
            if by_key:
                idx, extra = extra, extra + 1
            a = self.flow.resume_committed(pe, location, None, rec.name)
            items.append(FileItem(rec.id, idx, a.location, a.invoice_id, a.problems))
            admitted.append(a)
        items.sort(key=lambda it: it.idx)
        self.journal.set_file_items(rec.id, items)
        with self._lock:
            carried = self._carried[rec.id] = set()
            for it in items:
                if it.invoice_id is not None:
                    self._files_of.setdefault(it.invoice_id, set()).add(rec.id)
                    carried.add(it.invoice_id)
        flog.info("file_taken", invoices=len(invoices))
        self.flow.dispatch_admitted(admitted)
        self.maybe_finish(rec.id)
        return rec

    def _load(
        self,
        src: SourceRuntime,
        data: bytes,
        name: str,
        work: Path | None = None,
        others: list[tuple[Path, bytes]] | None = None,
    ) -> Any:
        """The invoices of a file; with pairs, ``others``: the other files of its set in work/
        and their bytes (those missing: the set came incomplete)."""
        from connector.adapters.base import FilePart, load_invoices, load_pair

        pair = getattr(src.folder, "pair", None)
        adapter = src.cfg.adapter
        assert adapter is not None  # a folder source's
        if pair is None or work is None:
            return load_invoices(
                data, name, adapter=adapter, options=src.cfg.options, mapping=src.mapping
            )
        # a header, lines and complements' files claimed together, or an incomplete set
        given = {pair.role(n): FilePart(n, b) for n, b in [(name, data), *(
            (self.original_name(p), b) for p, b in others or [])]}  # fmt: skip
        parts = {role: given.get(role) or FilePart(pair.named(name, role) or "", None)
                 for role, _ in pair.roles()}  # fmt: skip
        header, lines = parts.pop("header"), parts.pop("lines")
        return load_pair(header, lines, adapter=adapter, options=src.cfg.options,
                         mapping=src.mapping, extras=parts)  # fmt: skip

    # --- files that change after they were claimed ------------------------------------------

    def _settle(self, rec: FileRecord) -> None:
        """A claimed file still being written (or changed after it was read) is watched, and
        read again once it stayed unchanged for ``stable_seconds`` (at least a second) with
        no process holding it open for writing; it is not finished meanwhile."""
        with self._lock:
            self._open.setdefault(rec.id, (rec.source, Path(rec.work_path)))
            self._settling[rec.id] = Settling(rec.source, Path(rec.work_path))
            self._settling_since.setdefault(rec.id, time.monotonic())
        self.flow.wake.set()

    def read_settled(self) -> None:
        """Read again the files ``_settle`` watches that have settled."""
        now = time.monotonic()
        with self._lock:
            watched = list(self._settling.items())
        for file_id, w in watched:
            src = self.flow.sources.get(w.source)
            if src is None:
                continue
            self._note_busy(file_id, w, now)
            try:
                st = os.stat(w.work)
                seen: tuple[int, int] | None = (st.st_size, st.st_mtime_ns)
            except OSError:
                seen = None  # gone: read now, its read error is reported
            if seen is not None and seen != w.seen:
                w.seen, w.since = seen, now
                continue
            if seen is not None and now - w.since < max(src.cfg.stable_seconds, 1.0):
                continue
            with self._lock:
                self._settling.pop(file_id, None)
            try:
                self.process_file(src, w.work)
            except Exception:
                log.exception("file_failed_internal", file=w.work.name)

    def _note_busy(self, file_id: int, w: Settling, now: float) -> None:
        """A claimed file still written (or held open) ``busy_note_seconds`` after it was
        first watched is listed by ``status`` (CONN-ARCHIVO-ABIERTO), once."""
        since = self._settling_since.get(file_id, now)
        once = f"busy:{file_id}"
        if now - since < self.busy_note_seconds or once in self._noted:
            return
        self._noted.add(once)
        name = self.original_name(w.work)
        minutes = max(1, round((now - since) / 60))
        message = (
            f"{name} ya tomado por el conector sigue cambiando o abierto para escritura por otro "
            f"proceso desde hace {minutes} min; no se termina (ni se archiva) hasta que quede "
            "estable y cerrado. Si el ERP ya terminó de escribirlo, revise qué programa lo "
            "mantiene abierto; si lo escribe por partes con pausas largas, configure "
            "done_marker en la fuente."
        )
        if self.journal.note_failure(w.source, name, "CONN-ARCHIVO-ABIERTO", message,
                                     location=str(w.work), once=once):  # fmt: skip
            log.error("file_busy_too_long", code="CONN-ARCHIVO-ABIERTO", file=name,
                      source=w.source, minutes=minutes)  # fmt: skip

    def _changed(self, rec: FileRecord, reason: str) -> bool:
        """A file found changed after it was read: True when it is to be read again (its
        invoices already stamped are recognised, the new ones stamped); False after
        ``max_changes`` times, when it fails with CONN-ARCHIVO-CAMBIO."""
        n = self._changes[rec.id] = self._changes.get(rec.id, 0) + 1
        if n > self.max_changes:
            log.error("file_keeps_changing", code="CONN-ARCHIVO-CAMBIO", file=rec.name,
                      source=rec.source, times=n - 1, reason=reason)  # fmt: skip
            return False
        log.warning("file_changed_after_read", file=rec.name, source=rec.source, times=n,
                    reason=reason)  # fmt: skip
        self._settle(rec)
        return True


def _whole_file_error(file_id: int, idx: int, name: str, code: str, message: str) -> FileItem:
    return FileItem(
        file_id,
        idx,
        name,
        None,
        [{"code": code, "path": "", "location": name, "message": message}],
    )


def _own_folder(s: SourceConfig, path: Path) -> bool:
    """``path`` is one of the source's own folders (work, archive, failed/, outputs, the
    cancellation inbox) placed inside its inbox: not an ERP file, not reported."""
    o = s.output
    outs = [o.xml, o.pdf, o.acuse, o.errors] if o is not None else []
    own = [s.work, s.archive, s.failed, *outs, s.cancel_inbox]
    for folder in own:
        with contextlib.suppress(OSError):
            if folder is not None and path.samefile(folder):
                return True
    return False

