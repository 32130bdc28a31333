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
import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import requests
import urllib3
from lxml import etree
from zeep import Client, Settings
from zeep.exceptions import DTDForbidden, Fault, TransportError, XMLParseError
from zeep.exceptions import Error as ZeepError
from zeep.exceptions import ValidationError as ZeepValidationError
from zeep.transports import Transport
from zeep.wsdl import Document
from zeep.xsd.types.builtins import Boolean, DateTime, Integer, Long, String

from connector.cfdi.model import Comprobante

from . import http1
from .errors import (
    PacAccount,
    PacAmbiguous,
    PacError,
    PacInvalid,
    PacTransient,
    PacUnsupported,
)

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
    """zeep's transport without body logging; remembers per thread if a POST went out."""

    def __init__(self, session: requests.Session, timeouts: Timeouts) -> None:
        super().__init__(
            session=session,
            timeout=timeouts.connect + timeouts.read,
            operation_timeout=timeouts.as_tuple(),
        )
        self.local = threading.local()
        self._env: dict[str, dict[str, Any]] = {}
        self._templates: dict[tuple[str, ...], requests.PreparedRequest] = {}
        self._routes: dict[tuple[str, ...], tuple[Any, str, dict[str, str], Any]] = {}
        self._timeouts = timeouts

    def post(self, address: str, message: Any, headers: dict[str, str]) -> requests.Response:
        self.local.posted = True
        self.local.status = None
        # What Session.post does, with the environment's settings (proxies, CA bundle) read
        # once per address: requests otherwise walks os.environ twice on every call.
        session = self.session
        env = self._environment(address)
        prepared = self._prepare(address, message, headers)
        response = session.send(
            prepared,
            timeout=self.operation_timeout,
            allow_redirects=True,
            proxies=dict(env["proxies"]),
            stream=env["stream"],
            verify=env["verify"],
            cert=env["cert"],
        )
        self.local.status = response.status_code
        log.debug("PAC %s respondió HTTP %s", address, response.status_code)
        return response

    def post_bytes(
        self, address: str, message: bytes, headers: dict[str, str]
    ) -> tuple[int, bytes]:
        """(status, body) of a POST through :mod:`connector.pac.http1` (keep-alive pool of
        the session's adapter, same TLS settings and timeouts as :meth:`post`, the same
        headers on the wire) without building a requests ``Response``; failures are the
        exceptions requests raises for the same cases. With a proxy, cookies, auth, hooks or
        a foreign adapter it is :meth:`post`.

        A reply that sets a cookie or redirects becomes a requests ``Response``: the cookies
        go to the session's jar (later calls then take :meth:`post`) and redirects are
        followed as ``Session.send`` does, one hop at a time through the session, except
        that a POST is never sent again to a URL it already went to (a 307/308 loop returns
        the redirect itself)."""
        session = self.session
        env = self._environment(address)
        adapter = session.get_adapter(address)
        if (
            env["proxies"]
            or session.cookies
            or session.auth
            or session.hooks.get("response")
            or not isinstance(adapter, http1.Adapter)
        ):
            response = self.post(address, message, headers)
            return response.status_code, response.content
        self.local.posted = True
        self.local.status = None
        key = (address, *sorted(headers.items()))
        cached = self._routes.get(key)
        if cached is None or cached[2] is not adapter:
            template = self._prepare(address, b"", headers)
            assert template.url is not None
            target = http1.route(
                template.url, template.path_url, dict(template.headers), env["verify"], env["cert"]
            )
            cached = (target, template, adapter, adapter.fast_pool)
            self._routes[key] = cached
        target, template, _, pool = cached
        timeout = self._timeouts
        try:
            reply = pool.post(target, message, timeout.connect, timeout.read, template)
        except requests.exceptions.RequestException as exc:
            partial = exc.response
            if isinstance(partial, http1.Reply) and "set-cookie" in partial.headers:
                # the body broke after the headers: requests has stored the cookies by then
                requests.cookies.extract_cookies_to_jar(session.cookies, template, partial)
            raise
        self.local.status = reply.status
        if "set-cookie" in reply.headers or reply.redirect:
            response = self._follow(reply, template, message, env)
            self.local.status = response.status_code
            return response.status_code, response.content
        log.debug("PAC %s respondió HTTP %s", address, reply.status)
        return reply.status, reply.body

    def _follow(
        self,
        reply: http1.Reply,
        template: requests.PreparedRequest,
        message: bytes,
        env: dict[str, Any],
    ) -> requests.Response:
        """What ``Session.send`` does with a reply that sets cookies or redirects: cookies to
        the jar, then each redirect sent through the session (never the same POST twice to
        one URL)."""
        session = self.session
        prepared = template.copy()
        prepared.body = message
        prepared.headers["Content-Length"] = str(len(message))
        response = requests.Response()
        response.status_code = reply.status
        response.headers = requests.structures.CaseInsensitiveDict(
            (name, reply.headers.get(name)) for name, _ in reply.headers.items
        )
        response.encoding = requests.utils.get_encoding_from_headers(response.headers)
        response.raw = reply
        response.reason = reply.reason
        response.url = prepared.url or ""
        response.request = prepared
        response._content = reply.body
        response._content_consumed = True
        requests.cookies.extract_cookies_to_jar(response.cookies, prepared, reply)
        requests.cookies.extract_cookies_to_jar(session.cookies, prepared, reply)
        posted = {prepared.url}
        history: list[requests.Response] = []
        request = prepared
        while response.is_redirect:
            if len(history) >= session.max_redirects:
                raise requests.exceptions.TooManyRedirects(
                    f"Exceeded {session.max_redirects} redirects.", response=response
                )
            # the next request exactly as Session.resolve_redirects builds it (method,
            # body, headers, cookies), without sending it
            hop = session.resolve_redirects(response, request, yield_requests=True)
            nxt: requests.PreparedRequest = next(iter(hop))  # type: ignore[call-overload]
            if nxt.body is not None and nxt.url in posted:
                break  # the same body to the same URL again: return the redirect as it is
            if nxt.body is not None:
                posted.add(nxt.url)
            history.append(response)
            response = session.send(
                nxt,
                allow_redirects=False,
                stream=False,
                timeout=self.operation_timeout,
                verify=env["verify"],
                cert=env["cert"],
                proxies={},
            )
            response.history = list(history)
            request = nxt
        return response

    def _environment(self, address: str) -> dict[str, Any]:
        """Session.merge_environment_settings for ``address``, read once (requests otherwise
        walks os.environ twice per call); verify passed explicitly: a configured CA bundle
        wins over REQUESTS_CA_BUNDLE."""
        env = self._env.get(address)
        if env is None:
            session = self.session
            env = session.merge_environment_settings(address, {}, None, session.verify, None)
            self._env[address] = env
        return env

    def _prepare(
        self, address: str, message: Any, headers: dict[str, str]
    ) -> requests.PreparedRequest:
        """``session.prepare_request`` of the POST; the URL, merged headers and hooks are
        prepared once per address and headers and copied (the same request, far less work),
        unless the session has cookies or auth to merge."""
        session = self.session
        if not isinstance(message, bytes) or session.cookies or session.auth:
            return session.prepare_request(
                requests.Request("POST", address, data=message, headers=headers)
            )
        key = (address, *sorted(headers.items()))
        template = self._templates.get(key)
        if template is None:
            template = session.prepare_request(
                requests.Request("POST", address, data=b"", headers=headers)
            )
            self._templates[key] = template
        prepared = template.copy()
        prepared.body = message
        prepared.headers["Content-Length"] = str(len(message))
        return prepared

    def load(self, url: str) -> bytes:  # never fetch WSDL/XSD from the network
        raise TransportError("El conector no descarga WSDL/XSD de la red.")


