"""Error taxonomy of the PAC layer: what went wrong and whether it may be tried again.

Three kinds decide what the pipeline does next:

``PacInvalid``
    The PAC (or SAT through it) rejected the request: a validation code (301…312, 401…403,
    ``CFDI40xxx``, Finkok 70x…), bad credentials, an account without credits or blocked.
    Permanent: never retried (FEL charges invalid requests and blocks accounts above 30 %).
``PacTransient``
    The request did not produce a result and may be sent again: connection refused, connect
    timeout, HTTP 5xx, a SOAP Server fault, Finkok 708 "no se pudo conectar al SAT", a
    garbled reply to a *read* operation. ``sent`` says whether the request may have reached
    the PAC (a 5xx did reach it), so a careful caller asks the PAC by ``referencia`` first.
``PacAmbiguous``
    A *write* (stamp, generate, cancel) was sent and no usable answer came back: read timeout
    after sending, connection dropped after sending, or a reply that cannot be parsed. The
    invoice may or may not be stamped: recover by ``referencia`` before sending again, and
    then send the identical sealed bytes.

Decision on garbled replies: a reply we cannot parse to a stamp or generate request is
AMBIGUOUS (the PAC may have stamped it); to a read (credits, recover, acuses, status) it is
TRANSIENT (reading again is harmless).

``PacNotFound`` (a recover found nothing: the PAC never stamped that ``referencia``) and
``PacUnsupported`` (this PAC has no such operation) complete the set.

Every error carries the PAC's code (or ours, ``CONN-PAC-…``) and a Spanish message. Messages
never include passwords or keys: drivers redact their secrets before raising.

All PAC response codes are classified in ONE table, :data:`CODE_KINDS`.
"""

from __future__ import annotations

from typing import Literal

Kind = Literal["invalid", "transient", "previously_stamped", "not_found"]


class PacError(Exception):
    """Base of every PAC failure: ``code`` (the PAC's or ours) and a Spanish ``message``.

    ``maybe_sent`` is True when the request may have reached the PAC; the journal must keep
    that fact so a later retry recovers by ``referencia`` before sending again.
    """

    default_maybe_sent = False

    def __init__(
        self,
        code: str,
        message: str,
        *,
        pac: str | None = None,
        operation: str | None = None,
        maybe_sent: bool | None = None,
    ) -> None:
        self.code = code
        self.message = message
        self.pac = pac
        self.operation = operation
        self.maybe_sent = self.default_maybe_sent if maybe_sent is None else maybe_sent
        super().__init__(code, message)

    def __str__(self) -> str:
        return f"{self.code} {self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"

    def __reduce__(self):  # keep pickling (multiprocessing, logging handlers) working
        return (
            _rebuild,
            (type(self), self.code, self.message, self.pac, self.operation, self.maybe_sent),
        )


def _rebuild(
    cls: type[PacError],
    code: str,
    message: str,
    pac: str | None,
    operation: str | None,
    maybe_sent: bool,
) -> PacError:
    return cls(code, message, pac=pac, operation=operation, maybe_sent=maybe_sent)


class PacInvalid(PacError):
    """Permanent rejection (validation, authentication, account): never retry."""


class PacAccount(PacInvalid):
    """The PAC refused the account, not the document (wrong or expired password, suspended
    account, no credits, HTTP 401/403: :data:`ACCOUNT_CODES`). Nothing was stamped; it is
    never final for an invoice: the PAC is paused (the circuit breaker opens and probes
    slowly) and the invoices wait until the account works again."""


class PacTransient(PacError):
    """Temporary failure: retry with backoff. ``maybe_sent`` when the PAC may have seen it."""


class PacCircuitOpen(PacTransient):
    """The circuit breaker of this PAC is open: not even tried, try again later."""


class PacAmbiguous(PacError):
    """Sent, no usable answer: recover by referencia before sending again."""

    default_maybe_sent = True


class PacNotFound(PacError):
    """The PAC has no stamp for that referencia (or UUID)."""


class PacUnsupported(PacError):
    """The PAC's driver has no such operation."""

    def __init__(self, pac: str, operation: str) -> None:
        super().__init__(
            "CONN-PAC-NO-SOPORTADO",
            f"El PAC '{pac}' no ofrece la operación '{operation}' en este conector.",
            pac=pac,
            operation=operation,
        )

    def __reduce__(self):
        return (PacUnsupported, (self.pac or "", self.operation or ""))


