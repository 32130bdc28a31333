"""What the invoice flow works with: the runtimes of a configured PAC and of a source, the PAC
driver built from the configuration, and the small helpers that turn problems into what the
journal, the error files and the table rows keep."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connector.cfdi.errors import Problem
from connector.config import EmisorConfig, PacConfig, SourceConfig, pac_network, read_secret
from connector.journal import Entry
from connector.sinks import ItemError

_HASH_EXCLUDE = {"Fecha", "Sello", "NoCertificado", "Certificado", "TimbreFiscalDigital"}
MAX_MESSAGE = 1000  # characters of one problem's message kept in the journal and error files


@dataclass
class PacRuntime:
    cfg: PacConfig
    driver: Any  # connector.pac.base.PacDriver
    breaker: Any = None  # connector.pac.resilience circuit breaker (set by the pipeline)
    submitter: Any = None  # the driver behind retries and the breaker (set by the pipeline)
    sat_cert_der: bytes | None = None  # [[pacs]] sat_cert: every SelloSAT is verified with it

    def state(self) -> dict[str, Any]:
        if self.breaker is not None:
            return dict(self.breaker.snapshot())
        return {"pac": self.cfg.name, "state": "closed"}


@dataclass
class SourceRuntime:
    """One configured source as the daemon runs it. ``kind``: the source kind that supplies
    its units of work and writes its invoices' outcomes back its own way (``FileUnits`` for
    folders, ``TableUnits`` for tables); ``folder``/``table``: its inbox watcher or its
    database tables."""

    cfg: SourceConfig
    emisor: EmisorConfig
    pac: PacRuntime
    mapping: Any | None
    csd: Any | None
    kind: Any = None
    folder: Any = None  # connector.adapters.folder.FolderSource
    table: Any = None  # connector.adapters.table.source.TableSource


@dataclass
class Admitted:
    """One invoice (a file's record, a table's row) after admission: where it came from, its
    journal row (None: refused before the journal, ``problems`` say why), and what to do
    next: ``send`` it to the PAC, only ``deliver`` it, wait while another instance sharing the
    journal finishes it (``elsewhere``), or nothing (final, or waiting)."""

    location: str
    invoice_id: int | None
    problems: list[dict[str, Any]]
    entry: Entry | None = None
    action: str | None = None
    sealed_now: bool = False  # sealed by this admission: attempt 1 recorded, nothing sent


class PipelineError(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def make_driver(pac: PacConfig, pool_size: int) -> Any:
    """The PAC driver for a configured PAC (``connector.pac.create_driver``)."""
    from connector.pac import create_driver
    from connector.pac.base import Timeouts

    password = read_secret(pac, f"el PAC {pac.name!r}")
    timeouts = Timeouts(connect=min(5.0, pac.timeout_seconds), read=pac.timeout_seconds)
    extra: dict[str, Any] = {}
    if pac.kind == "fel":
        extra = {"cuenta": pac.cuenta, "remote_url": pac.url_remote}
    elif pac.url_cancel:
        extra = {"cancel_url": pac.url_cancel}
    return create_driver(
        pac.kind,
        pac.url,
        usuario=pac.usuario,
        password=password,
        timeouts=timeouts,
        pool_size=pool_size,
        **pac_network(pac),
        **extra,
    )


def sat_cert(p: PacConfig) -> bytes | None:
    """The DER of ``[[pacs]] sat_cert``, read and checked at start (CONN-CFG-SATCERT)."""
    if p.sat_cert is None:
        return None
    from connector.cfdi.csd import load_certificate

    try:
        der = Path(p.sat_cert).read_bytes()
        load_certificate(der)
    except Exception as exc:
        reason = getattr(exc, "strerror", None) or "no es un certificado DER (.cer)"
        raise PipelineError(
            [Problem("CONN-CFG-SATCERT", f"pacs.{p.name}.sat_cert", f"{p.sat_cert}: {reason}.")]
        ) from None
    return der


def content_hash(comprobante: Any | None, xml: bytes | None = None) -> str:
    """What makes two submissions of one business key "the same invoice".

    The issue date and the seal are left out: a re-export of the same data an hour later is
    the same invoice, not a new one.
    """
    h = hashlib.sha256()
    if comprobante is not None:
        h.update(comprobante.model_dump_json(exclude=_HASH_EXCLUDE).encode())
    elif xml is not None:
        h.update(xml)
    return h.hexdigest()


def new_referencia(serie: str, folio: str) -> str:
    base = f"{serie}{folio}"[:20]
    return f"{base}-{secrets.token_hex(6)}"


def short_message(message: str) -> str:
    """A message as stored and reported: a value quoted whole (a 1 MB field) is cut."""
    if len(message) <= MAX_MESSAGE:
        return message
    return f"{message[:MAX_MESSAGE]}… (mensaje recortado: {len(message)} caracteres)"


def problem_dict(p: Problem, location: str | None = None) -> dict[str, Any]:
    d = p.to_dict()
    d["message"] = short_message(p.message)
    if not d.get("location"):
        d["location"] = location
    return d


def located(inp: Any, problems: list[Problem]) -> list[Problem]:
    """Problems pointed at the source file:line:field when the adapter knows where."""
    locate = getattr(inp, "locate", None)
    if locate is None:
        return problems
    out = []
    for p in problems:
        try:
            out.append(locate(p))
        except Exception:
            out.append(p)
    return out


def norm_key(key: tuple[str, str, str]) -> tuple[str, str, str]:
    """A business key as the journal keeps it (RFC upper case)."""
    return (key[0].upper(), key[1], key[2])


def has_errors(problems: list[Problem]) -> bool:
    return any(p.severity == "error" for p in problems)


def dicts(problems: list[Problem], location: str, invoice: str = "") -> list[dict[str, Any]]:
    out = [problem_dict(p, location) for p in problems]
    if invoice:
        for d in out:
            d["invoice"] = invoice
    return out


def item_errors(problems: list[dict[str, Any]], location: str, invoice: str) -> list[ItemError]:
    """The errors among journaled problems, as a report lists them."""
    out = []
    for p in problems:
        if p.get("severity", "error") != "error":
            continue
        out.append(
            ItemError(
                location=p.get("location") or location,
                invoice=invoice or str(p.get("invoice") or ""),
                code=str(p.get("code") or "CONN-ERROR"),
                path=str(p.get("path") or ""),
                message=str(p.get("message") or ""),
            )
        )
    return out


def entry_errors(e: Entry, location: str) -> list[ItemError]:
    """A failed invoice's errors (its problems, or its one code and message)."""
    probs = e.problems or [{"code": e.error_code, "path": "", "message": e.error_message}]
    return item_errors(probs, location, e.label)


def as_problem(exc: BaseException, path: str, default_code: str) -> Problem:
    problems = getattr(exc, "problems", None)
    if problems:
        p = problems[0]
        return Problem(p.code, path, p.message)
    code = getattr(exc, "code", default_code)
    msg = getattr(exc, "message", None) or str(exc)
    return Problem(code if isinstance(code, str) else default_code, path, msg)
