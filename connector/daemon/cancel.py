"""``record_cancellation``: after the PAC accepted a cancellation of a UUID given on the command
line (``connector.pac_cli``), the journal first, then the CANCELADO PDF and the acuse."""

from __future__ import annotations

import sys
from typing import Any, TextIO

from connector.config import Config

from .common import _open_journal


def record_cancellation(
    cfg: Config,
    uuid: str,
    motivo: str,
    folio_sustitucion: str | None,
    *,
    code: str | None,
    acuse: bytes | None,
    outcome: Any,
    out: TextIO | None = None,
) -> int:
    """After the PAC accepted a cancellation request: the journal first (the request and
    where it stands, ``outcome``: ``connector.pac.cancellation.CancelOutcome``; a cancellation
    only when it took effect), then, only when SAT says Cancelado, the PDF with the CANCELADO
    mark in place of the delivered one and the acuse de cancelación. Safe to repeat (a second
    run updates the request and rewrites the same files). Exit code: 0 recorded, 1 a file
    could not be written (the cancellation is recorded: run it again)."""
    from connector.journal import CancelState, State
    from connector.outputs import deliver_cancellation

    out = out or sys.stdout
    j = _open_journal(cfg)
    if j is None:
        return 1
    cancelled = outcome.state is CancelState.CANCELLED
    try:
        j.record_cancel_request(
            uuid,
            motivo,
            folio_sustitucion,
            state=outcome.state,
            code=code,
            es_cancelable=outcome.es_cancelable,
            estatus_cancelacion=outcome.estatus_cancelacion,
            acuse=acuse,
        )
        if cancelled:
            estatus = outcome.estatus_cancelacion or outcome.es_cancelable
            j.mark_cancelled(uuid, motivo, folio_sustitucion, code=code, estatus=estatus,
                             acuse=acuse)  # fmt: skip
        e = j.find_uuid(uuid)
    finally:
        j.close()
    what = "Cancelación" if cancelled else "Solicitud de cancelación"
    if e is None:
        print(f"{what} registrada en el diario; el UUID {uuid} no lo timbró este conector: no "
              "hay PDF que marcar.", file=out)  # fmt: skip
        return 0
    print(f"{what} de {e.label} registrada en el diario {cfg.daemon.journal} "
          f"({outcome.state}).", file=out)  # fmt: skip
    if not outcome.sat_cancelled:
        print(f"El PDF de {e.label} no lleva la marca CANCELADO: el SAT no lo muestra "
              "Cancelado.", file=out)  # fmt: skip
        return 0
    if e.state not in (State.STAMPED, State.DELIVERED) or e.stamped_xml is None:
        return 0
    try:
        src, emisor = cfg.source(e.source), cfg.emisor(e.emisor_rfc)
    except KeyError:
        print(f"CONN-CFG El origen {e.source!r} de {e.label} ya no está en la configuración: "
              "el PDF no se volvió a generar.", file=out)  # fmt: skip
        return 1
    try:
        written = deliver_cancellation(src, emisor, e, acuse)
    except OSError as exc:
        print(f"CONN-FILE No se pudo escribir la salida de {e.label} ({exc}); la cancelación "
              "sí quedó registrada: repita el comando.", file=out)  # fmt: skip
        return 1
    if "pdf" in written:
        print(f"PDF con la marca CANCELADO: {written['pdf']}", file=out)
    if "acuse_cancelacion" in written:
        print(f"Acuse de cancelación: {written['acuse_cancelacion']}", file=out)
    return 0
