"""Corporate networks: the PAC through a real HTTP proxy on 127.0.0.1 (``proxy_support.Proxy``:
CONNECT tunnels with Basic authentication), to the sandbox PAC serving HTTPS with a
self-signed certificate given as ``ca_bundle``.

Stamping, recovery by referencia and the lost-reply fault work through the proxy; a proxy that
refuses is ``CONN-PAC-PROXY`` (407: configuration, the PAC pauses; 502 or unreachable:
transient), a TLS name or CA mismatch is ``CONN-PAC-TLS`` (configuration, never accepted), the
proxy's password never shows in a message, and ``HTTPS_PROXY``/``NO_PROXY`` apply when no proxy
is configured.
"""

from __future__ import annotations

import socket
import uuid as uuidlib
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from connector.pac.base import Timeouts
from connector.pac.errors import PacAccount, PacCircuitOpen, PacError, PacTransient
from connector.pac.fel import FelDriver
from connector.pac.resilience import CircuitBreaker, ResilientPac, RetryPolicy
from connector.pac.sandbox import SandboxAccount, SandboxPac

from .drivers_support import EMISOR, sealed, self_signed_for_localhost
from .proxy_support import Proxy

USER, PASSWORD = "prx", "Prx-pass-123"
PROXY_USER, PROXY_PASSWORD = "juan.perez", "S3creto:Proxy@2026"


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory) -> tuple[Path, Path]:
    return self_signed_for_localhost(tmp_path_factory.mktemp("proxytls"))


@pytest.fixture(scope="module")
def pac(tmp_path_factory, csd, tls_files) -> Iterator[SandboxPac]:
    db = tmp_path_factory.mktemp("proxypac") / "pac.db"
    account = SandboxAccount(USER, PASSWORD, "PRX", 1000, csds={EMISOR: csd})
    with SandboxPac(db, accounts=[account], tls=tls_files) as sandbox:
        yield sandbox


@pytest.fixture
def proxy() -> Iterator[Proxy]:
    with Proxy(PROXY_USER, PROXY_PASSWORD) as p:
        yield p


def driver(pac: SandboxPac, ca: Path | None, proxy: str | None, **kw) -> FelDriver:
    return FelDriver(
        USER,
        PASSWORD,
        timbrado_url=pac.fel_timbrado_url,
        timeouts=kw.pop("timeouts", Timeouts(2, 5)),
        verify=str(ca) if ca else True,
        proxy=proxy,
        **kw,
    )


def ref() -> str:
    return f"PRX-{uuidlib.uuid4().hex[:10]}"


def test_stamp_recover_and_acuse_through_an_authenticating_proxy(pac, proxy, tls_files, csd):
    assert pac.fel_timbrado_url.startswith("https://")
    d = driver(pac, tls_files[0], proxy.url(PROXY_USER, quote(PROXY_PASSWORD, safe="")))
    try:
        r = ref()
        stamped = d.stamp(sealed(csd, "PX1"), r)
        assert pac.store.uuids_for_referencia(r) == [stamped.uuid]
        assert d.recover(r).uuid == stamped.uuid
        assert stamped.uuid.encode() in d.acuse_envio(stamped.uuid).upper()
    finally:
        d.close()
    host = pac.fel_timbrado_url.split("/")[2]
    assert proxy.connects and set(proxy.connects) == {host}  # every call went through it
    assert len(proxy.connects) == 1  # one tunnel, kept alive for the three calls


def test_a_lost_reply_through_the_proxy_is_recovered_by_referencia(pac, proxy, tls_files, csd):
    """The sandbox stores the stamp and drops the connection: ResilientPac asks by referencia
    (through the proxy) before anything is sent again; one UUID."""
    d = driver(pac, tls_files[0], proxy.url(PROXY_USER, quote(PROXY_PASSWORD, safe="")))
    rp = ResilientPac(
        d,
        policy=RetryPolicy(max_attempts=4, base_delay=0, max_delay=0),
        breaker=CircuitBreaker("proxy-lost", failure_threshold=100),
        sleep=lambda s: None,
    )
    try:
        r = ref()
        pac.faults.add("reply_lost", times=1, operations={"TimbrarCFDI"})
        result = rp.submit(sealed(csd, "PX2"), r)
        assert pac.store.uuids_for_referencia(r) == [result.uuid]
        stamps = [q for q in pac.store.requests(operation="TimbrarCFDI", referencia=r)]
        assert len(stamps) == 1  # recovered, never sent twice
        assert pac.store.requests(operation="ConsultarTimbrePorReferencia", referencia=r)
    finally:
        d.close()


