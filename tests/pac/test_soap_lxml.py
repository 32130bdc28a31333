"""The lxml template path (``connector.pac.soap_lxml``) against its contract and the sandbox.

FEL Timbrado's ``TimbrarCFDI`` and ``ObtenerAcuseEnvio`` are sent and read without zeep. The
contract stays the WSDL in ``../shared/wsdl/``: every request the driver puts on the wire for
them validates against the WSDL's own schema (lxml ``XMLSchema`` built from its
``wsdl:types``), and so does every reply the real sandbox sends back, which the path reads
into the values the driver works with. zeep never runs for those operations.
"""

from __future__ import annotations

import uuid as uuidlib
from pathlib import Path

import pytest
from lxml import etree

from connector.pac.base import Timeouts
from connector.pac.errors import PacError
from connector.pac.fel import LXML_OPERATIONS, WSDL_TIMBRADO, FelDriver
from connector.pac.sandbox import SandboxAccount, SandboxPac

from .drivers_support import EMISOR, sealed

PACKAGE_WSDL = Path(__file__).resolve().parents[2] / "connector" / "pac" / "wsdl"
XS = "http://www.w3.org/2001/XMLSchema"
WSDL = "http://schemas.xmlsoap.org/wsdl/"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
TEMPURI = "http://tempuri.org/"
PASSWORD = "Lxml-Path-Pass1&<"


def wsdl_schema(wsdl: Path, target: str, folder: Path) -> etree.XMLSchema:
    """The schema of namespace ``target`` among the WSDL's ``wsdl:types``: each inline
    ``xs:schema`` written to its own file (with every namespace in scope on the WSDL, since
    its QName attributes use the WSDL's prefixes) and each ``xs:import`` pointed at the file
    of the namespace it imports."""
    root = etree.parse(str(wsdl)).getroot()
    schemas = root.findall(f"{{{WSDL}}}types/{{{XS}}}schema")
    files = {s.get("targetNamespace"): folder / f"schema{i}.xsd" for i, s in enumerate(schemas)}
    for schema in schemas:
        copy = etree.Element(schema.tag, dict(schema.attrib), nsmap=schema.nsmap)
        copy.extend(etree.fromstring(etree.tostring(child)) for child in schema)
        for imp in copy.findall(f"{{{XS}}}import"):
            imp.set("schemaLocation", files[imp.get("namespace")].name)
        etree.ElementTree(copy).write(str(files[schema.get("targetNamespace")]))
    return etree.XMLSchema(etree.parse(str(files[target])))


@pytest.fixture(scope="module")
def schema(tmp_path_factory, shared_dir) -> etree.XMLSchema:
    contract = shared_dir / "wsdl" / WSDL_TIMBRADO
    assert (PACKAGE_WSDL / WSDL_TIMBRADO).read_bytes() == contract.read_bytes()
    return wsdl_schema(contract, TEMPURI, tmp_path_factory.mktemp("wsdl"))


@pytest.fixture(scope="module")
def pac(tmp_path_factory, csd):
    db = tmp_path_factory.mktemp("lxmlsoap") / "pac.db"
    account = SandboxAccount("lxmlu", PASSWORD, "CUENTAL", 100, csds={EMISOR: csd})
    with SandboxPac(db, accounts=[account]) as sandbox:
        yield sandbox


@pytest.fixture
def wire(pac, monkeypatch):
    """A FEL driver on the sandbox, the bodies it sent and received (a response hook of its
    session: what went over HTTP), and zeep's SOAP binding made to fail if it ever runs."""
    from zeep.wsdl.bindings.soap import SoapBinding

    def no_zeep(*args, **kwargs):
        raise AssertionError("zeep ran for an operation of the lxml path")

    monkeypatch.setattr(SoapBinding, "send", no_zeep)
    d = FelDriver("lxmlu", PASSWORD, timbrado_url=pac.fel_timbrado_url, timeouts=Timeouts(2, 5))
    exchanges: list[tuple[bytes, bytes]] = []
    d.session.hooks["response"].append(
        lambda r, *a, **k: exchanges.append((r.request.body, r.content))
    )
    yield d, exchanges
    d.close()


def body_child(xml: bytes) -> etree._Element:
    root = etree.fromstring(xml)
    assert root.tag == f"{{{SOAP_ENV}}}Envelope"
    (body,) = root.findall(f"{{{SOAP_ENV}}}Body")
    (child,) = list(body)
    return child


def assert_valid(schema: etree.XMLSchema, xml: bytes, tag: str) -> etree._Element:
    child = body_child(xml)
    assert child.tag == f"{{{TEMPURI}}}{tag}"
    assert schema.validate(child), schema.error_log
    return child


def test_the_templated_operations_are_the_per_invoice_ones():
    assert LXML_OPERATIONS == ("TimbrarCFDI", "ObtenerAcuseEnvio")


