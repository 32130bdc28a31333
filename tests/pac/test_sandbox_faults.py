# ruff: noqa: F811 - pytest fixtures imported from test_sandbox_support
"""Faults on demand: each kind is observed by a real client (zeep, requests or a raw socket)."""

from __future__ import annotations

import http.client
import socket

import pytest
import requests
import zeep
from lxml import etree

from connector.cfdi.csd import Csd
from connector.pac.sandbox import SandboxPac
from connector.pac.sandbox.faults import Faults, FaultSpecError, parse_fault_spec

from .test_sandbox_support import client, pac, sealed  # noqa: F401

ENVELOPE = (
    b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>'
    b'<ConsultarCreditos xmlns="http://tempuri.org/"><usuario>user</usuario>'
    b"<password>secret</password></ConsultarCreditos></s:Body></s:Envelope>"
)


def raw_post(pac: SandboxPac, timeout: float = 10) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", pac.port, timeout=timeout)
    conn.request("POST", "/fel/WSCFDI33.svc", body=ENVELOPE, headers={"Content-Type": "text/xml"})
    return conn.getresponse()


def timbrar(pac: SandboxPac, xml: bytes, referencia: str, timeout: float = 30):
    return client("fel_timbrado", pac.fel_timbrado_url, timeout=timeout).TimbrarCFDI(
        usuario="user", password="secret", cadenaXML=xml.decode(), referencia=referencia
    )


def test_drop_closes_the_connection_without_a_reply(pac: SandboxPac) -> None:
    pac.faults.add("drop", times=1, operations={"ConsultarCreditos"})
    with pytest.raises(http.client.RemoteDisconnected):
        raw_post(pac)
    assert raw_post(pac).status == 200  # only once
    assert pac.faults.fired["drop"] == 1
    assert [e.outcome for e in pac.store.requests(operation="ConsultarCreditos")] == [
        "fault:drop",
        "ok",
    ]


def test_drop_does_not_process_the_stamp(pac: SandboxPac, csd: Csd) -> None:
    pac.faults.add("drop", times=1, operations={"TimbrarCFDI"})
    with pytest.raises(requests.ConnectionError):
        timbrar(pac, sealed(csd, "D1"), "REF-D1")
    assert pac.store.count() == 0
    assert timbrar(pac, sealed(csd, "D1"), "REF-D1").OperacionExitosa is True


def test_http500_is_a_soap_fault(pac: SandboxPac) -> None:
    pac.faults.add("http500", times=2)
    resp = raw_post(pac)
    assert resp.status == 500
    fault = etree.fromstring(resp.read()).find(
        ".//{http://schemas.xmlsoap.org/soap/envelope/}Fault"
    )
    assert "SBX-500" in fault.findtext("faultstring")
    with pytest.raises(zeep.exceptions.Fault):
        client("fel_timbrado", pac.fel_timbrado_url).ConsultarCreditos(
            usuario="user", password="secret"
        )
    assert raw_post(pac).status == 200


def test_garbage_reply_is_not_xml(pac: SandboxPac) -> None:
    pac.faults.add("garbage", times=2, operations=["ConsultarCreditos"])
    resp = raw_post(pac)
    assert resp.status == 200
    body = resp.read()
    with pytest.raises(etree.XMLSyntaxError):
        etree.fromstring(body)
    with pytest.raises(Exception) as err:
        client("fel_timbrado", pac.fel_timbrado_url).ConsultarCreditos(
            usuario="user", password="secret"
        )
    assert not isinstance(err.value, AssertionError)
    assert raw_post(pac).status == 200


def test_timeout_holds_longer_than_the_client_waits(pac: SandboxPac, csd: Csd) -> None:
    pac.faults.add("timeout", times=1, operations={"TimbrarCFDI"}, seconds=3)
    with pytest.raises(requests.exceptions.Timeout):
        timbrar(pac, sealed(csd, "TO"), "REF-TO", timeout=0.5)
    assert pac.store.count() == 0
    assert pac.store.requests(operation="TimbrarCFDI")[0].outcome == "fault:timeout"


def test_reply_lost_still_stores_the_stamp(pac: SandboxPac, csd: Csd) -> None:
    xml = sealed(csd, "LOST")
    pac.faults.add("reply_lost", times=1, operations={"TimbrarCFDI"})
    with pytest.raises(requests.ConnectionError):
        timbrar(pac, xml, "REF-LOST")

    [record] = pac.store.stamps()
    assert record.referencia == "REF-LOST"
    [entry] = pac.store.requests(operation="TimbrarCFDI")
    assert (entry.outcome, entry.uuid) == ("ok:reply_lost", record.uuid)
    # the client recovers by reference, and a re-send is a 307 with the same UUID
    svc = client("fel_timbrado", pac.fel_timbrado_url)
    found = svc.ConsultarTimbrePorReferencia(
        usuario="user", password="secret", referencia="REF-LOST"
    )
    assert record.uuid == found.Timbre.UUID
    again = timbrar(pac, xml, "REF-LOST")
    assert (again.CodigoRespuesta, again.Timbre.UUID) == ("307", record.uuid)
    assert pac.store.count() == 1