def make_session(pool_size: int = 10, verify: bool | str = True) -> requests.Session:
    """A session with a connection pool sized for ``pool_size`` requests in flight."""
    if verify is False:
        raise ValueError("La verificación TLS no se puede desactivar.")
    session = requests.Session()
    adapter = http1.Adapter(max(1, pool_size))
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.verify = verify
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
    ) -> None:
        doc = wsdl_document(wsdl_filename)
        self.transport = _QuietTransport(session, timeouts)
        self.client = Client(doc, transport=self.transport, settings=_SETTINGS)
        if binding is None:
            binding = next(iter(doc.bindings))
        self.address = address
        self.service = self.client.create_service(binding, address)
        self._fast: dict[str, FastOperation | None] = {}

    def fast_op(self, operation: str) -> FastOperation | None:
        """The hand-built envelope for ``operation``, or None when zeep must build it."""
        try:
            return self._fast[operation]
        except KeyError:
            pass
        op = fast_operation(self.service._binding, operation)
        self._fast[operation] = op
        return op

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
        """Call ``operation`` and turn every failure into a PacError of the right kind."""
        return self._classified(
            lambda: getattr(self.service, operation)(**params),
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
        """Run one request; any failure becomes a PacError of the right kind (one place for
        both the zeep path and the hand-built one), with secrets redacted."""
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

    def call_fast(
        self,
        operation: str,
        *,
        pac: str,
        write: bool,
        secrets: Iterable[str],
        **params: str | None,
    ) -> Any:
        """Like :meth:`call` for an operation of string parameters and a flat-ish result.

        The envelope is built with lxml from the element names, namespace and SOAPAction zeep
        read from the shipped WSDL (the same bytes zeep would send), and the reply is read with
        a safe parser straight into dicts (the values zeep's types would give). Operations the
        WSDL does not allow this for go through zeep. Failures are classified exactly as
        :meth:`call` classifies zeep's.
        """
        fop = self.fast_op(operation)
        if fop is None:
            return self.call(operation, pac=pac, write=write, secrets=secrets, **params)

        def send() -> Any:
            body = fop.envelope(params)
            status, content = self.transport.post_bytes(self.address, body, fop.headers)
            return fop.reply(status, content)

        return self._classified(send, operation=operation, pac=pac, write=write, secrets=secrets)


class SoapPacDriver(PacDriver):
    """A driver whose SOAP services share one HTTP session (connections reused across calls)."""

    def _open(
        self,
        session: requests.Session | None,
        pool_size: int,
        verify: bool | str,
        timeouts: Timeouts | None,
    ) -> None:
        self.timeouts = timeouts or Timeouts()
        self._own_session = session is None
        self.session = session or make_session(pool_size, verify)

    def _service(self, wsdl_filename: str, url: str | None) -> SoapService | None:
        if not url:
            return None
        return SoapService(wsdl_filename, url, session=self.session, timeouts=self.timeouts)

    def close(self) -> None:
        if self._own_session:
            self.session.close()

    @property
    def _secrets(self) -> list[str]:
        """Every secret this driver holds, to be redacted from any text it reports."""
        return []

    def _clean(self, text: Any) -> str:
        return redact(str(text or "").strip(), self._secrets)


_SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
_XSI_NIL = "{http://www.w3.org/2001/XMLSchema-instance}nil"
_ENVELOPE = f"{{{_SOAP_ENV}}}Envelope"
_BODY = f"{{{_SOAP_ENV}}}Body"
_FAULT = f"{{{_SOAP_ENV}}}Fault"
_REPLY_PARSER = etree.XMLParser(
    resolve_entities=False,
    no_network=True,
    huge_tree=False,
    load_dtd=False,
    remove_comments=True,
)


class SoapValues(dict[str, Any]):
    """A reply read by the fast path: item and attribute access, like zeep's objects."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


# lxml refuses text with an ASCII control character other than tab and newline, U+FFFE, U+FFFF
# (ValueError) or a lone surrogate (UnicodeEncodeError), writes \r as &#13;, and writes every
# other character as it is, except & < > (&amp; &lt; &gt;): checked against lxml for every code
# point in tests/pac/test_fast_soap_equivalence.py.
_CONTROLS = bytes(c for c in range(0x20) if c not in (0x09, 0x0A))
_Template = tuple[bytes, tuple[tuple[str, bytes, bytes], ...], bytes]


def _plain_utf8(value: str) -> bytes | None:
    """``value`` as lxml writes it in an element's text (UTF-8, & < > escaped), or None when
    it holds a character lxml escapes otherwise or refuses (left to lxml itself)."""
    try:
        data = value.encode("utf-8")
    except UnicodeEncodeError:
        return None
    if len(data.translate(None, _CONTROLS)) != len(data):
        return None
    # U+FFFE and U+FFFF are EF BF BE / EF BF BF; EF only ever starts a character
    if b"\xef" in data and (b"\xef\xbf\xbe" in data or b"\xef\xbf\xbf" in data):
        return None
    return data.replace(b"&", b"&amp;").replace(b"<", b"&lt;").replace(b">", b"&gt;")


class _Spec(dict[str, tuple[str, Any]]):
    """How to read a complex type: {element qname: (field name, converter | nested spec |
    None for text kept as it is)}, and the field names in order."""

    names: tuple[str, ...] = ()


_DATETIME_19 = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]")
_zeep_datetime = DateTime().pythonvalue


def _boolean(value: str) -> bool:
    """zeep's xsd:boolean: 'true' or '1' once the whitespace around it is gone (zeep turns
    tabs and newlines into spaces first, which changes nothing that strip leaves)."""
    return value == "true" or value == "1" or value.strip() in ("true", "1")


def _datetime(value: str) -> Any:
    """zeep's xsd:dateTime; the usual ``YYYY-MM-DDTHH:MM:SS`` (no fraction, no zone) read
    directly — isodate gives the same naive datetime for it — anything else by zeep."""
    if len(value) == 19 and _DATETIME_19.fullmatch(value):
        try:
            return datetime(
                int(value[0:4]),
                int(value[5:7]),
                int(value[8:10]),
                int(value[11:13]),
                int(value[14:16]),
                int(value[17:19]),
            )
        except ValueError:
            pass  # e.g. 31 of February: zeep's own error
    return _zeep_datetime(value)


def _converter(xsd_type: Any) -> Callable[[str], Any] | None:
    """The function reading a builtin type's text: the same zeep calls when the type's
    ``pythonvalue`` is one of those below (None: the text as it is), else zeep's own."""
    fn = getattr(type(xsd_type), "pythonvalue", None)
    if fn is String.pythonvalue:
        return None
    if fn is Long.pythonvalue or fn is Integer.pythonvalue:
        return int
    if fn is Boolean.pythonvalue:
        return _boolean
    if fn is DateTime.pythonvalue:
        return _datetime
    return xsd_type.pythonvalue  # type: ignore[no-any-return]


