"""One interface for every PAC, and the SOAP plumbing the drivers share.

``PacDriver`` is what the pipeline talks to. A driver that lacks an operation inherits the
default method, which raises :class:`~connector.pac.errors.PacUnsupported` naming the PAC and
the operation.

The plumbing (:class:`SoapService`) gives every driver the same guarantees:

* WSDLs are read from the package (``connector/pac/wsdl``), parsed once per process and never
  fetched from the network; the service address comes from configuration.
* One ``requests.Session`` per driver (connections are reused, the pool is sized for the
  number of requests in flight), TLS verified, a (connect, read) timeout on every call.
* Bodies are never logged (zeep's transport logs whole envelopes at DEBUG, passwords
  included); secrets are redacted from every message a driver raises.
* Every failure becomes one of the kinds in :mod:`connector.pac.errors`.
"""

from __future__ import annotations

import logging
import os
import re
import ssl
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any, ClassVar, TypeVar
from urllib.parse import unquote

import requests
import urllib3
from lxml import etree
from requests.adapters import HTTPAdapter
from requests.utils import get_environ_proxies, select_proxy
from urllib3.util.retry import Retry
from zeep import Client, Settings
from zeep.exceptions import Error as ZeepError
from zeep.exceptions import Fault, TransportError
from zeep.exceptions import ValidationError as ZeepValidationError
from zeep.transports import Transport
from zeep.wsdl import Document

from connector.cfdi.model import Comprobante

from .errors import (
    PacAccount,
    PacAmbiguous,
    PacError,
    PacInvalid,
    PacTransient,
    PacUnsupported,
)
from .soap_lxml import lxml_operation

log = logging.getLogger(__name__)

WSDL_DIR = Path(__file__).resolve().parent / "wsdl"
NS_TFD = "http://www.sat.gob.mx/TimbreFiscalDigital"

T = TypeVar("T")


# --- Results ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StampResult:
    """A stamped CFDI as the PAC returned it.

    ``previously_stamped`` is True when the PAC already had this invoice (FEL/Finkok 307, or a
    stamp found by ``recover``): the UUID is the existing one, never a new one.
    """

    uuid: str
    xml: bytes
    fecha_timbrado: str
    no_certificado_sat: str
    previously_stamped: bool = False
    creditos_restantes: int | None = None
    code: str | None = None
    message: str | None = None

    def __repr__(self) -> str:
        return (
            f"StampResult(uuid={self.uuid!r}, fecha_timbrado={self.fecha_timbrado!r}, "
            f"previously_stamped={self.previously_stamped}, xml=<{len(self.xml)} bytes>)"
        )


@dataclass(frozen=True, slots=True)
class CancelResult:
    """Outcome of a cancellation request for one UUID.

    ``estatus`` is the PAC's/SAT's wording (e.g. ``Cancelado``, ``En proceso``);
    ``accepted`` is True when the request was accepted (cancelled or pending the
    receptor's answer).
    """

    uuid: str
    accepted: bool
    estatus: str | None = None
    es_cancelable: str | None = None
    acuse: bytes | None = None
    code: str | None = None
    message: str | None = None


@dataclass(frozen=True, slots=True)
class CreditPackage:
    nombre: str | None
    timbres: int | None
    restantes: int | None
    usados: int | None
    vigente: bool | None
    vencimiento: str | None = None