def test_latency_and_operation_filter(pac: SandboxPac) -> None:
    pac.latency = 0.05
    pac.faults.add("latency", times=None, seconds=0.05, operations={"ConsultarCreditos"})
    pac.faults.add("drop", times=None, operations={"TimbrarCFDI"})
    for _ in range(3):
        assert raw_post(pac).status == 200  # ConsultarCreditos is not dropped
    assert pac.faults.fired["latency"] == 3
    assert pac.faults.fired["drop"] == 0


def test_faults_work_on_every_service(pac: SandboxPac) -> None:
    pac.faults.add("http500", times=1, operations={"Consulta"})
    sat = client("sat_status", pac.sat_status_url)
    with pytest.raises(zeep.exceptions.Fault):
        sat.Consulta(expresionImpresa="?re=A&rr=B&tt=1&id=X")
    assert sat.Consulta(expresionImpresa="?re=A&rr=B&tt=1&id=X").Estado == "No Encontrado"


def test_wsdl_get_is_never_faulted(pac: SandboxPac) -> None:
    pac.faults.add("drop", times=None)
    assert requests.get(pac.fel_timbrado_url + "?wsdl", timeout=5).status_code == 200


def test_raw_socket_sees_eof_on_drop(pac: SandboxPac) -> None:
    pac.faults.add("drop", times=1)
    with socket.create_connection(("127.0.0.1", pac.port), timeout=10) as s:
        head = (
            f"POST /fel/WSCFDI33.svc HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: text/xml\r\nContent-Length: {len(ENVELOPE)}\r\n\r\n"
        ).encode()
        s.sendall(head + ENVELOPE)
        assert s.recv(1024) == b""


# --- the rule engine (no server) ----------------------------------------------------------------


def test_probability_is_seeded_and_repeatable() -> None:
    def pattern(seed: int) -> list[str | None]:
        f = Faults()
        f.add("drop", probability=0.5, seed=seed)
        return [f.decide("TimbrarCFDI").kind for _ in range(40)]

    first = pattern(7)
    assert first == pattern(7)
    assert first != pattern(8)
    assert 5 < first.count("drop") < 35


def test_terminal_faults_fire_in_order_and_latencies_add_up() -> None:
    f = Faults()
    f.add("latency", times=None, seconds=0.1)
    f.add("latency", times=1, seconds=0.2)
    f.add("http500", times=1)
    f.add("garbage", times=1)
    first, second, third = (f.decide("X") for _ in range(3))
    assert (first.kind, first.delay) == ("http500", pytest.approx(0.3))
    assert (second.kind, second.delay) == ("garbage", pytest.approx(0.1))
    assert (third.kind, third.delay) == (None, pytest.approx(0.1))


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("drop:3:TimbrarCFDI", {"kind": "drop", "times": 3, "operations": ["TimbrarCFDI"]}),
        ("http500:p=0.25", {"kind": "http500", "probability": 0.25, "times": None}),
        (
            "timeout:1:stamp,stamped:s=60",
            {"kind": "timeout", "times": 1, "operations": ["stamp", "stamped"], "seconds": 60.0},
        ),
        ("garbage:*", {"kind": "garbage", "times": None}),
        (
            "reply_lost:1:GenerarCFDI40:seed=3",
            {"kind": "reply_lost", "times": 1, "operations": ["GenerarCFDI40"], "seed": 3},
        ),
    ],
)
def test_parse_fault_spec(spec: str, expected: dict) -> None:
    assert parse_fault_spec(spec) == expected
    Faults().add(**parse_fault_spec(spec))  # usable as is


@pytest.mark.parametrize("spec", ["", "explode:1", "drop:p=abc", "drop:s=x"])
def test_bad_fault_specs_are_refused_in_spanish(spec: str) -> None:
    with pytest.raises(FaultSpecError, match="SBX-FAULT"):
        parse_fault_spec(spec)


def test_bad_rules_are_refused() -> None:
    with pytest.raises(FaultSpecError):
        Faults().add("drop", probability=1.5)
    with pytest.raises(FaultSpecError):
        Faults().add("nope")


def test_latency_is_observable_by_a_client_timeout(pac: SandboxPac) -> None:
    svc = client("fel_timbrado", pac.fel_timbrado_url, timeout=0.3)
    pac.latency = 1.5
    with pytest.raises(requests.exceptions.Timeout):
        svc.ConsultarCreditos(usuario="user", password="secret")
    pac.latency = 0.0
    pac.faults.add("latency", times=1, seconds=1.5, operations={"ConsultarCreditos"})
    with pytest.raises(requests.exceptions.Timeout):
        svc.ConsultarCreditos(usuario="user", password="secret")
    patient = client("fel_timbrado", pac.fel_timbrado_url)
    assert patient.ConsultarCreditos(usuario="user", password="secret").OperacionExitosa is True
    assert pac.faults.fired["latency"] == 1