def test_stamp_and_acuse_requests_and_replies_follow_the_wsdl(wire, schema, pac, csd):
    fel, exchanges = wire
    referencia = f"LX-{uuidlib.uuid4().hex[:12]}"
    xml = sealed(csd, "LX1")
    stamped = fel.stamp(xml, referencia)
    assert pac.store.uuids_for_referencia(referencia) == [stamped.uuid]
    assert stamped.previously_stamped is False and stamped.creditos_restantes is not None
    assert stamped.xml and stamped.fecha_timbrado and stamped.no_certificado_sat

    acuse = fel.acuse_envio(stamped.uuid)
    assert stamped.uuid.encode() in acuse.upper()

    again = fel.stamp(xml, referencia)  # 307: the existing stamp, read from the same reply
    assert again.previously_stamped is True and again.uuid == stamped.uuid

    assert len(exchanges) == 3
    (req1, rep1), (req2, rep2), (req3, rep3) = exchanges
    sent = assert_valid(schema, req1, "TimbrarCFDI")
    assert [etree.QName(c).localname for c in sent] == [
        "usuario",
        "password",
        "cadenaXML",
        "referencia",
    ]
    assert sent[2].text.encode() == xml and sent[3].text == referencia
    assert sent[1].text == PASSWORD  # escaped on the wire, the same text once read
    assert assert_valid(schema, req2, "ObtenerAcuseEnvio")[2].text == stamped.uuid
    assert_valid(schema, req3, "TimbrarCFDI")
    for reply, tag in ((rep1, "TimbrarCFDIResponse"), (rep2, "ObtenerAcuseEnvioResponse")):
        assert_valid(schema, reply, tag)
    assert_valid(schema, rep3, "TimbrarCFDIResponse")


def test_sandbox_replies_are_read_into_the_wsdl_fields(wire, pac, csd):
    fel, exchanges = wire
    svc = fel.timbrado
    template = svc.lxml_operations["TimbrarCFDI"]
    referencia = f"LX-{uuidlib.uuid4().hex[:12]}"
    ok = svc.call(
        "TimbrarCFDI",
        pac="fel",
        write=True,
        secrets=[PASSWORD],
        usuario="lxmlu",
        password=PASSWORD,
        cadenaXML=sealed(csd, "LX2").decode(),
        referencia=referencia,
    )
    fields = [
        "CodigoConfirmacion",
        "CodigoRespuesta",
        "CreditosRestantes",
        "MensajeError",
        "MensajeErrorDetallado",
        "OperacionExitosa",
        "PDFResultado",
        "Timbre",
        "XMLResultado",
    ]
    assert list(ok) == fields  # every element of RespuestaTFD33, in the WSDL's order
    assert ok["OperacionExitosa"] is True and isinstance(ok["CreditosRestantes"], int)
    timbre = ok["Timbre"]
    assert list(timbre) == [
        "Estado",
        "FechaTimbrado",
        "NumeroCertificadoSAT",
        "SelloCFD",
        "SelloSAT",
        "UUID",
    ]
    assert timbre["UUID"] and timbre["UUID"] in ok["XMLResultado"]
    assert template.reply(200, exchanges[-1][1]) == ok  # the same reply read again

    refused = svc.call(
        "TimbrarCFDI",
        pac="fel",
        write=True,
        secrets=[PASSWORD],
        usuario="lxmlu",
        password=PASSWORD,
        cadenaXML="esto no es xml",
        referencia=f"LX-{uuidlib.uuid4().hex[:12]}",
    )
    assert refused["OperacionExitosa"] is False and refused["XMLResultado"] is None
    assert refused["CodigoRespuesta"] and refused["MensajeError"]

    with pytest.raises(PacError) as info:  # the sandbox's 203 for a wrong password
        FelDriver("lxmlu", "otra-clave-99", timbrado_url=pac.fel_timbrado_url).acuse_envio("X")
    assert info.value.code == "203" and "otra-clave-99" not in str(info.value)


def test_values_xml_cannot_carry_are_refused_before_sending(wire, pac):
    fel, exchanges = wire
    before = len(pac.store.requests_log)
    with pytest.raises(PacError) as info:
        fel.stamp(b"<x>\x01</x>", "r")
    assert info.value.code == "CONN-PAC-SOLICITUD" and info.value.maybe_sent is False
    assert exchanges == [] and len(pac.store.requests_log) == before


def test_reply_judged_as_zeep_judges_it(wire):
    """The reply rules the fault matrix relies on, on bytes a server may send."""
    from zeep.exceptions import Fault, TransportError

    template = wire[0].timbrado.lxml_operations["ObtenerAcuseEnvio"]
    assert template.reply(202, b"") is None
    with pytest.raises(TransportError) as empty:
        template.reply(503, b"")
    assert empty.value.status_code == 503
    with pytest.raises(TransportError) as garbage:
        template.reply(200, b"\x00\x17<<not xml")
    assert garbage.value.status_code == 200
    fault = (
        f'<s:Envelope xmlns:s="{SOAP_ENV}"><s:Body><s:Fault><faultcode>s:Client</faultcode>'
        "<faultstring>mal</faultstring></s:Fault></s:Body></s:Envelope>"
    ).encode()
    with pytest.raises(Fault) as soap_fault:
        template.reply(500, fault)
    assert (soap_fault.value.code, soap_fault.value.message) == ("s:Client", "mal")
    with pytest.raises(Fault):  # an HTML error page under 502: a fault without details
        template.reply(502, b"<html><body>Bad gateway</body></html>")
    with pytest.raises(etree.XMLSyntaxError):  # XML, but no SOAP envelope
        template.reply(200, b"<html><body>hola</body></html>")
    with pytest.raises(ValueError):
        template.reply(200, b'<!DOCTYPE x [<!ENTITY e "1">]><x>&e;</x>')
    nil = (
        f'<s:Envelope xmlns:s="{SOAP_ENV}"><s:Body><ObtenerAcuseEnvioResponse xmlns="{TEMPURI}">'
        '<ObtenerAcuseEnvioResult xmlns:i="http://www.w3.org/2001/XMLSchema-instance" '
        'i:nil="true"/></ObtenerAcuseEnvioResponse></s:Body></s:Envelope>'
    ).encode()
    assert template.reply(200, nil) is None
