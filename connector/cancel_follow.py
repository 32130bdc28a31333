"""The daemon's side of the cancellation flow (``connector.cancellations``): on its tick,
the requests the ERP left (a folder's ``cancel/`` inbox, a table's ``cfdi_cancelacion`` rows)
go through :func:`~connector.cancellations.request`, and every request not final is followed
at SAT's consulta service until it is, each change written back where it came from."""

from __future__ import annotations

import io
import threading
import time
from concurrent.futures import Future
from decimal import Decimal
from typing import Any

import structlog

from connector.cancel_results import _cancel_rows, _write_row, write_back
from connector.cancellations import (
    CancelRefused,
    apply_sat,
    facts,
    next_poll_delay,
    noticed_outside,
    request,
)
from connector.cfdi.errors import Problem
from connector.config import Config
from connector.journal import CancelRequest, Journal

log = structlog.get_logger("connector.cancellations")


class CancellationFollower:
    """Called from the pipeline's loop (``tick``): every ``cancel_poll_seconds`` one pass runs
    on the pipeline's worker pool (never the scanner's thread), one pass at a time."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self._last = 0.0
        self._running: Future[None] | None = None
        self._client: Any = None
        self._lock = threading.Lock()

    def tick(self, pipe: Any) -> None:
        if time.monotonic() - self._last < self.cfg.daemon.cancel_poll_seconds:
            return
        self._last = time.monotonic()
        executor, journal = pipe._executor, pipe.journal
        if executor is None or journal is None or pipe.stopping.is_set():
            return
        with self._lock:
            if self._running is not None and not self._running.done():
                return
            try:
                self._running = executor.submit(self._pass, journal, pipe.stopping, pipe.pacs,
                                                getattr(pipe, "instance", ""))  # fmt: skip
            except RuntimeError:  # shutting down
                return

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _sat(self) -> Any:
        if self._client is None:
            from connector.pac.base import Timeouts
            from connector.pac.sat_status import SatStatusClient

            self._client = SatStatusClient(
                self.cfg.daemon.sat_status_url, timeouts=Timeouts(connect=5.0, read=30.0)
            )
        return self._client

    def _pass(
        self, j: Journal, stopping: threading.Event, pacs: dict[str, Any], instance: str = ""
    ) -> None:
        from connector.adapters.table.odbc import TableError

        try:
            self.inbox(j, pacs)
        except Exception:  # e.g. a share offline: the next tick tries again
            log.exception("cancel_inbox_failed")
        for s in self.cfg.sources:
            t = s.table
            if s.kind == "table" and t is not None and t.cancelaciones and s.pac in pacs:
                try:
                    self.table_requests(j, s, pacs[s.pac].driver, instance)
                except TableError as exc:  # the database away: the next tick tries again
                    log.warning("cancel_rows_later", source=s.name, code=exc.code)
                except Exception:
                    log.exception("cancel_rows_failed", source=s.name)
        self.follow_up(j, stopping)

    def table_requests(self, j: Journal, s: Any, driver: Any, instance: str) -> None:
        """A table source's pending cancellation rows (``connector.adapters.table.cancel_rows``),
        claimed one at a time (a lease never outlives the row's work), each through
        :func:`request` (origin ``tabla:<source>:<id>``, so every change is written into its
        row). A row whose request the journal already holds only gets where it stands (never
        sent again); one the PAC or SAT cannot take now goes back to PENDIENTE and the pass
        ends, as for the folder inbox."""
        from connector.pac.errors import PacAccount, PacInvalid, PacNotFound, PacUnsupported

        rows = _cancel_rows(s)
        try:
            while True:
                claimed = rows.claim(instance, s.table.lease_seconds, limit=1)
                if not claimed:
                    return
                row = claimed[0]
                origin = f"tabla:{s.name}:{row.id}"
                if not row.uuid:
                    rows.write(row.id, "ERROR", error_codigo="CONN-CANCEL-UUID", error_mensaje=(
                        "La solicitud no trae uuid, o su factura_id no es de una factura que el "
                        f"conector haya timbrado en {s.table.resultados or s.table.factura}."),
                        instance=instance)  # fmt: skip
                    continue
                prior = j.cancel_request(row.uuid.upper())
                if prior is not None and prior.origin == origin:  # this row's, already asked
                    _write_row(self.cfg, j, prior)
                    continue
                try:
                    request(self.cfg, j, driver, self._sat(), row.uuid, row.motivo,
                            row.folio_sustitucion, origin=origin, out=io.StringIO())  # fmt: skip
                except CancelRefused as exc:
                    codes = list(dict.fromkeys(p.code for p in exc.problems))
                    prior = j.cancel_request(row.uuid.upper())
                    if "CONN-CANCEL-DUDOSA" in codes:
                        rows.release(row.id, instance)
                        return  # SAT cannot be asked now: the next pass
                    if set(codes) <= {"CONN-CANCEL-YA", "CONN-CANCEL-PENDIENTE"} and prior:
                        _write_row(self.cfg, j, prior, row=(s, row.id))
                    else:
                        rows.write(row.id, "ERROR", error_codigo=", ".join(codes),
                                   error_mensaje=" | ".join(f"{p.code}: {p.message}"
                                                            for p in exc.problems),
                                   instance=instance)  # fmt: skip
                except (PacInvalid, PacNotFound) as exc:
                    if isinstance(exc, PacAccount):  # the account, not the request: it waits
                        log.warning("cancel_row_later", row=row.id, code=exc.code)
                        rows.release(row.id, instance)
                        return
                    # recorded (invalida / no_cancelable) and written into the row
                except PacUnsupported as exc:  # this configuration cannot cancel: a person must
                    rows.write(row.id, "ERROR", error_codigo=exc.code, error_mensaje=exc.message,
                               instance=instance)  # fmt: skip
                except Exception as exc:  # the PAC out of reach, its answer lost...
                    log.info("cancel_row_later", row=row.id, error=str(exc))
                    if j.cancel_request(row.uuid.upper()) is None:
                        rows.release(row.id, instance)  # surely not sent: asked again later
                    return  # maybe sent: followed at SAT; either way the PAC waits
        finally:
            rows.close()

    def inbox(self, j: Journal, pacs: dict[str, Any]) -> None:
        """Every source's ``cancel_inbox`` (``connector.cancel_inbox``): each file's requests
        through :func:`request` with the source's PAC. Already asked (``CONN-CANCEL-YA``,
        ``-PENDIENTE``) is not an error; a PAC or SAT out of reach, or a PAC refusing the
        account (``PacAccount``: wrong password, no credits), leaves the file claimed for the
        next tick."""
        from connector import cancel_inbox
        from connector.pac.errors import PacAccount, PacInvalid, PacNotFound

        for src in self.cfg.sources:
            if src.cancel_inbox is None or src.pac not in pacs or src.work is None:
                continue
            for path in cancel_inbox.claim_all(src, time.time()):
                requests, problems = cancel_inbox.parse_requests(path.name, path.read_bytes())
                later = False
                for where, uuid, motivo, folio in requests:
                    try:
                        request(self.cfg, j, pacs[src.pac].driver, self._sat(), uuid, motivo,
                                folio, origin="folder", out=io.StringIO())  # fmt: skip
                    except CancelRefused as exc:
                        codes = {p.code for p in exc.problems}
                        if "CONN-CANCEL-DUDOSA" in codes:
                            later = True
                            break
                        if codes <= {"CONN-CANCEL-YA", "CONN-CANCEL-PENDIENTE"}:
                            continue
                        problems += [Problem(p.code, where, p.message, location=where)
                                     for p in exc.problems]  # fmt: skip
                    except PacAccount as exc:  # the account, not the request: waits (17.10)
                        log.warning("cancel_file_later", file=path.name, line=where,
                                    code=exc.code, error=exc.message)  # fmt: skip
                        later = True
                        break
                    except (PacInvalid, PacNotFound) as exc:  # recorded: invalida/no_cancelable
                        problems.append(Problem(exc.code, where, exc.message, location=where))
                    except Exception as exc:  # PAC out of reach or its answer lost
                        log.info("cancel_file_later", file=path.name, line=where, error=str(exc))
                        later = True
                        break
                if not later:
                    cancel_inbox.finish(j, src, path, problems)

    def follow_up(self, j: Journal, stopping: threading.Event | None = None) -> None:
        """One pass: the requests whose poll is due, files left unwritten, then the sweep."""
        try:
            now = time.time()
            for req in j.cancel_requests_due(now):
                if stopping is not None and stopping.is_set():
                    return
                self._poll(j, req)
            for req in j.cancel_requests_unwritten():
                write_back(self.cfg, j, req)
            self._sweep(j, stopping)
        except Exception:  # e.g. the journal is closing: the next tick tries again
            log.exception("cancellation_follow_up_failed")

    def _poll(self, j: Journal, req: CancelRequest) -> None:
        from connector.pac.errors import PacError

        now = time.time()
        if not (req.rfc_emisor and req.rfc_receptor and req.total):
            e = j.find_uuid(req.uuid)
            if e is None or e.stamped_xml is None:  # nothing to ask SAT with: stop following
                j.update_cancel_request(req.uuid, next_poll_at=now + 10 * 365 * 86400.0)
                return
            f = facts(e.stamped_xml)
            req = j.update_cancel_request(req.uuid, rfc_emisor=f.rfc_emisor,
                                          rfc_receptor=f.rfc_receptor, total=f.total)  # fmt: skip
        try:
            st = self._sat().consulta(req.uuid, req.rfc_emisor, req.rfc_receptor,
                                      Decimal(req.total or "0"))  # fmt: skip
        except PacError as exc:
            log.info("sat_status_unavailable", uuid=req.uuid, code=exc.code, error=exc.message)
            j.update_cancel_request(req.uuid, next_poll_at=now + next_poll_delay(
                self.cfg, req, now), polls=req.polls + 1)  # fmt: skip
            return
        if not st.found:  # SAT may show a fresh CFDI late: asked again later
            j.update_cancel_request(req.uuid, estado=st.estado, polls=req.polls + 1,
                                    next_poll_at=now + next_poll_delay(self.cfg, req, now))  # fmt: skip
            return
        apply_sat(self.cfg, j, req, st, now)

    def _sweep(self, j: Journal, stopping: threading.Event | None) -> None:
        d = self.cfg.daemon
        if not d.sat_sweep_days:
            return
        from connector.pac.errors import PacError

        now = time.time()
        since = now - d.sat_sweep_days * 86400.0
        before = now - d.sat_sweep_hours * 3600.0
        for e in j.sweep_due(since, before, limit=10):
            if (stopping is not None and stopping.is_set()) or e.stamped_xml is None:
                return
            if not j.claim_sat_check(str(e.uuid), before):
                continue  # another connector sharing the journal asks SAT about this one
            f = facts(e.stamped_xml)
            try:
                st = self._sat().consulta(str(e.uuid), f.rfc_emisor, f.rfc_receptor,
                                          Decimal(f.total))  # fmt: skip
            except PacError:
                return  # SAT unreachable: the next tick
            j.sat_checked(str(e.uuid), st.estado if st.found else None)
            if st.found and (st.estado or "").strip().lower() == "cancelado":
                noticed_outside(self.cfg, j, e, f, st)