# --- The one table: PAC response code -> kind ----------------------------------------------------
#
# Codes of SAT's Anexo 20 stamping rules (shared by every PAC), FEL's and Finkok's own codes.
# Anything a PAC returns as a rejection that is not listed here is treated as INVALID: retrying
# an unknown rejection risks charges and account blocks, and a person must look at it anyway.

CODE_KINDS: dict[str, Kind] = {
    # SAT Anexo 20, validaciones de timbrado
    "301": "invalid",  # XML mal formado
    "302": "invalid",  # Sello mal formado o inválido
    "303": "invalid",  # Sello no corresponde a emisor
    "304": "invalid",  # Certificado revocado o caduco
    "305": "invalid",  # Fecha de emisión fuera de la vigencia del certificado
    "306": "invalid",  # El certificado no es de tipo CSD
    "307": "previously_stamped",  # El CFDI contiene un timbre previo
    "308": "invalid",  # Certificado no expedido por el SAT
    "309": "invalid",
    "310": "invalid",
    "311": "invalid",
    "312": "invalid",
    "401": "invalid",  # Fecha fuera del rango de 72 horas
    "402": "invalid",  # RFC del emisor no se encuentra en el régimen (LCO)
    "403": "invalid",  # Fecha de emisión anterior a la permitida
    # Finkok
    "702": "invalid",  # RFC del emisor no registrado en la cuenta
    "703": "invalid",  # Cuenta suspendida
    "704": "invalid",  # Error con la contraseña de la llave privada
    "705": "invalid",  # Estructura XML inválida
    "706": "invalid",
    "707": "invalid",  # Ya contiene un timbre / Ya existe el nodo TFD
    "708": "transient",  # No se pudo conectar al SAT
    "712": "invalid",  # El atributo noCertificado no coincide
    "718": "invalid",
    "720": "invalid",
    "798": "transient",  # Error interno del PAC, intente de nuevo
    "799": "transient",
    # Cancelación (SAT) y recuperación
    "205": "not_found",  # UUID no existe
    "602": "not_found",  # Comprobante no encontrado (Finkok)
    "603": "not_found",
    # FEL: códigos propios
    "203": "invalid",  # usuario o contraseña inválidos
    "404": "not_found",  # no se encontró el comprobante (por referencia, UUID o sello)
    "905": "invalid",  # la cuenta no tiene créditos
    "313": "invalid",  # motivo 01 sin folio de sustitución
    "AUTH": "invalid",
    "SIN-CREDITOS": "invalid",
    "NO-ENCONTRADO": "not_found",
    "SAT-NO-DISPONIBLE": "transient",
}

# Rejections about the account, not the invoice (raised as ``PacAccount``): a recover that gets
# one of these must say so (it is not "never stamped"), and no invoice fails because of one.
# Our own codes of the same kind: the network set-up refused, not the invoice (a TLS name or CA
# mismatch, a proxy that wants other credentials). Raised as ``PacAccount`` too: never retried
# blindly, never final for an invoice; the PAC pauses until the configuration is fixed.
NETWORK_SETUP_CODES = frozenset({"CONN-PAC-TLS", "CONN-PAC-PROXY"})
ACCOUNT_CODES = frozenset(
    {"203", "703", "905", "AUTH", "SIN-CREDITOS", "HTTP-401", "HTTP-403", *NETWORK_SETUP_CODES}
)


def kind_of(code: str | None) -> Kind:
    """Classify a PAC response code; ``CFDI40xxx`` and unknown codes are invalid."""
    if not code:
        return "invalid"
    code = code.strip().upper()
    if code in CODE_KINDS:
        return CODE_KINDS[code]
    if code.startswith("CFDI40") or code.startswith("CRP20") or code.startswith("CANC"):
        return "invalid"
    return "invalid"


def error_for_code(
    code: str,
    message: str,
    *,
    pac: str,
    operation: str,
    write: bool,
) -> PacError:
    """Build the exception the table says for a rejection ``code`` returned by the PAC."""
    kind = kind_of(code)
    text = message or "El PAC rechazó la solicitud sin dar un mensaje."
    if (code or "").strip().upper() in ACCOUNT_CODES:
        return PacAccount(code, text, pac=pac, operation=operation)
    if kind == "transient":
        return PacTransient(code, text, pac=pac, operation=operation, maybe_sent=write)
    if kind == "not_found":
        return PacNotFound(code, text, pac=pac, operation=operation)
    return PacInvalid(code, text, pac=pac, operation=operation)