@dataclass(frozen=True, slots=True)
class Credits:
    """Stamps left in the account (``restantes``) and used, with the packages when known."""

    restantes: int | None
    usados: int | None = None
    paquetes: tuple[CreditPackage, ...] = ()


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds to establish a connection and to wait for the reply of one call."""

    connect: float = 5.0
    read: float = 30.0

    def as_tuple(self) -> tuple[float, float]:
        return (self.connect, self.read)


# --- The interface ---------------------------------------------------------------------------


class PacDriver(ABC):
    """What the pipeline needs from a PAC. Unsupported operations raise ``PacUnsupported``."""

    name: ClassVar[str] = "pac"

    @abstractmethod
    def stamp(self, sealed_xml: bytes, referencia: str) -> StampResult:
        """Stamp a sealed CFDI. The identical bytes may be sent again (307 → existing stamp)."""

    def generate(self, c: Comprobante, referencia: str) -> StampResult:
        """Remote generation: the PAC builds, seals and stamps from the invoice data."""
        raise PacUnsupported(self.name, "generate")

    def recover(self, referencia: str) -> StampResult:
        """The stamp the PAC made for ``referencia``; ``PacNotFound`` when it never did."""
        raise PacUnsupported(self.name, "recover")

    def recover_generated(self, referencia: str) -> StampResult:
        """Like ``recover``, for a remote ``generate`` (a PAC may keep those apart)."""
        return self.recover(referencia)

    def cancel(
        self,
        uuid: str,
        motivo: str,
        folio_sustitucion: str | None,
        rfc_receptor: str,
        total: Decimal,
    ) -> CancelResult:
        raise PacUnsupported(self.name, "cancel")

    def credits(self) -> Credits:
        raise PacUnsupported(self.name, "credits")

    def acuse_envio(self, uuid: str) -> bytes:
        raise PacUnsupported(self.name, "acuse_envio")

    def acuse_cancelacion(self, uuid: str) -> bytes:
        raise PacUnsupported(self.name, "acuse_cancelacion")

    def change_password(self, new: str) -> None:
        raise PacUnsupported(self.name, "change_password")

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release network resources."""

    def __enter__(self: T) -> T:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- Secrets ---------------------------------------------------------------------------------


class Secret:
    """A string that never shows itself in ``repr``/``str`` (passwords, key passwords)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


def redact(text: str, secrets: Iterable[str]) -> str:
    for s in secrets:
        if s and len(s) >= 3:
            text = text.replace(s, "***")
    return text


# --- SOAP plumbing ---------------------------------------------------------------------------


_SETTINGS = Settings(
    strict=False,
    xml_huge_tree=False,
    forbid_dtd=True,
    forbid_entities=True,
    forbid_external=True,
)


class _OfflineLoader(Transport):
    """Loads the shipped WSDL/XSD files from disk and refuses every network fetch."""

    def _load_remote_data(self, url: str) -> bytes:
        raise TransportError(f"El conector no descarga WSDL/XSD de la red ({url}).")


@cache
def _loader_transport() -> Transport:
    return _OfflineLoader()


_doc_lock = threading.Lock()
_documents: dict[str, Document] = {}


def wsdl_document(filename: str) -> Document:
    """The parsed WSDL ``connector/pac/wsdl/<filename>``, read from disk once per process."""
    with _doc_lock:
        doc = _documents.get(filename)
        if doc is None:
            path = WSDL_DIR / filename
            doc = Document(str(path), _loader_transport(), settings=_SETTINGS)
            _documents[filename] = doc
        return doc


class _QuietTransport(Transport):
    """zeep's transport without body logging; remembers per thread whether the POST went out
    and the reply's status (what :func:`classify_exception` needs)."""

    def __init__(self, session: requests.Session, timeouts: Timeouts) -> None:
        super().__init__(
            session=session,
            timeout=timeouts.connect + timeouts.read,
            operation_timeout=timeouts.as_tuple(),
        )
        self.local = threading.local()
        self._routes: dict[str, tuple[dict[str, str], bool | str]] = {}

    def route(self, address: str) -> tuple[dict[str, str], bool | str]:
        """(proxies, verify) for ``address``, worked out once: the session's configured proxy,
        else the environment's (``HTTPS_PROXY``/``HTTP_PROXY``/``ALL_PROXY`` unless
        ``NO_PROXY`` covers the host); the configured CA bundle, else ``REQUESTS_CA_BUNDLE``/
        ``CURL_CA_BUNDLE``, else the system's (certifi's) bundle. The session itself does not
        read the environment (``trust_env=False``): requests would walk ``os.environ`` and
        look for ``~/.netrc`` on every call."""
        got = self._routes.get(address)
        if got is None:
            session = self.session
            proxies = dict(session.proxies) or get_environ_proxies(address)
            verify: bool | str = session.verify  # type: ignore[assignment]
            if verify is True:
                verify = (
                    os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
                )
            got = self._routes[address] = (proxies, verify)
        return got

    def via_proxy(self, address: str) -> bool:
        proxies = self.route(address)[0]
        return select_proxy(address, proxies) is not None

    def post(self, address: str, message: Any, headers: dict[str, str]) -> requests.Response:
        """One POST through the session, with :meth:`route`'s proxy and CA bundle; redirects
        are not followed: a SOAP endpoint that redirects is a wrong address, and following a
        307 would send the body again."""
        self.local.posted = True
        self.local.status = None
        proxies, verify = self.route(address)
        response = self.session.post(
            address,
            data=message,
            headers=headers,
            timeout=self.operation_timeout,
            allow_redirects=False,
            proxies=proxies,
            verify=verify,
        )
        self.local.status = response.status_code
        log.debug("PAC %s respondió HTTP %s", address, response.status_code)
        return response

    def load(self, url: str) -> bytes:  # never fetch WSDL/XSD from the network
        raise TransportError("El conector no descarga WSDL/XSD de la red.")