def _result_spec(xsd_type: Any, depth: int = 0) -> _Spec | None:
    """How to read a complex type's children; None if not plain (arrays, any, attributes)."""
    from zeep.xsd.types.builtins import BuiltinType
    from zeep.xsd.types.complex import ComplexType

    if depth > 2 or not isinstance(xsd_type, ComplexType) or xsd_type.attributes:
        return None
    spec = _Spec()
    for name, el in xsd_type.elements:
        qname = getattr(el, "qname", None)
        if qname is None or getattr(el, "max_occurs", 1) != 1:
            return None
        if isinstance(el.type, BuiltinType):
            spec[str(qname)] = (name, _converter(el.type))
        else:
            sub = _result_spec(el.type, depth + 1)
            if sub is None:
                return None
            spec[str(qname)] = (name, sub)
    spec.names = tuple(name for name, _ in spec.values())
    return spec


def _read(node: Any, spec: _Spec) -> SoapValues:
    out = SoapValues.fromkeys(spec.names)
    for child in node:
        entry = spec.get(child.tag)  # a processing instruction's tag is no key either
        if entry is None or child.get(_XSI_NIL) in ("true", "1"):
            continue
        name, conv = entry
        if conv is None:
            text = child.text
            if text is not None:
                out[name] = text
        elif isinstance(conv, _Spec):
            out[name] = _read(child, conv)
        elif child.text is not None:
            try:
                out[name] = conv(child.text)
            except (TypeError, ValueError):  # zeep gives None for an unreadable value too
                out[name] = None
    return out


