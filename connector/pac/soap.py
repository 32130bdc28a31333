"""The SOAP plumbing the drivers share: WSDLs, one HTTP session per driver, zeep's transport.

:class:`SoapService` gives every driver the same guarantees:

* WSDLs are read from the package (``connector/pac/wsdl``), parsed once per process and never
  fetched from the network; the service address comes from configuration.
* One ``requests.Session`` per driver (connections are reused, the pool is sized for the
  number of requests in flight), TLS verified, a (connect, read) timeout on every call.
* One SOAP path per operation: zeep, or, for the operations a driver names
  (``lxml_operations``), the lxml template path of :mod:`connector.pac.soap_lxml`; both post
  through the same transport and session.
* Bodies are never logged (zeep's transport logs whole envelopes at DEBUG, passwords
  included); secrets are redacted from every message a driver raises.
* Every failure becomes one of the kinds in :mod:`connector.pac.errors`
  (:func:`connector.pac.failures.classify_exception`).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import requests
import urllib3
from requests import PreparedRequest
from requests.adapters import HTTPAdapter
from requests.utils import get_environ_proxies, select_proxy
from urllib3.util.retry import Retry
from zeep import Client, Settings
from zeep.exceptions import Error as ZeepError
from zeep.exceptions import TransportError
from zeep.transports import Transport
from zeep.wsdl import Document

from .base import PacDriver, Timeouts, redact
from .errors import PacError
from .failures import classify_exception
from .soap_lxml import lxml_operation

log = logging.getLogger(__name__)

WSDL_DIR = Path(__file__).resolve().parent / "wsdl"
_MAX_PREPARED = 64  # prepared POSTs kept per transport (address × operation)


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
            # zeep annotates ``transport`` as a class, but uses (and documents) an instance
            doc = Document(str(path), _loader_transport(), settings=_SETTINGS)  # type: ignore[arg-type]
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
        # (address, headers) → the request as the session prepares it, without a body
        self._prepared: dict[tuple[str, tuple[tuple[str, str], ...]], PreparedRequest] = {}

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
        session = self.session
        prepared = self._prepare(address, headers)
        if prepared is None:
            response = session.post(
                address,
                data=message,
                headers=headers,
                timeout=self.operation_timeout,
                allow_redirects=False,
                proxies=proxies,
                verify=verify,
            )
        else:
            prepared.prepare_body(message, None)
            response = session.send(
                prepared,
                timeout=self.operation_timeout,
                allow_redirects=False,
                proxies=proxies,
                verify=verify,
                stream=session.stream,
                cert=session.cert,
            )
        self.local.status = response.status_code
        log.debug("PAC %s respondió HTTP %s", address, response.status_code)
        return response

    def _prepare(self, address: str, headers: dict[str, str]) -> PreparedRequest | None:
        """A copy of the POST to ``address`` with ``headers`` as the session prepares it (its
        headers, hooks, params and URL merged; requests' "prepared requests"), made once per
        address and operation instead of at every call (``Session.request`` merges and checks
        every setting again each time, ~0.1 ms of CPU); the body is set on the copy. None —
        the ordinary ``Session.post`` — while the session holds cookies or an auth (those are
        merged per request) or a driver sends headers that vary per call."""
        session = self.session
        if session.auth is not None or len(session.cookies):
            return None
        key = (address, tuple(headers.items()))
        template = self._prepared.get(key)
        if template is None:
            if len(self._prepared) >= _MAX_PREPARED:
                return None
            template = session.prepare_request(
                requests.Request("POST", address, headers=headers)
            )
            self._prepared[key] = template
        return template.copy()

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