# urllib3 never sends a request again by itself: no retry of any kind (a stamp is not
# idempotent; the retries are ResilientPac's, which recovers by referencia first).
NO_RETRIES = Retry(total=0, connect=0, read=False, redirect=False, status=0, other=0)


def make_session(
    pool_size: int = 10,
    verify: bool | str = True,
    proxy: str | None = None,
) -> requests.Session:
    """A session with a keep-alive pool sized for ``pool_size`` requests in flight, TLS
    verified with ``verify`` (True: ``REQUESTS_CA_BUNDLE`` or the system's/certifi's bundle;
    a path: that CA file or folder, e.g. a company's TLS-inspecting CA). ``proxy``
    (``http://user:password@host:port``) carries every request of the session (HTTPS through
    a CONNECT tunnel, with Basic ``Proxy-Authorization``); without it the environment's
    ``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY`` apply (read once per address by the
    transport)."""
    if verify is False:
        raise ValueError("La verificación TLS no se puede desactivar.")
    session = requests.Session()
    size = max(1, pool_size)
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=size, max_retries=NO_RETRIES)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.verify = verify
    session.trust_env = False  # the environment is read once per address (_QuietTransport.route)
    if proxy:
        session.proxies = {"http": proxy, "https": proxy}
    return session


class SoapService:
    """One SOAP service of one WSDL, bound to a configured address."""

    def __init__(
        self,
        wsdl_filename: str,
        address: str,
        *,
        session: requests.Session,
        timeouts: Timeouts,
        binding: str | None = None,
        lxml_operations: Iterable[str] = (),
    ) -> None:
        doc = wsdl_document(wsdl_filename)
        self.transport = _QuietTransport(session, timeouts)
        self.client = Client(doc, transport=self.transport, settings=_SETTINGS)
        if binding is None:
            binding = next(iter(doc.bindings))
        self.address = address
        self.service = self.client.create_service(binding, address)
        # the operations sent and read by the lxml template path instead of zeep (one path
        # per operation: see connector.pac.soap_lxml)
        self.lxml_operations = {
            name: lxml_operation(doc.bindings[binding], name) for name in lxml_operations
        }

    def type(self, name: str) -> Any:
        """A complex type factory by local name (searched in every namespace of the WSDL)."""
        for ns in self.client.wsdl.types.prefix_map.values():
            try:
                return self.client.get_type(f"{{{ns}}}{name}")
            except (LookupError, ZeepError):
                continue
        raise LookupError(name)

    def call(
        self,
        operation: str,
        *,
        pac: str,
        write: bool,
        secrets: Iterable[str],
        **params: Any,
    ) -> Any:
        """Call ``operation`` (by the lxml template path when it is one of
        ``lxml_operations``, else by zeep) and turn every failure into a PacError of the right
        kind."""
        template = self.lxml_operations.get(operation)
        if template is not None:

            def send() -> Any:
                body = template.envelope(params)
                response = self.transport.post(self.address, body, dict(template.headers))
                return template.reply(response.status_code, response.content)

        else:

            def send() -> Any:
                return getattr(self.service, operation)(**params)

        return self._classified(
            send,
            operation=operation,
            pac=pac,
            write=write,
            secrets=secrets,
        )

    def _classified(
        self,
        send: Callable[[], Any],
        *,
        operation: str,
        pac: str,
        write: bool,
        secrets: Iterable[str],
    ) -> Any:
        """Run one request; any failure becomes a PacError of the right kind, with secrets
        redacted."""
        local = self.transport.local
        local.posted = False
        local.status = None
        try:
            return send()
        except PacError:
            raise
        except Exception as exc:
            posted = getattr(local, "posted", False)
            status = getattr(local, "status", None)
            err = classify_exception(
                exc, pac=pac, operation=operation, write=write, posted=posted, status=status
            )
            if err is None:
                raise
            err.message = redact(err.message, secrets)
            raise err from None


