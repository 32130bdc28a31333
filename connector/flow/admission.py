"""Admission: one invoice (a file's record or a table's row, it does not matter which) checked
against the journal and SAT's rules, sealed and recorded, or refused with coded problems.

``admit`` is the only way an invoice enters the journal: a business key already there is the
same invoice again (delivered again, resumed) or a different one under a used folio
(CONN-FOLIO-USADO); a new one is validated, sealed and recorded ``sending`` with its first
attempt in one write, so the send leaves only after that commit.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import structlog

from connector.cfdi.errors import CfdiError, Problem
from connector.journal import Admission, Entry, Journal, State

from .runtime import (
    Admitted,
    SourceRuntime,
    content_hash,
    dicts,
    has_errors,
    located,
    new_referencia,
    norm_key,
    short_message,
)

log = structlog.get_logger("connector.pipeline")


def admit(
    journal: Journal,
    src: SourceRuntime,
    inp: Any,
    location: str,
    *,
    source_file: str,
    now: datetime,
    busy: set[int] | dict[int, Any],
    seen: dict[tuple[str, str, str], str] | None = None,
    referencia: str | None = None,
) -> Admitted:
    """Journal one invoice; returns where it stands and what to do next.

    ``busy``: invoices a worker holds (never dispatched twice). ``seen``: the business keys
    earlier invoices of the same unit (file, batch of rows) carried, and where; a key seen
    again is CONN-FOLIO-DUPLICADO and never reaches the journal (it would restart or resume
    the earlier one's row and hide its outcome). ``referencia``: the one the source already
    holds for this invoice (a table row's, written at claim time); default a new one."""
    problems: list[Problem] = list(inp.problems)

    def refused(label: str = "", *more: Problem) -> Admitted:
        """The invoice stays out of the journal; its problems go to the unit's report."""
        return Admitted(location, None, dicts(located(inp, [*problems, *more]), location, label))

    c = given = inp.comprobante
    xml: bytes | None = inp.xml
    if c is None and xml is not None and not has_errors(problems):
        try:
            from connector.cfdi.xmlio import from_xml

            c = from_xml(xml)
        except CfdiError as exc:
            problems.extend(exc.problems)
    if c is None:  # not mapped: its errors still say which invoice (serie+folio as read)
        return refused(getattr(inp, "label", ""))
    if xml is None:
        try:
            from connector.cfdi.amounts import complete

            c = complete(c)
        except Exception as exc:
            problems.append(
                Problem("CONN-IMPORTES", "", f"No se pudieron calcular los importes: {exc}")
            )
    key = c.business_key
    label = f"{key[1]}{key[2]}"
    ilog = log.bind(file=source_file, invoice=label, rfc=key[0])
    problems.extend(_identity_problems(src, key))
    if has_errors(problems) and (key[0] != src.emisor.rfc or not key[2]):
        return refused(label)
    if seen is not None:
        earlier = seen.get(norm_key(key))
        if earlier is not None:
            unit = "lote de filas" if source_file.startswith("tabla ") else "archivo"
            ilog.warning("folio_repeated_in_file", earlier=earlier, location=location)
            msg = (
                f"La serie {key[1]!r} y folio {key[2]!r} ya aparecen antes en este mismo "
                f"{unit} ({earlier}); cada factura necesita su propio folio. Este registro "
                "no se timbra: corrija el folio en el ERP y exporte de nuevo esta factura."
            )
            return refused(label, Problem("CONN-FOLIO-DUPLICADO", "Folio", msg, location=location))
        seen[norm_key(key)] = location
    adm, e = journal.admit(
        key,
        content_hash(c, xml),
        mode=src.cfg.mode,
        source=src.cfg.name,
        source_file=source_file,
        location=location,
    )
    if adm is Admission.CONFLICT:
        uuid_txt = f"con el UUID {e.uuid}" if e.uuid else "y está en proceso de timbrado"
        origin = e.source_file if e.source_file.startswith("tabla ") else f"archivo {e.source_file}"
        msg = (
            f"La serie {key[1]!r} y folio {key[2]!r} ya se usaron para otra factura "
            f"{uuid_txt} ({origin}); esta exportación tiene otro contenido "
            "y no se timbra dos veces. Use un folio nuevo."
        )
        ilog.warning("folio_used", uuid=e.uuid)
        return refused(label, Problem("CONN-FOLIO-USADO", "Folio", msg, location=location))
    if adm is Admission.DELIVERED:
        ilog.info("duplicate_delivered_again", uuid=e.uuid)
        return Admitted(location, e.id, [], e, "deliver")
    if adm is Admission.FAILED:
        return Admitted(location, e.id, [])
    if adm is Admission.ELSEWHERE:  # another live instance advances it: never both
        ilog.info("invoice_elsewhere", owner=e.owner, state=str(e.state))
        return Admitted(location, e.id, [], e, "elsewhere")
    if adm is Admission.RESUME:
        action = None
        if e.state in (State.SEALED, State.SENDING) and e.id not in busy:
            action = "send"
        return Admitted(location, e.id, [], e, action)
    # NEW / RESTART: validate, seal, hand to the PAC
    if not has_errors(problems):
        problems.extend(_rule_problems(c, given, xml, now))
    if has_errors(problems):
        first = next(p for p in problems if p.severity == "error")
        journal.mark_failed(
            e.id,
            first.code,
            short_message(first.message),
            origin="rules",
            problems=dicts(located(inp, problems), location, label),
        )
        ilog.info("invalid", codes=sorted({p.code for p in problems}))
        return Admitted(location, e.id, [])
    try:
        sealed = payload(src, c, xml)
    except CfdiError as exc:
        journal.mark_failed(
            e.id,
            exc.code,
            short_message(str(exc.problems[0].message if exc.problems else exc)),
            origin="csd",
            problems=dicts(located(inp, exc.problems), location, label),
        )
        ilog.info("seal_failed", code=exc.code)
        return Admitted(location, e.id, [])
    # validated, sealed and the first attempt in one write; the send leaves after the commit
    e = journal.mark_sealed_sending(e.id, sealed, referencia or new_referencia(key[1], key[2]))
    ilog.debug("sealed", referencia=e.referencia)
    return Admitted(location, e.id, [], e, "send", sealed_now=True)


def _identity_problems(src: SourceRuntime, key: tuple[str, str, str]) -> list[Problem]:
    """The invoice's emisor, serie and folio against the source's configuration."""
    found = []
    if key[0] != src.emisor.rfc:
        found.append(
            Problem(
                "CONN-EMISOR",
                "Emisor.Rfc",
                f"El RFC del emisor {key[0]} no es el de la fuente {src.cfg.name!r} "
                f"({src.emisor.rfc}).",
            )
        )
    if src.emisor.series and key[1] not in src.emisor.series:
        found.append(
            Problem(
                "CONN-SERIE",
                "Serie",
                f"La serie {key[1]!r} no está entre las series del emisor {src.emisor.rfc} "
                f"en la configuración ({', '.join(src.emisor.series)}).",
            )
        )
    if not key[2]:
        found.append(
            Problem(
                "CONN-FOLIO",
                "Folio",
                "La factura no tiene folio: el conector necesita serie y folio para "
                "identificarla y no timbrarla dos veces.",
            )
        )
    return found


def _rule_problems(c: Any, given: Any, xml: bytes | None, now: datetime) -> list[Problem]:
    """SAT's schema (a sealed XML drop) or SAT's rules and schema limits (before sealing)."""
    from connector.cfdi.rules import validate, without_follow_ons
    from connector.cfdi.xmlio import validate_limits, validate_xsd

    if xml is not None and c.Sello:  # a sealed XML drop: SAT's schema first
        problems = validate_xsd(xml)
        if has_errors(problems):
            return problems
    else:
        problems = []
    ruled = validate(c, now=now)
    found = list(ruled)
    if not (xml is not None and c.Sello):
        # SAT's schema limits before sealing, never a request the PAC refuses (301); a field
        # a SAT rule already reported is not reported twice
        said = {p.path for p in ruled}
        limits = validate_limits(xml if xml is not None else c)
        found.extend(p for p in limits if p.path not in said)
    # the root cause only: not the amounts derived from an amount in error
    return problems + (found if given is None else without_follow_ons(found, given))


def resume_committed(
    e: Entry, location: str, inp: Any | None, *, unit: str, busy: set[int] | dict[int, Any]
) -> Admitted:
    """The same unit read again after a restart: an invoice it already committed (sealed or
    later) continues from its journal row, whatever the record parses to now (``inp``; None
    when the unit no longer yields it): its sealed bytes are resent as they are, never
    re-sealed; a stamped one is delivered."""
    now = getattr(inp, "comprobante", None) if inp is not None else None
    key_now = getattr(now, "business_key", None)
    if inp is None or (key_now is not None and norm_key(key_now) != e.key):
        log.warning(
            "content_changed_on_resume",
            file=unit,
            invoice=e.label,
            location=location,
            now=None if key_now is None else f"{key_now[1]}{key_now[2]}",
        )
    if e.state in (State.STAMPED, State.DELIVERED):
        return Admitted(location, e.id, [], e, "deliver")
    if e.state in (State.SEALED, State.SENDING) and e.id not in busy:
        return Admitted(location, e.id, [], e, "send")
    return Admitted(location, e.id, [])  # retry_wait: its retry time dispatches it


def payload(src: SourceRuntime, c: Any, xml: bytes | None) -> bytes:
    """The exact bytes the PAC will receive: sealed XML, or the invoice data (remote)."""
    if src.cfg.mode == "remote" and xml is None:
        return c.model_dump_json(by_alias=True).encode()
    from connector.cfdi import seal

    if src.csd is not None and hasattr(src.csd, "check_can_seal"):
        src.csd.check_can_seal(src.emisor.rfc, c.Fecha)
    if xml is not None and c.Sello:
        problems = seal.verify_seal(xml)
        if problems:
            raise CfdiError(problems)
        return xml
    assert src.csd is not None  # loaded for every source that seals (Pipeline._build_sources)
    if xml is not None:
        return seal.seal_xml(xml, src.csd)
    return seal.seal_invoice(c, src.csd, complete=False)  # admit completed its amounts