@dataclass(frozen=True)
class FastOperation:
    """One document/literal operation whose envelope we build and whose reply we read."""

    name: str
    request_tag: str
    params: tuple[tuple[str, str], ...]  # (keyword, element qname), WSDL order
    headers: dict[str, str]
    result_tag: str
    result: _Spec

    _keys: frozenset[str] = field(init=False, repr=False, compare=False)
    _text: _Template | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_keys", frozenset(k for k, _ in self.params))
        object.__setattr__(self, "_text", self._text_template())

    def _text_template(self) -> _Template | None:
        """(head, ((keyword, open tag, close tag), …), tail): the envelope lxml writes, as
        bytes around the parameters' values; None when this operation's envelope is not that
        simple (a parameter outside the request's namespace) or does not come out equal."""
        req = etree.QName(self.request_tag)
        head = (
            "<?xml version='1.0' encoding='utf-8'?>\n"
            f'<soap-env:Envelope xmlns:soap-env="{_SOAP_ENV}"><soap-env:Body>'
            f'<ns0:{req.localname} xmlns:ns0="{req.namespace}">'
        ).encode()
        chunks = []
        for key, tag in self.params:
            q = etree.QName(tag)
            if q.namespace != req.namespace:
                return None
            chunks.append((key, f"<ns0:{q.localname}>".encode(), f"</ns0:{q.localname}>".encode()))
        tail = f"</ns0:{req.localname}></soap-env:Body></soap-env:Envelope>".encode()
        text = (head, tuple(chunks), tail)
        probe: dict[str, str | None] = {
            key: f"{key} & <{i}> é" for i, (key, _) in enumerate(self.params)
        }
        if not probe or self._by_text(text, probe) != self._lxml_envelope(probe):
            return None
        return text

    def envelope(self, values: dict[str, str | None]) -> bytes:
        """The request's bytes, the same zeep writes (zeep serializes with lxml)."""
        if not self._keys.issuperset(values):
            unknown = set(values) - self._keys
            raise TypeError(f"{self.name}() got unexpected arguments {sorted(unknown)}")
        if self._text is not None:
            body = self._by_text(self._text, values)
            if body is not None:
                return body
        return self._lxml_envelope(values)

    def _by_text(self, text: _Template, values: dict[str, str | None]) -> bytes | None:
        """The envelope from its template, or None when a value is not plain text (lxml
        then writes it, or refuses it with its own error) or no parameter is given (lxml
        writes an empty request element as ``<ns0:Op/>``)."""
        head, chunks, tail = text
        parts = [head]
        for key, open_tag, close_tag in chunks:
            value = values.get(key)
            if value is None:
                continue
            if not isinstance(value, str):
                raise TypeError(f"{self.name}: '{key}' debe ser texto")
            escaped = _plain_utf8(value)
            if escaped is None:
                return None
            parts += (open_tag, escaped, close_tag)
        if len(parts) == 1:
            return None
        parts.append(tail)
        return b"".join(parts)

    def _lxml_envelope(self, values: dict[str, str | None]) -> bytes:
        env = etree.Element(_ENVELOPE, nsmap={"soap-env": _SOAP_ENV})
        body = etree.SubElement(env, _BODY)
        ns = etree.QName(self.request_tag).namespace
        req = etree.SubElement(body, self.request_tag, nsmap={"ns0": ns})
        for key, tag in self.params:
            value = values.get(key)
            if value is None:
                continue  # minOccurs=0: left out, as zeep does
            if not isinstance(value, str):
                raise TypeError(f"{self.name}: '{key}' debe ser texto")
            etree.SubElement(req, tag).text = value
        return etree.tostring(env, xml_declaration=True, encoding="utf-8")

    def reply(self, status: int, content: bytes) -> SoapValues | None:
        """Read the reply as zeep's SOAP 1.1 binding does (same exceptions for the same cases)."""
        if status in (201, 202) and not content:
            return None
        if status != 200 and not content:
            raise TransportError(
                f"Server returned HTTP status {status} (no content available)",
                status_code=status,
            )
        try:
            root = etree.fromstring(content, _REPLY_PARSER)
        except etree.XMLSyntaxError as exc:
            raise TransportError(
                f"Server returned response ({status}) with invalid XML: {exc}.",
                status_code=status,
            ) from None
        if root.getroottree().docinfo.doctype:
            raise DTDForbidden(root.getroottree().docinfo.doctype, "", "")
        body = root.find(_BODY)
        fault = body.find(_FAULT) if body is not None else None
        if status != 200 or fault is not None:
            if fault is None:
                raise Fault(message="Unknown fault occured", code=None)

            def text(name: str) -> str | None:
                child = fault.find(name)
                return child.text if child is not None else None

            raise Fault(
                message=text("faultstring"), code=text("faultcode"), actor=text("faultactor")
            )
        if root.tag != _ENVELOPE:
            raise etree.XMLSyntaxError(f"no SOAP Envelope: {root.tag}", 0, 0, 0)
        if body is None or len(body) == 0:
            raise XMLParseError("SOAP Body vacío o ausente")
        wrapper = body[0]
        for child in wrapper:
            if child.tag == self.result_tag:
                if child.get(_XSI_NIL) in ("true", "1"):
                    return None
                return _read(child, self.result)
        return None


