"""The sandbox PAC: a real HTTP/1.1 SOAP server on 127.0.0.1.

Over 500 lines for a reason: the table of services and the one HTTP handler that routes them;
the operations themselves are in ``services`` and the decisions in ``stamping``.

Services (each at its own path; ``GET <path>?wsdl`` returns the shipped WSDL with its
``soap:address`` pointing here):

=============================== =============================================================
path                            WSDL (``connector/pac/wsdl/``)
=============================== =============================================================
``/fel/WSCFDI33.svc``           ``fel_WSCFDI33.offline.RECONSTRUCTED.wsdl`` (FEL Timbrado)
``/fel/ConexionRemota.svc``     ``fel_CR33_ConexionRemota_TEST.wsdl`` (FEL Conexión Remota)
``/finkok/servicios/soap/stamp`` ``finkok_stamp.wsdl``
``/finkok/servicios/soap/cancel`` ``finkok_cancel40.wsdl``
``/sat/ConsultaCFDIService.svc`` ``sat_ConsultaCFDIService.offline.RECONSTRUCTED.wsdl``
=============================== =============================================================

Requests are parsed with a safe lxml parser (no entities, no DTD, no network, size limit) and
then read by zeep against the WSDL; replies are written by zeep from the same WSDL.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
from dataclasses import dataclass
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit
from xml.sax.saxutils import escape

from lxml import etree

from . import services
from .faults import Faults
from .stamping import RFC_PROV_CERTIF, PacCertificate, PacEngine, SandboxAccount
from .store import SandboxStore

log = logging.getLogger("connector.pac.sandbox")

WSDL_DIR = Path(__file__).resolve().parents[1] / "wsdl"
NS_SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
MAX_REQUEST_BYTES = 25 * 1024 * 1024
DEMO_CSD_DIR = Path(__file__).resolve().parents[2] / "demo" / "csd"
DEMO_CSD_BASE = "eku9003173c9_csd_2023_30001000000500003416"
DEMO_CSD_PASSWORD = "12345678a"
DEMO_RFC = "EKU9003173C9"


@dataclass(frozen=True)
class ServiceDef:
    key: str
    path: str
    wsdl: str
    binding: str
    handlers: dict[str, services.Handler]


SERVICES: tuple[ServiceDef, ...] = (
    ServiceDef(
        "fel_timbrado",
        "/fel/WSCFDI33.svc",
        "fel_WSCFDI33.offline.RECONSTRUCTED.wsdl",
        "{http://tempuri.org/}soapHttpEndpoint",
        services.FEL_TIMBRADO,
    ),
    ServiceDef(
        "fel_remote",
        "/fel/ConexionRemota.svc",
        "fel_CR33_ConexionRemota_TEST.wsdl",
        "{http://tempuri.org/}soapHttpEndpoint",
        services.FEL_REMOTE,
    ),
    ServiceDef(
        "finkok_stamp",
        "/finkok/servicios/soap/stamp",
        "finkok_stamp.wsdl",
        "{http://facturacion.finkok.com/stamp}Application",
        services.FINKOK_STAMP,
    ),
    ServiceDef(
        "finkok_cancel",
        "/finkok/servicios/soap/cancel",
        "finkok_cancel40.wsdl",
        "{http://facturacion.finkok.com/cancel}Application",
        services.FINKOK_CANCEL,
    ),
    ServiceDef(
        "sat_status",
        "/sat/ConsultaCFDIService.svc",
        "sat_ConsultaCFDIService.offline.RECONSTRUCTED.wsdl",
        "{http://tempuri.org/}BasicHttpBinding_IConsultaCFDIService",
        services.SAT_STATUS,
    ),
)
_BY_PATH = {s.path: s for s in SERVICES}


@cache
def _binding(wsdl: str, binding: str) -> Any:
    """The zeep binding of a shipped WSDL (loaded once per process, from disk only)."""
    import zeep

    client = zeep.Client(str(WSDL_DIR / wsdl))
    return client.wsdl.bindings[binding]


_wsdl_lock = threading.Lock()


def _wsdl_with_address(wsdl: str, url: str) -> bytes:
    tree = etree.parse(
        str(WSDL_DIR / wsdl), etree.XMLParser(resolve_entities=False, no_network=True)
    )
    for tag in (
        "{http://schemas.xmlsoap.org/wsdl/soap/}address",
        "{http://schemas.xmlsoap.org/wsdl/soap12/}address",
    ):
        for el in tree.iter(tag):
            el.set("location", url)
    return etree.tostring(tree, xml_declaration=True, encoding="utf-8")


def _safe_parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
    )


_parsers = threading.local()


def parse_envelope(data: bytes) -> etree._Element:
    """Parse a SOAP request safely; refuses DTDs/entities. Raises ValueError (Spanish)."""
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise ValueError("SBX-XML: la petición SOAP no puede traer DOCTYPE ni entidades")
    parser = getattr(_parsers, "parser", None)
    if parser is None:
        parser = _parsers.parser = _safe_parser()
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise ValueError(f"SBX-XML: la petición no es XML bien formado: {exc.msg}") from None
    if root.getroottree().docinfo.doctype:
        raise ValueError("SBX-XML: la petición SOAP no puede traer DOCTYPE")
    return root


def soap_fault(code: str, message: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<s:Envelope xmlns:s="{NS_SOAP11}"><s:Body><s:Fault>'
        f"<faultcode>s:{code}</faultcode>"
        f'<faultstring xml:lang="es-MX">{escape(message)}</faultstring>'
        "</s:Fault></s:Body></s:Envelope>"
    ).encode()


GARBAGE = b"\x00\x17<<garbled reply>> \xff\xfe not xml at all \x01\x02{]"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], sandbox: SandboxPac) -> None:
        self.sandbox = sandbox
        self.stopping = threading.Event()
        self.open_sockets: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.sockets_lock:
            self.open_sockets.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.sockets_lock:
            self.open_sockets.discard(request)
        super().shutdown_request(request)

    def close_all(self) -> None:
        with self.sockets_lock:
            sockets = list(self.open_sockets)
        for s in sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "SandboxPAC/1.0"
    timeout = 120  # idle keep-alive connections are closed after this
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("%s " + format, self.address_string(), *args)

    # --- plumbing -----------------------------------------------------------------------------

    def setup(self) -> None:
        super().setup()
        # one reply = one segment, sent now: no Nagle / delayed-ACK stalls on keep-alive
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _send(
        self, status: int, body: bytes, content_type: str = "text/xml; charset=utf-8"
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        # headers and body in a single write
        self._headers_buffer.append(b"\r\n" + body)  # type: ignore[attr-defined]  # not in typeshed
        self.flush_headers()

    def _drop(self) -> None:
        """Close the connection without a reply."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    # --- GET: WSDL ----------------------------------------------------------------------------

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        url = urlsplit(self.path)
        svc = _BY_PATH.get(url.path.rstrip("/"))
        if svc is not None and url.query.lower() in ("wsdl", "singlewsdl"):
            body = self.server.sandbox.wsdl(svc.key)
            self._send(200, body)
            return
        if url.path in ("", "/"):
            lines = [f"{s.key}: {self.server.sandbox.base_url}{s.path}" for s in SERVICES]
            self._send(200, ("Sandbox PAC\n" + "\n".join(lines) + "\n").encode(), "text/plain")
            return
        self._send(404, b"SBX-404: ruta desconocida\n", "text/plain; charset=utf-8")

    # --- POST: SOAP ---------------------------------------------------------------------------

    def _read_body(self) -> bytes | None:
        length = self.headers.get("Content-Length")
        if length is None:
            self._send(411, soap_fault("Client", "SBX-HTTP: falta Content-Length"))
            return None
        try:
            size = int(length)
        except ValueError:
            self._send(400, soap_fault("Client", "SBX-HTTP: Content-Length no válido"))
            return None
        if size < 0 or size > MAX_REQUEST_BYTES:
            self.close_connection = True
            self._send(413, soap_fault("Client", "SBX-HTTP: la petición es demasiado grande"))
            return None
        return self.rfile.read(size)

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        sandbox = self.server.sandbox
        svc = _BY_PATH.get(urlsplit(self.path).path.rstrip("/"))
        body = self._read_body()
        if body is None:
            return
        if svc is None:
            self._send(404, soap_fault("Client", f"SBX-404: no hay servicio en {self.path}"))
            return
        try:
            envelope = parse_envelope(body)
            operation = self._operation(envelope, svc)
        except ValueError as exc:
            sandbox.store.log_request(svc.key, "?", "bad_request", code="SBX-SOAP")
            self._send(500, soap_fault("Client", str(exc)))
            return
        decision = sandbox.faults.decide(operation.name)
        delay = sandbox.latency + decision.delay
        if delay > 0:
            self.server.stopping.wait(delay)
        kind = decision.kind
        if kind in ("timeout", "http500", "drop", "garbage"):
            sandbox.store.log_request(svc.key, operation.name, f"fault:{kind}")
            if kind == "timeout":
                self.server.stopping.wait(decision.hold)
                self._drop()
            elif kind == "http500":
                self._send(
                    500, soap_fault("Server", "SBX-500: servicio no disponible (falla simulada)")
                )
            elif kind == "garbage":
                self._send(200, GARBAGE)
            else:
                self._drop()
            return
        try:
            request = _request(operation, envelope)
        except Exception as exc:  # a body that does not follow the WSDL (zeep refuses it)
            sandbox.store.log_request(svc.key, operation.name, "bad_request", code="SBX-SOAP")
            message = f"SBX-SOAP: la petición {operation.name} no corresponde al WSDL: {exc}"
            self._send(500, soap_fault("Client", message))
            return
        try:
            reply = svc.handlers[operation.name](sandbox.engine, request)
            out = operation.output.serialize(**reply.body).content
            _hoist_namespaces(out)
            payload = etree.tostring(out, xml_declaration=True, encoding="utf-8")
        except Exception as exc:  # never let one request take the server down
            log.exception("sandbox: error answering %s", operation.name)
            sandbox.store.log_request(svc.key, operation.name, "server_error", code="SBX-INTERNAL")
            self._send(500, soap_fault("Server", f"SBX-INTERNAL: error interno del sandbox: {exc}"))
            return
        entry = reply.log
        outcome = entry.outcome + (":reply_lost" if kind == "reply_lost" else "")
        sandbox.store.log_request(
            svc.key,
            operation.name,
            outcome,
            account=entry.account,
            referencia=entry.referencia,
            uuid=entry.uuid,
            code=entry.code,
        )
        if kind == "reply_lost":
            self._drop()
            return
        self._send(200, payload)

    def _operation(self, envelope: etree._Element, svc: ServiceDef) -> Any:
        if envelope.tag != f"{{{NS_SOAP11}}}Envelope":
            raise ValueError("SBX-SOAP: se esperaba un sobre SOAP 1.1 (soap:Envelope)")
        body = envelope.find(f"{{{NS_SOAP11}}}Body")
        first = None if body is None else next((c for c in body if isinstance(c.tag, str)), None)
        if first is None:
            raise ValueError("SBX-SOAP: el sobre SOAP no trae Body con una operación")
        name = etree.QName(first).localname
        if name not in svc.handlers:
            raise ValueError(f"SBX-SOAP: operación no soportada por el sandbox: {name}")
        binding = _binding(svc.wsdl, svc.binding)
        operation = binding.get(name)
        action = (self.headers.get("SOAPAction") or "").strip().strip('"')
        if action and action != operation.soapaction:
            raise ValueError(
                f"SBX-SOAP: SOAPAction {action!r} no corresponde a la operación {name} "
                f"({operation.soapaction!r})"
            )
        return operation


