"""Cancellations as a tracked flow (issue 13): the request, its local checks, and the follow-up
at SAT until a final state.

A request (``cancel --config FILE UUID --motivo 02``) is checked against the journal before
the PAC is called (:func:`check_request`, ``CONN-CANCEL-*``), recorded in ``cancel_requests``
as ``solicitada`` (journal first), sent, and then followed:

    solicitada → enviada → en_proceso → cancelada | rechazada | no_cancelable
                 (invalida: the PAC refused the request itself; never sent again as is)

``cancelada`` covers SAT's three endings: "Cancelado sin aceptación", "Cancelado con
aceptación" and "Plazo vencido" (``estatus_cancelacion`` says which). A send whose answer was
lost stays ``solicitada``; SAT is asked before it is sent again (by the daemon on its tick,
and by ``cancel`` before it sends). The daemon (:class:`connector.cancel_follow.CancellationFollower`, called from the
pipeline's loop) asks SAT's consulta service about every request not final, about every
``cancel_poll_seconds`` at first and then about a tenth of the request's age (capped at
``cancel_poll_max_seconds``): a re-request after a rejection can stay ``En proceso``
indefinitely and is polled, slower, for as long as it is. Each change is recorded (SAT's last
Estado/EsCancelable/EstatusCancelacion, the next poll, the polls made) and written back beside
the invoice's outputs: ``<stem>_cancelacion.json`` (the result) next to the XML and, once SAT
says Cancelado, the PDF with the CANCELADO mark and the acuse (``<stem>_cancelacion.xml``).

A CFDI cancelled outside the connector (SAT's portal) is noticed when it is polled: a request
of ours (SAT says Cancelado whatever we asked), or the slow sweep (``[daemon] sat_sweep_days``,
off by default) that asks SAT about the invoices delivered in the last N days, each at most
every ``sat_sweep_hours``. One found cancelled becomes a ``cancelada`` request of origin
``sat`` (motivo unknown: empty) and gets its mark.

Fiscal year (CFF art. 29-A, 4th paragraph): a CFDI may be cancelled at the latest in the month
in which the annual declaration of the fiscal year of its ``Fecha`` is due: 31 March of the
next year for a persona moral (RFC of 12 characters), 30 April for a persona física (13).
:func:`check_request` refuses a later request (``CONN-CANCEL-EJERCICIO``) before sending.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TextIO

import structlog
from lxml import etree

from connector.cancel_results import _when, state_es, write_back
from connector.cfdi.errors import Problem
from connector.config import Config
from connector.journal import (
    CANCEL_OPEN,
    CancelRequest,
    CancelState,
    Entry,
    Journal,
    State,
)

log = structlog.get_logger("connector.cancellations")

MOTIVOS = ("01", "02", "03", "04")
_NS = {
    "cfdi": "http://www.sat.gob.mx/cfd/4",
    "tfd": "http://www.sat.gob.mx/TimbreFiscalDigital",
}
class CancelRefused(Exception):
    """The request fails a local check: nothing was recorded nor sent."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


@dataclass(frozen=True)
class Facts:
    """What SAT's query and the checks need, read from the stamped XML."""

    rfc_emisor: str
    rfc_receptor: str
    total: str
    fecha: datetime


def facts(xml: bytes) -> Facts:
    root = etree.fromstring(xml)
    emisor = root.find("cfdi:Emisor", _NS)
    receptor = root.find("cfdi:Receptor", _NS)
    return Facts(
        rfc_emisor=(emisor.get("Rfc") if emisor is not None else "") or "",
        rfc_receptor=(receptor.get("Rfc") if receptor is not None else "") or "",
        total=root.get("Total") or "0",
        fecha=datetime.fromisoformat(root.get("Fecha") or "1970-01-01T00:00:00"),
    )


def cancel_deadline(fecha: date, rfc_emisor: str) -> date:
    """The last day a CFDI of ``fecha`` may be cancelled (module docstring, CFF 29-A)."""
    if len(rfc_emisor.strip()) == 12:  # persona moral: annual declaration by 31 March
        return date(fecha.year + 1, 3, 31)
    return date(fecha.year + 1, 4, 30)  # persona física: by 30 April