def fast_operation(binding: Any, operation: str) -> FastOperation | None:
    """A :class:`FastOperation` read from zeep's parsed WSDL, or None when not plain enough.

    Plain: SOAP 1.1 document/literal, request = string elements (minOccurs 0..1), reply = one
    result element whose type has only simple children or one nested level of them.
    """
    from zeep.wsdl.bindings.soap import Soap11Binding
    from zeep.xsd.types.builtins import String

    if not isinstance(binding, Soap11Binding):
        return None
    try:
        op = binding._operations[operation]
        if op.style != "document" or op.input is None or op.output is None:
            return None
        req_el, resp_el = op.input.body, op.output.body
        params = []
        for name, el in req_el.type.elements:
            if not isinstance(el.type, String) or el.max_occurs != 1:
                return None
            params.append((name, str(el.qname)))
        outs = resp_el.type.elements
        if len(outs) != 1 or op.input.header.type.elements or op.output.header.type.elements:
            return None
        result_el = outs[0][1]
        spec = _result_spec(result_el.type)
        if spec is None:
            return None
    except (AttributeError, KeyError, TypeError):
        return None
    return FastOperation(
        name=operation,
        request_tag=str(req_el.qname),
        params=tuple(params),
        headers={
            "SOAPAction": f'"{op.soapaction}"',
            "Content-Type": "text/xml; charset=utf-8",
        },
        result_tag=str(result_el.qname),
        result=spec,
    )


def _never_connected(exc: BaseException) -> bool:
    """True when a requests ConnectionError happened before any byte was sent (urllib3's
    connection errors, or :class:`~connector.pac.http1.NotConnected` from the fast path)."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(
            e,
            urllib3.exceptions.NewConnectionError
            | urllib3.exceptions.ConnectTimeoutError
            | ConnectionRefusedError
            | http1.NotConnected,
        ):
            return True
        if isinstance(e, urllib3.exceptions.MaxRetryError):
            stack.append(e.reason)
        stack.extend(a for a in getattr(e, "args", ()) if isinstance(a, BaseException))
        stack.append(e.__cause__)
        stack.append(e.__context__)
    return False


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
    if isinstance(exc, rq.SSLError):
        return PacTransient(
            "CONN-PAC-TLS",
            f"No se pudo verificar el certificado TLS en {where}: revise la dirección o la CA.",
            pac=pac,
            operation=operation,
        )
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