def test_a_proxy_asking_for_other_credentials_is_a_configuration_error(pac, proxy, tls_files, csd):
    d = driver(pac, tls_files[0], proxy.url(PROXY_USER, "otra-clave-mala"))
    try:
        with pytest.raises(PacAccount) as info:
            d.stamp(sealed(csd, "PX3"), ref())
    finally:
        d.close()
    err = info.value
    assert err.code == "CONN-PAC-PROXY" and "proxy" in err.message
    assert "407" in err.message and err.maybe_sent is False
    assert "otra-clave-mala" not in str(err) and proxy.refused == [407]
    assert proxy.connects == []  # nothing reached the PAC

    # the circuit pauses the PAC and says why (the invoices wait, nothing is failed)
    failing = driver(pac, tls_files[0], proxy.url(PROXY_USER, "otra-clave-mala"))
    rp = ResilientPac(failing, breaker=CircuitBreaker("proxy-407"), sleep=lambda s: None)
    try:
        with pytest.raises(PacAccount):
            rp.submit(sealed(csd, "PX4"), ref())
        with pytest.raises(PacCircuitOpen) as paused:
            rp.submit(sealed(csd, "PX5"), ref())
        assert "configuración de red" in paused.value.message
    finally:
        failing.close()


def test_a_proxy_without_credentials_gets_407(pac, proxy, tls_files, csd):
    d = driver(pac, tls_files[0], proxy.url())
    try:
        with pytest.raises(PacAccount) as info:
            d.stamp(sealed(csd, "PX6"), ref())
    finally:
        d.close()
    assert info.value.code == "CONN-PAC-PROXY"


def test_a_proxy_that_answers_502_or_cannot_be_reached_is_transient(pac, tls_files, csd):
    with Proxy(refuse=502) as bad:
        d = driver(pac, tls_files[0], bad.url())
        try:
            with pytest.raises(PacTransient) as info:
                d.stamp(sealed(csd, "PX7"), ref())
        finally:
            d.close()
    assert info.value.code == "CONN-PAC-PROXY" and "proxy" in info.value.message
    assert "502" in info.value.message and info.value.maybe_sent is False

    probe = socket.create_server(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nobody listens there now
    d = driver(pac, tls_files[0], f"http://127.0.0.1:{port}")
    try:
        with pytest.raises(PacTransient) as info:
            d.stamp(sealed(csd, "PX8"), ref())
    finally:
        d.close()
    assert info.value.code == "CONN-PAC-PROXY" and info.value.maybe_sent is False


def test_tls_ca_or_name_mismatch_through_the_proxy_is_a_permanent_error(pac, proxy, tls_files, csd):
    url = proxy.url(PROXY_USER, quote(PROXY_PASSWORD, safe=""))
    before = len(pac.store.requests_log)
    unknown_ca = driver(pac, None, url)  # the system's CAs do not know the sandbox's
    try:
        with pytest.raises(PacAccount) as info:
            unknown_ca.stamp(sealed(csd, "PX9"), ref())
        assert info.value.code == "CONN-PAC-TLS" and info.value.maybe_sent is False
    finally:
        unknown_ca.close()
    # the certificate names 127.0.0.1 only: "localhost" is another name
    wrong_name = FelDriver(
        USER,
        PASSWORD,
        timbrado_url=pac.fel_timbrado_url.replace("127.0.0.1", "localhost"),
        timeouts=Timeouts(2, 5),
        verify=str(tls_files[0]),
        proxy=url,
    )
    try:
        with pytest.raises(PacAccount) as info:
            wrong_name.stamp(sealed(csd, "PX10"), ref())
        assert info.value.code == "CONN-PAC-TLS"
    finally:
        wrong_name.close()
    assert len(pac.store.requests_log) == before  # nothing reached the PAC


def test_https_proxy_and_no_proxy_from_the_environment(pac, proxy, tls_files, csd, monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", proxy.url(PROXY_USER, quote(PROXY_PASSWORD, safe="")))
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    d = driver(pac, tls_files[0], None)
    try:
        r = ref()
        assert d.stamp(sealed(csd, "PX11"), r).uuid
    finally:
        d.close()
    assert len(proxy.connects) == 1

    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    d = driver(pac, tls_files[0], None)
    try:
        assert d.stamp(sealed(csd, "PX12"), ref()).uuid
    finally:
        d.close()
    assert len(proxy.connects) == 1  # NO_PROXY: straight to the PAC


def test_plain_http_through_a_forwarding_proxy(tmp_path, csd, proxy):
    account = SandboxAccount(USER, PASSWORD, "PRX", 10, csds={EMISOR: csd})
    with SandboxPac(tmp_path / "pac.db", accounts=[account]) as plain:
        d = driver(plain, None, proxy.url(PROXY_USER, quote(PROXY_PASSWORD, safe="")))
        try:
            r = ref()
            stamped = d.stamp(sealed(csd, "PX13"), r)
            assert plain.store.uuids_for_referencia(r) == [stamped.uuid]
        finally:
            d.close()
    assert proxy.forwarded and proxy.forwarded[0].startswith(b"POST http://127.0.0.1:")


def test_the_proxy_password_never_shows(pac, tls_files):
    quoted = quote(PROXY_PASSWORD, safe="")  # as connector.config.pac_network puts it in
    d = driver(pac, tls_files[0], f"http://{PROXY_USER}:{quoted}@127.0.0.1:1")
    try:
        with pytest.raises(PacError) as info:
            d.credits()
        assert PROXY_PASSWORD not in str(info.value) and quoted not in str(info.value)
        assert PROXY_PASSWORD not in repr(d) and quoted not in repr(d)
        assert PROXY_PASSWORD in d._secrets  # redacted from every message the driver raises
    finally:
        d.close()