def check_request(
    j: Journal, uuid: str, motivo: str, folio_sustitucion: str | None, today: date
) -> tuple[Entry, Facts]:
    """Every local check of a request (``CancelRefused`` with all that fail): the UUID is
    ours and stamped, motivo 01–04, folio_sustitucion only with motivo 01 and then a UUID
    this emisor stamped, not cancelled nor pending, within the fiscal year's deadline."""
    where = f"UUID {uuid}"
    problems: list[Problem] = []
    e = j.find_uuid(uuid)
    if e is None or e.stamped_xml is None or e.state not in (State.STAMPED, State.DELIVERED):
        why = "no lo timbró este conector" if e is None else f"está en estado {e.state}"
        raise CancelRefused(
            [
                Problem(
                    "CONN-CANCEL-UUID",
                    where,
                    f"El UUID {uuid} {why}: no se puede pedir su "
                    "cancelación desde el diario (para otro UUID indique --rfc-receptor y "
                    "--total).",
                )
            ]  # fmt: skip
        )
    f = facts(e.stamped_xml)
    if motivo not in MOTIVOS:
        problems.append(Problem("CONN-CANCEL-MOTIVO", where, f"El motivo {motivo!r} no es "
                                "válido: debe ser 01, 02, 03 o 04."))  # fmt: skip
    folio = (folio_sustitucion or "").strip()
    if motivo == "01":
        other = j.find_uuid(folio) if folio else None
        if not folio:
            problems.append(Problem("CONN-CANCEL-SUSTITUCION", where, "El motivo 01 "
                                    "(comprobante emitido con errores con relación) requiere "
                                    "--folio-sustitucion con el UUID del CFDI que lo "
                                    "sustituye."))  # fmt: skip
        elif folio.upper() == uuid.upper():
            problems.append(Problem("CONN-CANCEL-SUSTITUCION", where, "El folio de "
                                    "sustitución no puede ser el mismo UUID que se cancela."))  # fmt: skip
        elif (
            other is None
            or other.stamped_xml is None
            or other.emisor_rfc.upper() != e.emisor_rfc.upper()
        ):
            problems.append(Problem("CONN-CANCEL-SUSTITUCION", where, f"El folio de "
                                    f"sustitución {folio} no es un CFDI que el emisor "
                                    f"{e.emisor_rfc} haya timbrado con este conector."))  # fmt: skip
    elif folio:
        problems.append(Problem("CONN-CANCEL-SUSTITUCION", where, f"Solo el motivo 01 lleva "
                                f"folio de sustitución; el motivo {motivo} no ({folio})."))  # fmt: skip
    req = j.cancel_request(uuid)
    if j.cancellation(uuid) is not None or (req and req.state is CancelState.CANCELLED):
        problems.append(Problem("CONN-CANCEL-YA", where, f"{e.label} (UUID {uuid}) ya está "
                                "cancelado."))  # fmt: skip
    elif req is not None and req.state in (CancelState.SENT, CancelState.IN_PROCESS):
        problems.append(Problem("CONN-CANCEL-PENDIENTE", where, f"{e.label} ya tiene una "
                                f"solicitud de cancelación {state_es(req.state)} desde "
                                f"{_when(req.requested_at)}; el daemon la sigue en el SAT "
                                "hasta su resultado."))  # fmt: skip
    deadline = cancel_deadline(f.fecha.date(), f.rfc_emisor)
    if today > deadline:
        problems.append(Problem("CONN-CANCEL-EJERCICIO", where, f"{e.label} es del ejercicio "
                                f"{f.fecha.year} (Fecha {f.fecha.date()}): solo se puede "
                                f"cancelar hasta el {deadline} (mes de la declaración anual, "
                                f"CFF art. 29-A); hoy es {today}."))  # fmt: skip
    if problems:
        raise CancelRefused(problems)
    return e, f


def age_text(seconds: float) -> str:
    """A request's age for people: 3 d 4 h, 2 h 5 min, 40 s."""
    s = int(max(0, seconds))
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    if d:
        return f"{d} d {h} h"
    if h:
        return f"{h} h {m} min"
    return f"{m} min" if m else f"{s} s"


def next_poll_delay(cfg: Config, req: CancelRequest, now: float) -> float:
    """About a tenth of the request's age, between the configured bounds: slower as it ages."""
    d = cfg.daemon
    age = max(0.0, now - req.requested_at)
    return min(d.cancel_poll_max_seconds, max(d.cancel_poll_seconds, age / 10))


# --- the request (CLI) ------------------------------------------------------------------------


