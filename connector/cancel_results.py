"""Where a cancellation request's outcome is written back, every time it changes: beside the
invoice's outputs (``<stem>_cancelacion.json``, and when cancelled the PDF with the CANCELADO
mark and the acuse de cancelación) and, for a request from a table, into its
``cfdi_cancelacion`` row. Safe to repeat; a result that could not be written is kept
(``CONN-FILE``) and written on a later tick."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, TextIO

import structlog

from connector.config import Config
from connector.journal import CancelRequest, CancelState, Entry, Journal, State

log = structlog.get_logger("connector.cancellations")

_FINAL_ES = {
    CancelState.REQUESTED: "solicitada (envío sin respuesta: se consulta al SAT antes de reenviar)",
    CancelState.SENT: "enviada (el SAT aún no la muestra)",
    CancelState.IN_PROCESS: "en proceso (espera la respuesta del receptor)",
    CancelState.CANCELLED: "cancelada",
    CancelState.REJECTED: "rechazada por el receptor (sigue vigente)",
    CancelState.NOT_CANCELLABLE: "no cancelable",
    CancelState.INVALID: "rechazada por el PAC",
}


def state_es(state: CancelState | str) -> str:
    """A request state in Spanish, for ``status`` and ``find``."""
    return _FINAL_ES.get(CancelState(state), str(state))


def _when(at: float | None) -> str:
    return datetime.fromtimestamp(at).isoformat(sep=" ", timespec="seconds") if at else "-"


def write_back(cfg: Config, j: Journal, req: CancelRequest, out: TextIO | None = None) -> bool:
    """Beside the invoice's outputs: ``<stem>_cancelacion.json`` (the result, every change)
    and, when cancelled, the journal's cancellation first, then the PDF with the CANCELADO
    mark and the acuse. False: a file could not be written (``CONN-FILE`` kept on the
    request; the daemon writes it again on its next tick)."""
    from connector.outputs import deliver_cancellation, output_paths
    from connector.sinks import atomic_write

    cancelled = req.state is CancelState.CANCELLED
    if cancelled:
        j.mark_cancelled(req.uuid, req.motivo, req.folio_sustitucion, code=req.code,
                         estatus=req.estatus_cancelacion or req.es_cancelable,
                         acuse=req.acuse)  # fmt: skip
    row_written = _write_row(cfg, j, req)  # asked from a table: its row, every change

    def only_row() -> bool:  # nothing to write beside the invoice: done when the row is
        if row_written and req.error_code == "CONN-FILE":
            j.update_cancel_request(req.uuid, error_code=None, error_message=None)
        return row_written

    e = j.find_uuid(req.uuid)
    if e is None or e.stamped_xml is None or e.state not in (State.STAMPED, State.DELIVERED):
        return only_row()
    try:
        src, emisor = cfg.source(e.source), cfg.emisor(e.emisor_rfc)
    except KeyError:
        return only_row()  # the source left the configuration: nothing to write beside
    if src.output is None:
        return only_row()  # a table source that writes no files: nothing to write beside
    try:
        xml_path = output_paths(src, e)["xml"]
        result = xml_path.with_name(f"{xml_path.stem}_cancelacion.json")
        atomic_write(result, json.dumps(result_doc(e, req), ensure_ascii=False,
                                        indent=2).encode("utf-8"))  # fmt: skip
        written = deliver_cancellation(src, emisor, e, req.acuse) if cancelled else {}
    except OSError as exc:
        msg = (f"No se pudo escribir el resultado de la cancelación de {e.label} ({exc}); se "
               "reintenta en el siguiente ciclo del daemon.")  # fmt: skip
        j.update_cancel_request(req.uuid, error_code="CONN-FILE", error_message=msg)
        if out is not None:
            print(f"CONN-FILE {msg}", file=out)
        return False
    if req.error_code == "CONN-FILE" and row_written:
        j.update_cancel_request(req.uuid, error_code=None, error_message=None)
    if out is not None:
        if "pdf" in written:
            print(f"PDF con la marca CANCELADO: {written['pdf']}", file=out)
        if "acuse_cancelacion" in written:
            print(f"Acuse de cancelación: {written['acuse_cancelacion']}", file=out)
        print(f"Resultado: {result}", file=out)
    return True


def _cancel_rows(s: Any) -> Any:
    """The cancellation table of a table source (``[sources.table] cancelaciones``)."""
    from connector.adapters.table.cancel_rows import CancelRows
    from connector.config import table_spec

    t = s.table
    return CancelRows(table_spec(s), table=t.cancelaciones, invoices=t.resultados or t.factura)


def _write_row(
    cfg: Config, j: Journal, req: CancelRequest, *, row: tuple[Any, int] | None = None
) -> bool:
    """A request that came from a table row (origin ``tabla:<source>:<id>``; or ``row``: a
    source and row asking for the same cancellation again): where it stands, into its row.
    False: the database failed (``CONN-FILE`` kept when the request carries no reason of the
    PAC's; the row, still claimed, is taken again after its lease and written then)."""
    from connector.adapters.table.cancel_rows import ROW_STATE
    from connector.adapters.table.odbc import TableError

    if row is not None:
        s, row_id = row
    else:
        kind, _, rest = (req.origin or "").partition(":")
        source, _, found = rest.rpartition(":")
        if kind != "tabla" or not found.isdigit():
            return True
        try:
            s = cfg.source(source)
        except KeyError:
            return True  # the source left the configuration
        row_id = int(found)
    if s.table is None or not s.table.cancelaciones:
        return True
    refused = req.state in (CancelState.INVALID, CancelState.NOT_CANCELLABLE)
    code = req.error_code if refused and req.error_code != "CONN-FILE" else None
    try:
        rows = _cancel_rows(s)
        try:
            rows.write(row_id, ROW_STATE.get(str(req.state), "ERROR"),
                       estatus_sat=req.estatus_cancelacion or req.estado,
                       es_cancelable=req.es_cancelable, error_codigo=code,
                       error_mensaje=req.error_message if code else None,
                       acuse=req.acuse)  # fmt: skip
        finally:
            rows.close()
    except TableError as exc:
        log.warning("cancel_row_not_written", uuid=req.uuid, row=row_id, code=exc.code)
        if row is None and not (req.error_code and req.error_code != "CONN-FILE"):
            j.update_cancel_request(req.uuid, error_code="CONN-FILE", error_message=(
                f"No se pudo escribir en {s.table.cancelaciones} (id {row_id}) dónde va la "
                f"cancelación de {req.uuid}: {exc.message} Se reintenta sola."))  # fmt: skip
        return False
    return True


def result_doc(e: Entry, req: CancelRequest) -> dict[str, Any]:
    """The result file's content (``docs/cancellations.md``)."""
    return {
        "uuid": req.uuid,
        "serie": e.serie,
        "folio": e.folio,
        "estado": str(req.state),
        "descripcion": state_es(req.state),
        "motivo": req.motivo or None,
        "folio_sustitucion": req.folio_sustitucion,
        "sat_estado": req.estado,
        "sat_es_cancelable": req.es_cancelable,
        "sat_estatus_cancelacion": req.estatus_cancelacion,
        "codigo_pac": req.code,
        "error_codigo": req.error_code if req.error_code != "CONN-FILE" else None,
        "error_mensaje": req.error_message if req.error_code != "CONN-FILE" else None,
        "solicitudes": req.requests,
        "solicitada": _when(req.requested_at),
        "actualizada": _when(req.updated_at),
        "origen": req.origin,
    }