def _hoist_namespaces(envelope: etree._Element) -> None:
    """Declare each namespace once on the Envelope (zeep declares one per element)."""
    seen: dict[str, str] = {}
    for el in envelope.iter():
        ns = etree.QName(el).namespace
        if ns and ns != NS_SOAP11 and ns not in seen:
            seen[ns] = f"a{len(seen)}"
    etree.cleanup_namespaces(envelope, top_nsmap={p: ns for ns, p in seen.items()})


def _request(operation: Any, envelope: etree._Element) -> Any:
    """The request's parameters as attributes. zeep unwraps a request with one parameter
    (``Consulta(expresionImpresa)``, ``ObtenerNumerosCreditos(credenciales)``); wrap it back."""
    value = operation.input.deserialize(envelope)
    names = [name for name, _ in operation.input.body.type.elements]
    if len(names) == 1 and (value is None or not hasattr(value, names[0])):
        return SimpleNamespace(**{names[0]: value})
    return value


class SandboxPac:
    """A sandbox PAC server. Use as a context manager or call ``start()``/``stop()``."""

    def __init__(
        self,
        db_path: str | Path,
        accounts: list[SandboxAccount] | tuple[SandboxAccount, ...] = (),
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        latency: float = 0.0,
        rfc_prov_certif: str = RFC_PROV_CERTIF,
        tls: tuple[str | Path, str | Path] | None = None,
    ) -> None:
        self.db_path = Path(db_path)
        self.store = SandboxStore(self.db_path)
        self.pac_certificate = PacCertificate.load_or_create(
            self.db_path.with_name(self.db_path.name + ".pac")
        )
        self.engine = PacEngine(self.store, list(accounts), self.pac_certificate, rfc_prov_certif)
        self.faults = Faults()
        self.latency = latency
        self.host = host
        self._port = port
        self.tls = tls  # (certificate PEM, key PEM): serve HTTPS (tests of TLS and proxies)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._wsdl_cache: dict[str, bytes] = {}

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> SandboxPac:
        if self._server is not None:
            return self
        for svc in SERVICES:  # load the WSDLs before the first request
            _binding(svc.wsdl, svc.binding)
        self._server = _Server((self.host, self._port), self)
        self._port = self._server.server_address[1]
        if self.tls is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(str(self.tls[0]), str(self.tls[1]))
            self._server.socket = ctx.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"sandbox-pac-{self._port}",
            daemon=True,
        )
        self._thread.start()
        log.info("sandbox PAC escuchando en %s", self.base_url)
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.stopping.set()
        server.shutdown()
        server.close_all()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._thread = None

    def close(self) -> None:
        self.stop()
        self.store.close()

    def __enter__(self) -> SandboxPac:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def running(self) -> bool:
        return self._server is not None

    # --- addresses ----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._port

    @property
    def base_url(self) -> str:
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://{self.host}:{self._port}"

    def url(self, key: str) -> str:
        return self.base_url + next(s.path for s in SERVICES if s.key == key)

    @property
    def fel_timbrado_url(self) -> str:
        return self.url("fel_timbrado")

    @property
    def fel_remote_url(self) -> str:
        return self.url("fel_remote")

    @property
    def finkok_stamp_url(self) -> str:
        return self.url("finkok_stamp")

    @property
    def finkok_cancel_url(self) -> str:
        return self.url("finkok_cancel")

    @property
    def sat_status_url(self) -> str:
        return self.url("sat_status")

    def wsdl(self, key: str) -> bytes:
        """The WSDL of a service with soap:address rewritten to this sandbox."""
        with _wsdl_lock:
            if key not in self._wsdl_cache:
                svc = next(s for s in SERVICES if s.key == key)
                self._wsdl_cache[key] = _wsdl_with_address(svc.wsdl, self.url(key))
            return self._wsdl_cache[key]

    # --- PAC state ----------------------------------------------------------------------------

    @property
    def certificate_der(self) -> bytes:
        """DER of the certificate that verifies every SelloSAT of this sandbox."""
        return self.pac_certificate.certificate_der

    @property
    def no_certificado_sat(self) -> str:
        return self.pac_certificate.no_certificado

    def add_account(self, account: SandboxAccount) -> None:
        self.engine.add_account(account)

    def credits(self, usuario: str) -> int:
        return self.store.credits(usuario)

    def set_credits(self, usuario: str, creditos: int) -> None:
        self.store.set_credits(usuario, creditos)

    @property
    def requests_log(self) -> list[Any]:
        return self.store.requests_log

    # --- demo ---------------------------------------------------------------------------------

    @classmethod
    def demo(cls, db_path: str | Path, **kwargs: Any) -> SandboxPac:
        """A sandbox with the demo account: usuario ``demo``, password ``demo``, cuenta
        ``DEMO``, SAT's test CSD for EKU9003173C9 and plenty of credits."""
        from connector.cfdi.csd import Csd

        csd = Csd.from_files(
            DEMO_CSD_DIR / f"{DEMO_CSD_BASE}.cer",
            DEMO_CSD_DIR / f"{DEMO_CSD_BASE}.key",
            DEMO_CSD_PASSWORD,
        )
        account = SandboxAccount(
            usuario="demo", password="demo", cuenta="DEMO", creditos=1_000_000, csds={DEMO_RFC: csd}
        )
        return cls(db_path, accounts=[account], **kwargs)