class SoapPacDriver(PacDriver):
    """A driver whose SOAP services share one HTTP session (connections reused across calls)."""

    def _open(
        self,
        session: requests.Session | None,
        pool_size: int,
        verify: bool | str,
        timeouts: Timeouts | None,
        proxy: str | None = None,
    ) -> None:
        self.timeouts = timeouts or Timeouts()
        self._own_session = session is None
        self.session = session or make_session(pool_size, verify, proxy)
        # the proxy's password, to be redacted like the PAC's own secrets
        self._proxy_password = urllib3.util.parse_url(proxy).auth if proxy else None

    def _service(
        self, wsdl_filename: str, url: str | None, lxml_operations: Iterable[str] = ()
    ) -> SoapService | None:
        if not url:
            return None
        return SoapService(
            wsdl_filename,
            url,
            session=self.session,
            timeouts=self.timeouts,
            lxml_operations=lxml_operations,
        )

    def close(self) -> None:
        if self._own_session:
            self.session.close()

    @property
    def _secrets(self) -> list[str]:
        """Every secret this driver holds, to be redacted from any text it reports."""
        return self._network_secrets

    @property
    def _network_secrets(self) -> list[str]:
        auth = getattr(self, "_proxy_password", None)
        if not auth or ":" not in auth:
            return []
        password = auth.partition(":")[2]
        return [unquote(password), password]  # as configured and as it travels in the URL

    def _clean(self, text: Any) -> str:
        return redact(str(text or "").strip(), self._secrets)


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


# --- Reading stamped XML ---------------------------------------------------------------------

_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, huge_tree=False, remove_blank_text=False
)


def tfd_of(xml: bytes) -> dict[str, str] | None:
    """The TimbreFiscalDigital attributes of a stamped CFDI, or None when absent/unparsable."""
    try:
        root = etree.fromstring(xml, _PARSER)
    except (etree.XMLSyntaxError, ValueError):
        return None
    node = root.find(f".//{{{NS_TFD}}}TimbreFiscalDigital")
    if node is None:
        return None
    return {k: v for k, v in node.attrib.items()}


def to_bytes(value: Any) -> bytes:
    if value is None:
        return b""
    if isinstance(value, bytes):
        return value
    return str(value).encode("utf-8")


def iso(value: Any) -> str:
    if isinstance(value, datetime):
        return value.replace(tzinfo=None, microsecond=0).isoformat()
    return str(value or "")


def stamp_result_from_xml(
    xml: bytes,
    *,
    pac: str,
    operation: str,
    write: bool,
    previously_stamped: bool = False,
    creditos_restantes: int | None = None,
    code: str | None = None,
    message: str | None = None,
    fallback: dict[str, Any] | None = None,
) -> StampResult:
    """Build a StampResult from the stamped XML (the TFD is the truth); garbled if unusable."""
    tfd = tfd_of(xml) if xml else None
    fb = fallback or {}
    uuid = (tfd or {}).get("UUID") or fb.get("uuid")
    if not xml or not uuid:
        raise garbled(pac, operation, write=write, detail="sin XML timbrado o sin UUID")
    return StampResult(
        uuid=str(uuid).upper(),
        xml=xml,
        fecha_timbrado=(tfd or {}).get("FechaTimbrado") or iso(fb.get("fecha")),
        no_certificado_sat=(tfd or {}).get("NoCertificadoSAT") or str(fb.get("cert") or ""),
        previously_stamped=previously_stamped,
        creditos_restantes=creditos_restantes,
        code=code,
        message=message,
    )


@dataclass
class _Field:
    """Small helper to read attributes from zeep objects that may be None."""

    obj: Any
    missing: Any = field(default=None)

    def __call__(self, name: str) -> Any:
        if self.obj is None:
            return self.missing
        try:
            return self.obj[name]
        except (KeyError, TypeError, AttributeError):
            return getattr(self.obj, name, self.missing)


def reader(obj: Any) -> Callable[[str], Any]:
    return _Field(obj)