def request(
    cfg: Config,
    j: Journal,
    driver: Any,
    sat: Any,
    uuid: str,
    motivo: str,
    folio_sustitucion: str | None,
    *,
    origin: str = "cli",
    today: date | None = None,
    out: TextIO,
) -> CancelRequest:
    """Check, record (journal first), send, ask SAT, record and write back. ``driver``: a
    ``PacDriver`` (opened); ``sat``: a ``SatStatusClient``. A request left ``solicitada`` by
    a send without answer is asked about at SAT first and only sent again if SAT shows
    nothing of it. Raises ``CancelRefused`` (nothing recorded nor sent)."""
    from connector.pac.cancellation import classify
    from connector.pac.errors import PacError

    known = j.find_uuid(uuid)
    prior = j.cancel_request(uuid)
    if (
        known is not None
        and known.stamped_xml is not None
        and prior is not None
        and (prior.state in CANCEL_OPEN)
    ):  # where the last request stands now, before judging this one
        st = _ask(sat, str(known.uuid).upper(), facts(known.stamped_xml))
        if st is not None:
            prior = apply_sat(cfg, j, prior, st, time.time(), out=out)
            print(f"UUID {prior.uuid}: la solicitud anterior ({_when(prior.requested_at)}): "
                  f"el SAT muestra {st.estado}"
                  f"{f' ({st.estatus_cancelacion})' if st.estatus_cancelacion else ''}; "
                  f"{state_es(prior.state)}.", file=out)  # fmt: skip
            if prior.state is CancelState.CANCELLED:  # what was asked for is done
                return prior
        elif prior.state is CancelState.REQUESTED:
            raise CancelRefused([Problem(
                "CONN-CANCEL-DUDOSA", f"UUID {prior.uuid}", "La solicitud anterior se envió "
                "sin respuesta del PAC y el SAT no se pudo consultar: no se envía otra vez "
                "hasta saber si la primera llegó. Intente más tarde.")])  # fmt: skip
    e, f = check_request(j, uuid, motivo, folio_sustitucion, today or date.today())
    uuid = str(e.uuid).upper()
    folio = (folio_sustitucion or "").strip().upper() or None
    j.open_cancel_request(
        uuid, motivo, folio, rfc_emisor=f.rfc_emisor, rfc_receptor=f.rfc_receptor,
        total=f.total, origin=origin,
    )  # fmt: skip
    try:
        r = driver.cancel(uuid, motivo, folio, f.rfc_receptor, Decimal(f.total))
    except PacError as exc:
        _after_error(cfg, j, sat, uuid, f, prior, exc, out)
        raise
    acuse = r.acuse
    if not acuse:
        try:
            acuse = driver.acuse_cancelacion(r.uuid)
        except PacError as exc:
            print(f"Acuse de cancelación no disponible aún ({exc.code}).", file=out)
    j.update_cancel_request(uuid, state=CancelState.SENT, code=r.code, acuse=acuse)
    said = ", ".join(x for x in (r.es_cancelable, r.estatus, r.message) if x)
    print(f"UUID {uuid}: el PAC aceptó la solicitud (código {r.code or '-'}"
          f"{f'; {said}' if said else ''}).", file=out)  # fmt: skip
    st = _ask(sat, uuid, f)
    outcome = classify(r, st, None if st is not None else "el SAT no respondió a la consulta")
    print(outcome.message, file=out)
    now = time.time()
    req = j.update_cancel_request(
        uuid,
        state=outcome.state,
        estado=st.estado if st else None,
        es_cancelable=outcome.es_cancelable,
        estatus_cancelacion=outcome.estatus_cancelacion,
        polls=1 if st else 0,
        next_poll_at=now + cfg.daemon.cancel_poll_seconds,
    )
    if outcome.state is CancelState.CANCELLED and not outcome.sat_cancelled:
        # the PAC says cancelled, SAT does not show it yet: followed until SAT says it
        req = j.update_cancel_request(uuid, state=CancelState.SENT)
    what = "Cancelación" if req.state is CancelState.CANCELLED else "Solicitud de cancelación"
    print(f"{what} de {e.label} registrada en el diario {j.path} ({state_es(req.state)}).",
          file=out)  # fmt: skip
    write_back(cfg, j, req, out=out)
    return req


