"""The end of a claimed file: when every invoice it carries is final it is decided (archive by
date when all are good, ``failed/`` beside its error files when any is bad), the decision is
journaled, then the move is made — and made again after a crash or a share that was offline.
Also the folder way of writing a stamped invoice's outputs (XML, PDF, acuse files)."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from connector.config import EmisorConfig, SourceConfig
from connector.flow.runtime import SourceRuntime, entry_errors, item_errors
from connector.flow.sending import DeliveryError
from connector.journal import (
    FINAL_STATES,
    Entry,
    FileItem,
    FileRecord,
    FileState,
    Journal,
    JournalError,
    State,
    journal_retry,
)
from connector.outputs import output_paths
from connector.rendering import PdfRenderer, render_pdf_bytes
from connector.sinks import (
    ItemError,
    archive_folder,
    atomic_write,
    atomic_write_all,
    fit_name,
    free_name,
    move_file,
    write_error_files,
)

from .reading import Changed, Fingerprint, Settling, changed_since, keeps_changing

if TYPE_CHECKING:
    from connector.flow.sending import InvoiceFlow

log = structlog.get_logger("connector.pipeline")


@dataclass
class FileOutcome:
    """The final place of one input file and what happened to its invoices."""

    file_id: int
    name: str
    state: FileState
    final_path: str | None
    delivered: list[dict[str, str]] = field(default_factory=list)
    errors: list[ItemError] = field(default_factory=list)


class FileFinishing:
    """The file kind's second half (see ``FileUnits``)."""

    flow: InvoiceFlow
    _lock: threading.RLock
    _open: dict[int, tuple[str, Path]]
    _files_of: dict[int, set[int]]
    _carried: dict[int, set[int]]
    _reread: set[int]
    _settling: dict[int, Settling]
    _settling_since: dict[int, float]
    _parsed: dict[int, Fingerprint]
    _changes: dict[int, int]
    finished: list[FileOutcome]
    max_changes: int

    @property
    def journal(self) -> Journal:
        assert self.flow.journal is not None
        return self.flow.journal

    def _changed(self, rec: FileRecord, reason: str) -> bool:  # pragma: no cover - FileUnits
        raise NotImplementedError

    def original_name(self, work: Path) -> str:  # pragma: no cover - FileUnits
        raise NotImplementedError

    # --- the folder way of delivering -------------------------------------------------------

    def wants_acuse(self, src: SourceRuntime) -> bool:
        return src.cfg.output is not None and src.cfg.output.acuse is not None

    def deliver(self, src: SourceRuntime, e: Entry, *, cancelled: bool) -> dict[str, str]:
        return deliver_files(src, e, cancelled=cancelled, renderer=self.flow.pdf)

    def write_acuse(self, src: SourceRuntime, e: Entry, acuse: bytes) -> dict[str, str]:
        return write_acuse_file(src, e, acuse)

    # --- finishing --------------------------------------------------------------------------

    def after_invoice(self, invoice_id: int) -> None:
        """An invoice reached a final state: finish the open files that carry it. A file
        with another of its invoices still in flight here is left to that one, which comes
        here after it (each comes once it has left the flight): no journal reads for a file
        that cannot be finished yet."""
        with self._lock:
            files = [(f, self._carried.get(f, set()) - {invoice_id})
                     for f in self._files_of.get(invoice_id, ())]  # fmt: skip
        for file_id, others in files:
            if self.flow.any_in_flight(others):
                continue
            try:
                self.maybe_finish(file_id)
            except Exception as exc:  # e.g. its archive not writable: the others still go
                if journal_retry(exc):
                    raise
                log.exception("finish_failed", file_id=file_id, invoice_id=invoice_id)

    def maybe_finish(self, file_id: int) -> FileOutcome | None:
        with self._lock:
            rec = self.journal.get_file(file_id)
            if rec.state is not FileState.CLAIMED or file_id in self._settling:
                return None
            if self.journal.file_pending(file_id):
                return None
            errors, delivered, final = self._report_of(file_id)
            if not final:
                return None
            # never archived (nor failed) as done if it is not what was read: read it again
            fp = self._parsed.get(file_id)
            changed = changed_since(fp) if fp is not None else None
            if changed is not None:
                if self._changed(rec, changed):
                    return None
                gave_up = keeps_changing(rec.name, changed, self.max_changes)
                errors.append(gave_up)
                self.journal.note_failure(rec.source, rec.name, gave_up.code, gave_up.message,
                                          location=rec.name, once=f"changed:{rec.id}")  # fmt: skip
                fp = None  # moved as it is: the error file says why
            src = self.flow.sources[rec.source]
            failed, archive = src.cfg.failed, src.cfg.archive
            assert failed is not None and archive is not None  # a folder source's
            report = {
                "errors": [x.to_dict() for x in errors],
                "delivered": delivered,
                "fingerprint": fp,
            }
            if errors:
                dest = free_name(failed, rec.name)
                state = FileState.FAILING
            else:
                dest = free_name(archive_folder(archive, self.flow.now().date()), rec.name)
                state = FileState.ARCHIVING
            self.journal.file_deciding(file_id, state, str(dest), len(errors), report)
            return self._finish_file(
                self.journal.get_file(file_id), errors, delivered, writers_checked=True
            )

    def retry_move(self, rec: FileRecord) -> None:
        """Complete a decided move again; on success the file is finished like any other."""
        try:
            with self._lock:
                rec = self.journal.get_file(rec.id)  # a worker may have finished it meanwhile
                if rec.state not in (FileState.ARCHIVING, FileState.FAILING):
                    return
                self._finish_file(rec, *self._decided_report(rec))
        except Exception as exc:  # still not possible: the next tick tries again
            log.error("move_failed", file=rec.name, place=rec.final_path, error=str(exc))
            with self._lock:  # not finished: idle() says so
                self._open.setdefault(rec.id, (rec.source, Path(rec.work_path)))

    def _finish_file(
        self,
        rec: FileRecord,
        errors: list[ItemError],
        delivered: list[dict[str, str]],
        *,
        writers_checked: bool = False,
    ) -> FileOutcome | None:
        """Move a decided file (ARCHIVING/FAILING) to its place and record its outcome; None
        when it changed since it was read (it is read again). ``writers_checked``: the
        decision just looked for open writers (one /proc pass per file, not two)."""
        try:
            self._complete_move(
                rec, errors=errors, delivered=delivered, writers=not writers_checked
            )
        except Changed as exc:  # changed since it was decided: undecided, and read again
            self.journal.file_reopened(rec.id)
            with self._lock:
                self._open.setdefault(rec.id, (rec.source, Path(rec.work_path)))
                self._parsed[rec.id] = exc.fingerprint
            return self.maybe_finish(rec.id)
        outcome = FileOutcome(
            rec.id,
            rec.name,
            self.journal.get_file(rec.id).state,
            str(rec.final_path),
            delivered,
            errors,
        )
        self.finished.append(outcome)
        self._forget_file(rec.id, self.journal.file_items(rec.id))
        log.info(
            "file_finished",
            file=rec.name,
            place=rec.final_path,
            delivered=len(delivered),
            errors=len(errors),
        )
        return outcome

    def _forget_file(self, file_id: int, items: list[FileItem]) -> None:
        """A finished file is no longer open nor waiting for its invoices."""
        with self._lock:
            self._open.pop(file_id, None)
            self._reread.discard(file_id)
            self._settling.pop(file_id, None)
            self._settling_since.pop(file_id, None)
            self._parsed.pop(file_id, None)
            self._changes.pop(file_id, None)
            self._carried.pop(file_id, None)
            for it in items:
                if it.invoice_id is not None:
                    owners = self._files_of.get(it.invoice_id)
                    if owners is not None:
                        owners.discard(file_id)
                        if not owners:
                            del self._files_of[it.invoice_id]

    def _complete_move(
        self,
        rec: FileRecord,
        *,
        errors: list[ItemError] | None = None,
        delivered: list[dict[str, str]] | None = None,
        writers: bool = True,
    ) -> None:
        """Write error files (failed) and move the original to the recorded final place; the
        bytes are compared with what was read right before the move (``writers``: and open
        writers looked for, see ``changed_since``)."""
        assert rec.final_path
        dest = Path(rec.final_path)
        work = Path(rec.work_path)
        src = self.flow.sources.get(rec.source)
        report = self.journal.file_report(rec.id) or {}
        if report.get("fingerprint") and work.exists():  # what was read, right before the move
            fp: Fingerprint = tuple(tuple(f) for f in report["fingerprint"])  # type: ignore[misc]
            changed = changed_since(fp, writers=writers)
            if changed is not None:
                raise Changed(changed, fp)
        if rec.state is FileState.FAILING:
            if errors is None:  # resumed after a crash
                errors, delivered = self._decided_report(rec)
            labels = [d["invoice"] for d in delivered or []]
            when = datetime.now()
            write_error_files(dest.parent, dest.name, errors, labels, when)
            copy = src.cfg.output.errors if src is not None and src.cfg.output else None
            if copy and copy != dest.parent:
                write_error_files(copy, dest.name, errors, labels, when)
        if work.exists():
            if dest.exists() and os.path.samefile(work, dest):
                os.unlink(work)  # a crash between link and unlink: the move is complete
            else:
                if dest.exists():  # taken by someone else meanwhile: never overwrite
                    dest = free_name(dest.parent, dest.name)
                move_file(work, dest)
        marker = src.cfg.done_marker if src is not None else None
        if marker and work.with_name(work.name + marker).exists():
            mdest = dest.with_name(fit_name(dest.name + marker))  # a name renamed longer
            if not mdest.exists():
                move_file(work.with_name(work.name + marker), mdest)
        members = getattr(src.folder, "members_in_work", None) if src is not None else None
        for other in members(work) if members is not None else []:
            # the other files of a set go to the same place
            from connector.adapters.folder import beside

            odest = beside(dest, rec.name, self.original_name(other))
            if odest.exists() and os.path.samefile(other, odest):
                os.unlink(other)
            else:
                move_file(
                    other, odest if not odest.exists() else free_name(odest.parent, odest.name)
                )
            if marker and other.with_name(other.name + marker).exists():
                mdest = odest.with_name(fit_name(odest.name + marker))
                if not mdest.exists():
                    move_file(other.with_name(other.name + marker), mdest)
        self.journal.file_done(rec.id)

    def _decided_report(self, rec: FileRecord) -> tuple[list[ItemError], list[dict[str, str]]]:
        """The report a decided file was decided on (its invoices may have changed since:
        one re-exported and stamped must not show as delivered in the old file's error
        file); rebuilt from the journal for a file decided by an older version."""
        stored = self.journal.file_report(rec.id)
        if stored is None:
            errors, delivered, _ = self._report_of(rec.id)
            return errors, delivered
        known = {f.name for f in fields(ItemError)}
        errors = [ItemError(**{k: str(x.get(k) or "") for k in known}) for x in stored["errors"]]
        return errors, stored["delivered"]

    def _report_of(self, file_id: int) -> tuple[list[ItemError], list[dict[str, str]], bool]:
        """A file's errors and delivered invoices (with their outputs), and whether every one
        of its invoices has reached a final state."""
        errors: list[ItemError] = []
        delivered: list[dict[str, str]] = []
        final = True
        for it, e in self.journal.file_entries(file_id):
            if it.invoice_id is None:
                errors.extend(item_errors(it.problems, it.location, ""))
                continue
            if e is None:
                raise JournalError(f"no invoice with id {it.invoice_id}")
            if e.state not in FINAL_STATES:
                final = False
            elif e.state is State.DELIVERED:
                delivered.append({"invoice": e.label, "uuid": e.uuid or "", **e.outputs})
            else:
                errors.extend(entry_errors(e, it.location))
        return errors, delivered, final


