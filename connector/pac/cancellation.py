"""What a cancellation request amounts to, once the PAC accepted it and SAT was asked.

The PAC's 201 only says the request was filed. For a CFDI that SAT marks "Cancelable sin
aceptación" it is cancelled at once; for one "Cancelable con aceptación" SAT shows ``Vigente`` /
``En proceso`` and the receptor has three business days: it ends ``Cancelado con aceptación``,
``Plazo vencido`` (silence counts as accepted) or ``Solicitud rechazada`` (still vigente; a new
request has no deadline). :func:`classify` reads the PAC's answer and SAT's status
(``sat_status.SatStatus``, None when SAT could not be asked) and says which case it is, in
Spanish for the user. Only SAT's ``Cancelado`` puts the CANCELADO mark on the PDF.
"""

from __future__ import annotations

from dataclasses import dataclass

from connector.journal.model import CancelState

from .base import CancelResult
from .sat_status import SatStatus

_RECEPTOR = (
    "El receptor tiene tres días hábiles para aceptarla o rechazarla; si no responde, el SAT "
    "la cancela por plazo vencido. Mientras tanto el CFDI sigue vigente y su PDF no lleva la "
    "marca CANCELADO; consulte cómo va repitiendo este comando o con sat-status."
)


@dataclass(frozen=True)
class CancelOutcome:
    state: CancelState
    sat_cancelled: bool  # SAT's status service says Cancelado: the PDF gets the mark
    es_cancelable: str | None
    estatus_cancelacion: str | None
    message: str  # Spanish, for the user


def state_from_sat(current: CancelState, sat: SatStatus) -> CancelState:
    """Where a request in ``current`` stands once SAT answered (``sat.found``): Cancelado;
    Solicitud rechazada (only for a request that reached the PAC: the rejection SAT shows
    before a new request is sent is the previous one); En proceso; Vigente and "No
    cancelable" (e.g. related documents); else unchanged (SAT does not show it yet)."""
    estado = (sat.estado or "").strip().lower()
    estatus = (sat.estatus_cancelacion or "").strip().lower()
    if estado == "cancelado":
        return CancelState.CANCELLED
    if "rechaz" in estatus and current in (CancelState.SENT, CancelState.IN_PROCESS):
        return CancelState.REJECTED
    if "proceso" in estatus:
        return CancelState.IN_PROCESS
    if "no cancelable" in (sat.es_cancelable or "").lower() and estado == "vigente":
        return CancelState.NOT_CANCELLABLE
    return current


def classify(
    r: CancelResult, sat: SatStatus | None, sat_problem: str | None = None
) -> CancelOutcome:
    """The case of an accepted request (see the module docstring); ``sat_problem`` says why
    SAT's status is missing (not asked, not reachable, CFDI not found)."""
    uuid = r.uuid
    es_cancelable = (sat.es_cancelable if sat is not None and sat.found else None) or (
        r.es_cancelable
    )
    if sat is not None and sat.found:
        estado = (sat.estado or "").strip()
        estatus = (sat.estatus_cancelacion or "").strip() or None
        if estado.lower() == "cancelado":
            return CancelOutcome(
                CancelState.CANCELLED,
                True,
                es_cancelable,
                estatus,
                f"UUID {uuid}: cancelado. El SAT lo muestra Cancelado"
                f"{f' ({estatus})' if estatus else ''}.",
            )
        if estatus and "rechaz" in estatus.lower():
            return CancelOutcome(
                CancelState.REJECTED,
                False,
                es_cancelable,
                estatus,
                f"UUID {uuid}: el receptor rechazó la solicitud de cancelación ({estatus}); el "
                "CFDI sigue vigente. Puede solicitarla de nuevo (una nueva solicitud después de "
                "un rechazo no tiene plazo).",
            )
        if state_from_sat(CancelState.SENT, sat) is CancelState.NOT_CANCELLABLE:
            return CancelOutcome(
                CancelState.NOT_CANCELLABLE,
                False,
                es_cancelable,
                estatus,
                f"UUID {uuid}: el SAT lo muestra {estado or 'Vigente'} y No cancelable (por "
                "ejemplo, tiene documentos relacionados vigentes): cancele primero esos "
                "documentos.",
            )
        if (estatus and "proceso" in estatus.lower()) or _con_aceptacion(es_cancelable):
            return CancelOutcome(
                CancelState.IN_PROCESS,
                False,
                es_cancelable,
                estatus,
                f"UUID {uuid}: solicitud enviada, en espera de aceptación del receptor: el SAT "
                f"lo muestra {estado or 'Vigente'}{f' ({estatus})' if estatus else ''}, "
                f"{es_cancelable or 'Cancelable con aceptación'}. {_RECEPTOR}",
            )
        sat_problem = f"el SAT aún lo muestra {estado or 'sin estado'}"
    why = sat_problem or "no se consultó al SAT"
    if r.code == "202" or _sin_aceptacion(r.es_cancelable):
        return CancelOutcome(
            CancelState.CANCELLED,
            False,
            es_cancelable,
            r.estatus,
            f"UUID {uuid}: el PAC lo canceló ({r.es_cancelable or r.estatus or r.code}), pero "
            f"{why}: el PDF lleva la marca CANCELADO cuando el SAT lo muestre Cancelado; repita "
            "este comando más tarde.",
        )
    if _con_aceptacion(r.es_cancelable):
        return CancelOutcome(
            CancelState.IN_PROCESS,
            False,
            es_cancelable,
            r.estatus,
            f"UUID {uuid}: solicitud enviada, en espera de aceptación del receptor "
            f"({r.es_cancelable}; {why}). {_RECEPTOR}",
        )
    return CancelOutcome(
        CancelState.SENT,
        False,
        es_cancelable,
        r.estatus,
        f"UUID {uuid}: solicitud enviada; el PAC la aceptó (código {r.code or '-'}), pero "
        f"{why}, así que no se sabe aún si quedó cancelado o si espera la aceptación del "
        "receptor. Repita este comando o consulte sat-status más tarde; el PDF no lleva la "
        "marca CANCELADO mientras tanto.",
    )


def _con_aceptacion(es_cancelable: str | None) -> bool:
    return "con aceptaci" in (es_cancelable or "").lower()


def _sin_aceptacion(es_cancelable: str | None) -> bool:
    return "sin aceptaci" in (es_cancelable or "").lower()