def _after_error(
    cfg: Config,
    j: Journal,
    sat: Any,
    uuid: str,
    f: Facts,
    prior: CancelRequest | None,
    exc: Exception,
    out: TextIO,
) -> None:
    """The PAC did not accept the request: refused (``invalida``, or ``no_cancelable`` when
    SAT says so: never sent again as is), maybe sent (stays ``solicitada``: SAT is asked
    before a new send) or surely not sent (the record goes back to what it was)."""
    from connector.pac.errors import PacAccount, PacAmbiguous, PacInvalid, PacNotFound

    code, message = getattr(exc, "code", "CONN-PAC"), getattr(exc, "message", str(exc))
    refused = isinstance(exc, (PacInvalid, PacNotFound)) and not isinstance(exc, PacAccount)
    if refused:
        st = _ask(sat, uuid, f)
        state = CancelState.INVALID
        if st is not None and "no cancelable" in (st.es_cancelable or "").lower():
            state = CancelState.NOT_CANCELLABLE
        req = j.update_cancel_request(
            uuid, state=state, error_code=code, error_message=message,
            estado=st.estado if st else None, es_cancelable=st.es_cancelable if st else None,
            estatus_cancelacion=st.estatus_cancelacion if st else None,
        )  # fmt: skip
        write_back(cfg, j, req)
        print(f"UUID {uuid}: el PAC rechazó la solicitud ({code}: {message}); "
              f"{state_es(state)}. No se reintenta.", file=out)  # fmt: skip
    elif getattr(exc, "maybe_sent", False) or isinstance(exc, PacAmbiguous):
        j.update_cancel_request(uuid, error_code=code, error_message=message)
        print(f"UUID {uuid}: no se sabe si la solicitud llegó al PAC ({code}: {message}). "
              "Queda solicitada: el daemon consulta al SAT, y este comando, repetido, "
              "pregunta al SAT antes de enviarla otra vez.", file=out)  # fmt: skip
    else:
        j.forget_cancel_request(uuid, prior.state if prior is not None else None)
        print(f"UUID {uuid}: la solicitud no se envió ({code}: {message}).", file=out)


def _ask(sat: Any, uuid: str, f: Facts) -> Any:
    """SAT's status (``SatStatus`` found), or None (not reachable, not found yet)."""
    from connector.pac.errors import PacError

    try:
        st = sat.consulta(uuid, f.rfc_emisor, f.rfc_receptor, Decimal(f.total))
    except PacError as exc:
        log.info("sat_status_unavailable", uuid=uuid, code=exc.code, error=exc.message)
        return None
    return st if st.found else None


# --- SAT's answer, recorded and written back ---------------------------------------------------


def apply_sat(
    cfg: Config, j: Journal, req: CancelRequest, st: Any, now: float, out: TextIO | None = None
) -> CancelRequest:
    """Record what SAT said of ``req`` (state, SAT's words, next poll) and write back a
    change (result file; on Cancelado the CANCELADO PDF and the acuse)."""
    from connector.pac.cancellation import state_from_sat

    state = state_from_sat(req.state, st)
    new = j.update_cancel_request(
        req.uuid,
        state=state,
        estado=st.estado,
        es_cancelable=st.es_cancelable,
        estatus_cancelacion=st.estatus_cancelacion,
        polls=req.polls + 1,
        next_poll_at=now + next_poll_delay(cfg, req, now),
    )
    if state is not req.state:
        log.info("cancellation_changed", uuid=req.uuid, was=str(req.state), now=str(state),
                 estatus=st.estatus_cancelacion)  # fmt: skip
        write_back(cfg, j, new, out=out)
    return new


# --- the daemon's follow-up --------------------------------------------------------------------


def noticed_outside(cfg: Config, j: Journal, e: Entry, f: Facts, st: Any) -> CancelRequest:
    """A CFDI SAT shows Cancelado that the connector never asked to cancel (SAT's portal):
    recorded as a ``cancelada`` request of origin ``sat`` (motivo unknown) and written back."""
    uuid = str(e.uuid).upper()
    j.open_cancel_request(uuid, "", None, rfc_emisor=f.rfc_emisor, rfc_receptor=f.rfc_receptor,
                          total=f.total, origin="sat")  # fmt: skip
    req = j.update_cancel_request(
        uuid, state=CancelState.CANCELLED, estado=st.estado, es_cancelable=st.es_cancelable,
        estatus_cancelacion=st.estatus_cancelacion, polls=1,
    )  # fmt: skip
    log.warning("cancelled_outside", uuid=uuid, invoice=e.label, estatus=st.estatus_cancelacion)
    write_back(cfg, j, req)
    return req


def status_lines(j: Journal, now: float | None = None) -> list[dict[str, Any]]:
    """The requests not final, with their age (``status``)."""
    now = now or time.time()
    return [
        {
            "uuid": r.uuid,
            "estado": str(r.state),
            "edad_segundos": round(now - r.requested_at),
            "edad": age_text(now - r.requested_at),
            "solicitudes": r.requests,
            "consultas": r.polls,
            "sat_estatus_cancelacion": r.estatus_cancelacion,
            "proxima_consulta": _when(r.next_poll_at),
            "error": f"{r.error_code}: {r.error_message}" if r.error_code else None,
        }
        for r in j.cancel_requests(*CANCEL_OPEN)
    ]