def deliver_files(
    src: SourceRuntime, e: Entry, *, cancelled: bool, renderer: PdfRenderer | None
) -> dict[str, str]:
    """A stamped invoice's files in the source's output folders (``deliver_outputs``); a
    folder that cannot be written is a ``DeliveryError`` (the flow delivers again later)."""
    assert src.cfg.output is not None  # asked only of a source with output folders
    try:
        return deliver_outputs(src.cfg, src.emisor, e, cancelled=cancelled, renderer=renderer)
    except OSError as exc:
        where = Path(exc.filename).parent if exc.filename else src.cfg.output.xml
        raise DeliveryError(
            "CONN-ENTREGA",
            f"{e.label} está timbrada (UUID {e.uuid}) pero no se pudieron escribir sus "
            f"archivos en {where}: {exc.strerror or exc}. Se reintenta sola.",
        ) from exc


def write_acuse_file(src: SourceRuntime, e: Entry, acuse: bytes) -> dict[str, str]:
    """An acuse fetched after delivery, beside the XML (when the source writes acuses)."""
    path = output_paths(src.cfg, e).get("acuse") if src.cfg.output is not None else None
    return {"acuse": str(atomic_write(path, acuse))} if path is not None else {}


def deliver_outputs(
    src: SourceConfig,
    emisor: EmisorConfig,
    e: Entry,
    *,
    cancelled: bool = False,
    renderer: PdfRenderer | None = None,
) -> dict[str, str]:
    """Write the stamped XML, the PDF (when available) and the acuse; whole or not at all.
    ``cancelled``: the journal knows the UUID was cancelled (the PDF carries the mark).
    ``renderer``: where PDFs are rendered (the daemon's worker processes); default this thread."""
    assert e.stamped_xml is not None and e.uuid
    paths = output_paths(src, e)
    files = {"xml": (paths["xml"], e.stamped_xml)}
    if "pdf" in paths:
        render = renderer.render if renderer is not None else render_pdf_bytes
        pdf: Any = render(e.stamped_xml, emisor, cancelled=cancelled)
        if pdf is not None:
            files["pdf"] = (paths["pdf"], pdf)
    if "acuse" in paths and e.acuse:
        files["acuse"] = (paths["acuse"], e.acuse)
    written = atomic_write_all(list(files.values()))
    return {kind: str(path) for kind, path in zip(files, written, strict=True)}
