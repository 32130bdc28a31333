"""Every failure of a PAC call mapped to one kind of :mod:`connector.pac.errors`.

:func:`classify_exception` reads what requests, urllib3, zeep and lxml raise (and what the
lxml template path raises, the same types) together with whether the request went out and
the reply's HTTP status, and answers whether anything may have reached the PAC
(``maybe_sent``), whether to retry, recover by referencia first, pause the PAC (account,
TLS, proxy credentials) or give the invoice up. :func:`garbled` is the one verdict on a reply
that cannot be used.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Iterator

import requests
import urllib3
from lxml import etree
from zeep.exceptions import Error as ZeepError
from zeep.exceptions import Fault, TransportError
from zeep.exceptions import ValidationError as ZeepValidationError

from .errors import PacAccount, PacAmbiguous, PacError, PacInvalid, PacTransient


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception it carries (cause, context, args, urllib3's reason)."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        if isinstance(e, urllib3.exceptions.MaxRetryError):
            stack.append(e.reason)
        stack.extend(a for a in getattr(e, "args", ()) if isinstance(a, BaseException))
        stack.append(e.__cause__)
        stack.append(e.__context__)


def _never_connected(exc: BaseException) -> bool:
    """True when a requests ConnectionError happened before any byte was sent: urllib3 could
    not open the connection (``NewConnectionError``, which includes a name that does not
    resolve, ``ConnectTimeoutError``, refused)."""
    return any(
        isinstance(
            e,
            urllib3.exceptions.NewConnectionError
            | urllib3.exceptions.ConnectTimeoutError
            | ConnectionRefusedError,
        )
        for e in _causes(exc)
    )


def _certificate_refused(exc: BaseException) -> bool:
    """True when the server's certificate was refused (unknown CA, name mismatch, expired):
    that happens in the handshake, before any byte of the request. Any other TLS error may
    come after the request went out (urllib3 raises ``SSLError`` for both)."""
    return any(isinstance(e, ssl.SSLCertVerificationError) for e in _causes(exc))


def _proxy_refused(exc: BaseException) -> bool:
    """True when the proxy could not be reached or refused the tunnel (its own status line to
    the CONNECT): nothing went to the PAC. urllib3 also raises ``ProxyError`` for a connection
    dropped after the request went through the tunnel (it forgets the tunnel when http.client
    closes the connection), so ``ProxyError`` alone says nothing about the request."""
    for e in _causes(exc):
        if isinstance(
            e,
            urllib3.exceptions.NewConnectionError
            | urllib3.exceptions.ConnectTimeoutError
            | ConnectionRefusedError,
        ):
            return True
        if type(e) is OSError and str(e).startswith("Tunnel connection failed"):
            return True
    return False


def _proxy_error(
    exc: BaseException, where: str, *, pac: str, operation: str, status: int | None
) -> PacError:
    """The proxy refused or failed: nothing reached the PAC through a refused tunnel. A 407
    (the proxy wants other credentials) is configuration: the PAC is paused, the invoices
    wait; a 502/503 or a proxy that cannot be reached is transient."""
    text = " ".join(str(e) for e in _causes(exc))
    if status == 407 or " 407 " in text or "407 Proxy" in text:
        return PacAccount(
            "CONN-PAC-PROXY",
            f"El proxy rechazó las credenciales para {where} (HTTP 407): revise el usuario "
            "de 'proxy' y su contraseña en la configuración.",
            pac=pac,
            operation=operation,
            maybe_sent=False,
        )
    m = re.search(r"Tunnel connection failed: ([0-9]{3})", text)
    why = f"respondió HTTP {m.group(1)}" if m else "no se pudo conectar con él"
    return PacTransient(
        "CONN-PAC-PROXY",
        f"No se pudo llegar a {where} a través del proxy ({why}); se reintentará.",
        pac=pac,
        operation=operation,
        maybe_sent=False,
    )


def garbled(pac: str, operation: str, *, write: bool, detail: str = "") -> PacError:
    """A reply that cannot be used: ambiguous for writes, transient for reads."""
    msg = f"El PAC '{pac}' devolvió una respuesta ilegible a '{operation}'."
    if detail:
        msg += f" ({detail[:200]})"
    if write:
        return PacAmbiguous(
            "CONN-PAC-RESPUESTA",
            msg + " Puede que la haya procesado: se consultará por referencia antes de reenviar.",
            pac=pac,
            operation=operation,
        )
    return PacTransient("CONN-PAC-RESPUESTA", msg, pac=pac, operation=operation)


def classify_exception(
    exc: BaseException,
    *,
    pac: str,
    operation: str,
    write: bool,
    posted: bool = True,
    status: int | None = None,
) -> PacError | None:
    """Map a transport/zeep exception to a PacError kind; None for our own bugs."""
    rq = requests.exceptions
    where = f"'{operation}' del PAC '{pac}'"
    if isinstance(exc, rq.ConnectionError) and _certificate_refused(exc):
        # configuration, not the invoice: the PAC is paused until it is fixed (never retried
        # blindly, never accepted silently)
        return PacAccount(
            "CONN-PAC-TLS",
            f"No se pudo verificar el certificado TLS en {where}: el nombre o la CA no "
            "corresponden. Revise la dirección del PAC o configure ca_bundle con la CA de su "
            "red (p. ej. la del proxy que inspecciona TLS).",
            pac=pac,
            operation=operation,
            maybe_sent=False,
        )
    if status == 407 or (isinstance(exc, rq.ProxyError) and _proxy_refused(exc)):
        return _proxy_error(exc, where, pac=pac, operation=operation, status=status)
    if isinstance(exc, rq.ConnectTimeout) or (
        isinstance(exc, rq.ConnectionError) and _never_connected(exc)
    ):
        return PacTransient(
            "CONN-PAC-CONEXION",
            f"No se pudo conectar con {where} (conexión rechazada o sin respuesta).",
            pac=pac,
            operation=operation,
            maybe_sent=False,
        )
    if isinstance(exc, rq.ReadTimeout):
        if write:
            return PacAmbiguous(
                "CONN-PAC-TIMEOUT",
                f"Se envió {where} y no respondió a tiempo; puede que lo haya procesado.",
                pac=pac,
                operation=operation,
            )
        return PacTransient(
            "CONN-PAC-TIMEOUT",
            f"{where[0].upper()}{where[1:]} no respondió a tiempo.",
            pac=pac,
            operation=operation,
        )
    if isinstance(exc, rq.ChunkedEncodingError | rq.ContentDecodingError):
        return garbled(pac, operation, write=write, detail=type(exc).__name__)
    if isinstance(exc, rq.ConnectionError):
        if write:
            return PacAmbiguous(
                "CONN-PAC-CORTE",
                f"La conexión se cortó después de enviar {where}; puede que lo haya procesado.",
                pac=pac,
                operation=operation,
            )
        return PacTransient(
            "CONN-PAC-CORTE",
            f"La conexión se cortó durante {where}.",
            pac=pac,
            operation=operation,
        )
    if isinstance(exc, rq.RequestException):
        return PacTransient(
            "CONN-PAC-HTTP",
            f"Error de comunicación en {where}: {type(exc).__name__}.",
            pac=pac,
            operation=operation,
            maybe_sent=write,
        )
    if isinstance(exc, Fault):
        fcode = str(exc.code or "")
        text = str(exc.message or "")[:300]
        if status in (404, 405, 410):  # no such service there: configuration, not the invoice
            return PacTransient(
                f"HTTP-{status}",
                f"No existe el servicio '{operation}' del PAC '{pac}' en la dirección "
                "configurada: revise la URL.",
                pac=pac,
                operation=operation,
                maybe_sent=False,
            )
        if "client" in fcode.lower() or "sender" in fcode.lower():
            return PacInvalid(
                f"SOAP-{fcode.split(':')[-1] or 'Client'}",
                f"El PAC '{pac}' rechazó la solicitud '{operation}': {text}",
                pac=pac,
                operation=operation,
            )
        return PacTransient(
            f"HTTP-{status}" if status and status >= 500 else "CONN-PAC-FALLA",
            f"El PAC '{pac}' tuvo una falla interna en '{operation}': {text}",
            pac=pac,
            operation=operation,
            maybe_sent=write,
        )
    if status is not None and status >= 300 and not isinstance(exc, TransportError):
        # a non-SOAP error page (HTML, text) under an HTTP error status: judge by the status
        exc = TransportError(str(exc), status_code=status)
    if isinstance(exc, TransportError):
        code = exc.status_code or status or 0
        if code in (404, 405, 410):
            return PacTransient(
                f"HTTP-{code}",
                f"No existe el servicio '{operation}' del PAC '{pac}' en la dirección "
                "configurada: revise la URL.",
                pac=pac,
                operation=operation,
                maybe_sent=False,
            )
        if 300 <= code < 400:  # not followed (see _QuietTransport.post): nothing processed
            return PacTransient(
                f"HTTP-{code}",
                f"El PAC '{pac}' redirige '{operation}' a otra dirección: revise la URL "
                "configurada.",
                pac=pac,
                operation=operation,
                maybe_sent=False,
            )
        if code in (401, 403):
            return PacAccount(
                f"HTTP-{code}",
                f"El PAC '{pac}' negó el acceso a '{operation}' (credenciales o permisos).",
                pac=pac,
                operation=operation,
            )
        if code == 200 or code == 0:
            return garbled(pac, operation, write=write, detail="XML no válido")
        return PacTransient(
            f"HTTP-{code}",
            f"El PAC '{pac}' respondió HTTP {code} a '{operation}'.",
            pac=pac,
            operation=operation,
            maybe_sent=write,
        )
    if not posted:
        if isinstance(exc, ZeepValidationError | TypeError | ValueError):
            return PacInvalid(
                "CONN-PAC-SOLICITUD",
                f"No se pudo construir la solicitud '{operation}' para el PAC '{pac}': {exc}",
                pac=pac,
                operation=operation,
            )
        return None
    if isinstance(exc, ZeepError | etree.LxmlError | ValueError | TypeError | AttributeError):
        return garbled(pac, operation, write=write, detail=type(exc).__name__)
    return None
