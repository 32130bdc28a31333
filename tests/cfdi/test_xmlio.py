"""XML build, read, safe parsing and XSD validation of CFDI 4.0 (connector.cfdi.xmlio)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from connector.cfdi.errors import XmlError
from connector.cfdi.model import NS_CFDI, NS_PAGO20, NS_TFD, Comprobante
from connector.cfdi.xmlio import (
    build_tree,
    from_xml,
    parse_xml_bytes,
    to_xml,
    validate_xsd,
)

from .strategies import SAMPLES, comprobantes, shared_test_csd

PROPS = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
SAMPLE_I = SAMPLES / "cfdi40-valid_CfdiUtils.xml"
SAMPLE_P = SAMPLES / "cfdi40-pago20-valid_CfdiUtils.xml"
C = "{" + NS_CFDI + "}"


def _code(data: bytes, **kw: int) -> str:
    with pytest.raises(XmlError) as info:
        parse_xml_bytes(data, **kw)
    assert info.value.problems and info.value.problems[0].message
    return info.value.code


# --- the samples --------------------------------------------------------------------------------


def test_samples_are_xsd_valid_and_read_into_the_model() -> None:
    for path in (SAMPLE_I, SAMPLE_P):
        data = path.read_bytes()
        assert validate_xsd(data) == []
    c = from_xml(SAMPLE_I.read_bytes())
    assert c.Emisor.Rfc == "EKU9003173C9"
    assert (
        c.SubTotal == Decimal("3824.15")
        and str(c.Conceptos[0].Impuestos.Traslados[0].TasaOCuota) == "0.160000"
    )
    assert c.Conceptos[0].Descripcion == "Portable tetris gamepad pro++ ⏻"
    assert c.TimbreFiscalDigital is not None
    assert c.uuid == "6F35D3B5-3651-5370-BC2C-14CDBE384CD7"
    assert c.TimbreFiscalDigital.NoCertificadoSAT == "30001000000500003456"
    p = from_xml(SAMPLE_P.read_bytes())
    assert p.TipoDeComprobante == "P" and p.Pagos is not None
    assert p.Pagos.Totales.MontoTotalPagos == Decimal("15000.00")
    assert [d.IdDocumento[-1] for d in p.Pagos.Pago[0].DoctoRelacionado] == ["A", "B"]
    tp = p.Pagos.Pago[0].ImpuestosP.TrasladosP[0]
    assert str(tp.BaseP) == "12931.040000"  # exponent kept as given


def test_samples_round_trip_through_the_model() -> None:
    for path in (SAMPLE_I, SAMPLE_P):
        c = from_xml(path.read_bytes())
        again = to_xml(c)
        assert validate_xsd(again) == []
        assert from_xml(again) == c


def test_stamped_sample_re_emits_the_timbre_with_its_namespace() -> None:
    c = from_xml(SAMPLE_I.read_bytes())
    root = parse_xml_bytes(to_xml(c))
    tfd = root.find(f"{C}Complemento/{{{NS_TFD}}}TimbreFiscalDigital")
    assert tfd is not None
    assert tfd.get("SelloSAT") == c.TimbreFiscalDigital.SelloSAT
    assert list(tfd.attrib)[1:] == [
        "Version",
        "UUID",
        "FechaTimbrado",
        "RfcProvCertif",
        "SelloCFD",
        "NoCertificadoSAT",
        "SelloSAT",
    ]


# --- building -----------------------------------------------------------------------------------


def test_attributes_follow_the_xsd_order_and_decimals_keep_their_exponent() -> None:
    c = from_xml(SAMPLE_I.read_bytes())
    root = build_tree(c)
    assert [a for a in root.attrib if not a.startswith("{")] == [
        "Version",
        "Fecha",
        "Sello",
        "FormaPago",
        "NoCertificado",
        "Certificado",
        "SubTotal",
        "Descuento",
        "Moneda",
        "Total",
        "TipoDeComprobante",
        "Exportacion",
        "MetodoPago",
        "LugarExpedicion",
    ]
    traslado = root.find(f"{C}Impuestos/{C}Traslados/{C}Traslado")
    assert list(traslado.attrib) == ["Base", "Impuesto", "TipoFactor", "TasaOCuota", "Importe"]
    assert traslado.get("TasaOCuota") == "0.160000"


def test_decimals_never_use_scientific_notation() -> None:
    c = from_xml(SAMPLE_P.read_bytes())
    c.Pagos.Pago[0].Monto = Decimal("1.5E+4")
    c.Pagos.Totales.MontoTotalPagos = Decimal("15000.00")
    c.Pagos.Pago[0].DoctoRelacionado[0].ImpSaldoInsoluto = Decimal("0E-2")
    root = build_tree(c)
    pago = root.find(f"{C}Complemento/{{{NS_PAGO20}}}Pagos/{{{NS_PAGO20}}}Pago")
    assert pago.get("Monto") == "15000"
    assert pago.find(f"{{{NS_PAGO20}}}DoctoRelacionado").get("ImpSaldoInsoluto") == "0.00"


def test_namespaces_and_schema_location() -> None:
    p = parse_xml_bytes(to_xml(from_xml(SAMPLE_P.read_bytes())))
    assert p.nsmap["cfdi"] == NS_CFDI and p.nsmap["pago20"] == NS_PAGO20
    loc = p.get("{http://www.w3.org/2001/XMLSchema-instance}schemaLocation").split()
    assert loc == [
        "http://www.sat.gob.mx/cfd/4",
        "http://www.sat.gob.mx/sitio_internet/cfd/4/cfdv40.xsd",
        "http://www.sat.gob.mx/Pagos20",
        "http://www.sat.gob.mx/sitio_internet/cfd/Pagos/Pagos20.xsd",
    ]
    i = parse_xml_bytes(
        to_xml(from_xml(SAMPLE_I.read_bytes()).model_copy(update={"TimbreFiscalDigital": None}))
    )
    assert "pago20" not in i.nsmap
    assert i.find(f"{C}Complemento") is None


def test_informacion_global_uses_the_ano_attribute() -> None:
    c = from_xml(SAMPLE_I.read_bytes())
    data = c.model_dump()
    data["InformacionGlobal"] = {"Periodicidad": "04", "Meses": "02", "Año": 2025}
    c2 = Comprobante.model_validate(data)
    root = build_tree(c2)
    ig = root.find(f"{C}InformacionGlobal")
    assert dict(ig.attrib) == {"Periodicidad": "04", "Meses": "02", "Año": "2025"}
    assert from_xml(to_xml(c2)).InformacionGlobal.Anio == 2025


def test_characters_xml_cannot_carry_are_refused_with_a_code() -> None:
    c = from_xml(SAMPLE_I.read_bytes())
    c.Conceptos[0].Descripcion = "tab ok\t but NUL \x00 not"
    with pytest.raises(XmlError) as info:
        to_xml(c)
    assert info.value.code == "CONN-XML-CHARS"


def test_otros_complementos_are_kept_verbatim() -> None:
    data = SAMPLE_I.read_bytes().replace(
        b"<cfdi:Complemento>",
        b'<cfdi:Complemento><leyendasFisc:LeyendasFiscales xmlns:leyendasFisc="http://www.sat.gob.mx/leyendasFiscales" Version="1.0">'
        b'<leyendasFisc:Leyenda disposicionFiscal="RESDERAUTH" norma="Art. 2" textoLeyenda="Texto  con espacios"/>'
        b"</leyendasFisc:LeyendasFiscales>",
    )
    c = from_xml(data)
    assert len(c.OtrosComplementos) == 1
    other = etree.fromstring(c.OtrosComplementos[0])
    assert other.tag == "{http://www.sat.gob.mx/leyendasFiscales}LeyendasFiscales"
    again = parse_xml_bytes(to_xml(c))
    comp = again.find(f"{C}Complemento")
    leyenda = comp[0][0]
    assert leyenda.get("textoLeyenda") == "Texto  con espacios"
    assert comp[1].tag == f"{{{NS_TFD}}}TimbreFiscalDigital"
    assert from_xml(to_xml(c)) == c


# --- properties ---------------------------------------------------------------------------------


@PROPS
@given(comprobantes())
def test_generated_invoices_round_trip_through_xml(c: Comprobante) -> None:
    assert from_xml(to_xml(c)) == c


@PROPS
@given(comprobantes())
def test_text_writer_equals_the_element_path_and_sats_xslt(c: Comprobante) -> None:
    """The fast writer (model → text and cadena in one walk) must never drift from the lxml
    element path it stands in for, nor from SAT's cadena XSLT."""
    from connector.cfdi.cadena import cadena_original_xslt
    from connector.cfdi.xmlio import build_tree, serialize, xml_and_cadena

    text, cadena = xml_and_cadena(c)
    root = build_tree(c)
    # None means "not this path's job" (verbatim complements; Parte goes to the XSLT)
    assert (
        text is not None or c.OtrosComplementos or any(k.ComplementoConcepto for k in c.Conceptos)
    )
    if text is not None:
        assert text.encode("utf-8") == serialize(root)
    if cadena is not None:
        assert cadena == cadena_original_xslt(root)


@PROPS
@given(comprobantes())
def test_generated_invoices_are_xsd_valid_once_sealed(c: Comprobante) -> None:
    from connector.cfdi.seal import seal_tree

    root = seal_tree(c, shared_test_csd())
    assert validate_xsd(root) == []


# --- reading what is not a CFDI 4.0 -------------------------------------------------------------


def test_cfdi_33_and_foreign_roots_are_refused() -> None:
    v33 = b'<cfdi:Comprobante xmlns:cfdi="http://www.sat.gob.mx/cfd/3" Version="3.3"/>'
    with pytest.raises(XmlError) as info:
        from_xml(v33)
    assert info.value.code == "CONN-XML-VERSION" and "3.3" in str(info.value)
    with pytest.raises(XmlError) as info:
        from_xml(b"<factura><total>1</total></factura>")
    assert info.value.code == "CONN-XML-NOT-CFDI"
    with pytest.raises(XmlError) as info:
        from_xml(SAMPLE_I.read_bytes().replace(b'Version="4.0" Fecha', b'Version="4.1" Fecha'))
    assert info.value.code == "CONN-XML-VERSION"


def test_values_that_cannot_be_represented_become_problems() -> None:
    bad = SAMPLE_I.read_bytes().replace(b'SubTotal="3824.15"', b'SubTotal="mucho"')
    with pytest.raises(XmlError) as info:
        from_xml(bad)
    assert info.value.code == "CONN-XML-DATA"
    assert info.value.problems[0].path == "SubTotal"
    no_emisor = SAMPLE_I.read_bytes().replace(
        b'<cfdi:Emisor Rfc="EKU9003173C9" Nombre="ESCUELA KEMPER URGATE" RegimenFiscal="601"/>', b""
    )
    with pytest.raises(XmlError) as info:
        from_xml(no_emisor)
    assert any(p.path == "Emisor" for p in info.value.problems)


def test_xsd_problems_carry_code_line_and_spanish_message() -> None:
    bad = SAMPLE_I.read_bytes().replace(b'Rfc="MCI7306249Y1"', b'Rfc="no-es-rfc"')
    problems = validate_xsd(bad)
    assert problems and all(p.code == "CONN-XSD" for p in problems)
    assert "línea 4" in problems[0].message and "Rfc" in problems[0].message
    assert problems[0].message.startswith("El XML no cumple el esquema XSD del SAT")
    assert "Receptor" in problems[0].path
    # bytes that are not XML come back as the parsing problem, not an exception
    assert validate_xsd(b"<a>")[0].code == "CONN-XML-MALFORMED"


def test_xsd_limits_name_the_field_the_limit_and_a_cut_value() -> None:
    """libxml2's English facet errors become one Spanish problem per field, with the model
    path, SAT's limit (also when libxml2 cut its own message) and the value cut short."""
    from connector.cfdi.xmlio import validate_limits

    data = SAMPLE_I.read_bytes()
    huge = "x" * 200_000
    bad = (
        data.replace(
            b'Descripcion="Portable tetris gamepad pro++ \xe2\x8f\xbb"',
            f'Descripcion="{huge}"'.encode(),
        )
        .replace(b'FormaPago="01"', b'FormaPago="77"')
        .replace(b'NoCertificado="30001000000500003416"', b'NoCertificado="123"')
    )
    problems = {p.path: p for p in validate_xsd(bad)}
    assert set(problems) == {"Conceptos[0].Descripcion", "FormaPago", "NoCertificado"}
    d = problems["Conceptos[0].Descripcion"].message
    assert d.startswith("El XML no cumple el esquema XSD del SAT (línea 6): Descripcion de ")
    assert "tiene 200000 caracteres y el SAT admite como máximo 1000" in d and len(d) < 250
    f = problems["FormaPago"].message
    assert "'77' de FormaPago de Comprobante no es uno de los valores permitidos" in f
    assert "(01, 02, 03, 04, 05, 06, 08, 12," in f and f.endswith(", 99).")
    assert "pide exactamente 20" in problems["NoCertificado"].message
    # an unsealed document: the seal attributes it does not have yet are no error
    unsealed = etree.fromstring(data)
    for name in ("Sello", "Certificado", "NoCertificado"):
        del unsealed.attrib[name]
    assert validate_xsd(unsealed) and validate_limits(etree.tostring(unsealed)) == []
    c = from_xml(data).model_copy(update={"Sello": None, "Certificado": None})
    assert validate_limits(c) == []
    k = c.Conceptos[0]
    c = c.model_copy(update={"Conceptos": [k, k.model_copy(update={"Descripcion": "y" * 1001})]})
    (p,) = validate_limits(c)
    assert p.path == "Conceptos[1].Descripcion" and "línea" not in p.message


# --- hostile and broken bytes -------------------------------------------------------------------


def test_empty_and_blank_input() -> None:
    assert _code(b"") == "CONN-XML-EMPTY"
    assert _code(b"   \n") == "CONN-XML-EMPTY"


def test_not_xml_and_truncated() -> None:
    assert _code(b"esto no es xml") == "CONN-XML-MALFORMED"
    assert _code(SAMPLE_I.read_bytes()[:700]) == "CONN-XML-MALFORMED"
    assert _code(b"\xff\xfe\x00garbage") == "CONN-XML-MALFORMED"
    with pytest.raises(XmlError) as info:
        parse_xml_bytes(b"<a>\n<b></a>")
    assert "línea 2" in info.value.problems[0].message


def test_too_big_is_refused_before_parsing() -> None:
    data = b"<a>" + b"x" * 2000 + b"</a>"
    assert _code(data, max_bytes=1000) == "CONN-XML-TOO-BIG"
    assert parse_xml_bytes(data, max_bytes=5000).tag == "a"


def test_billion_laughs_is_refused_quickly() -> None:
    bomb = b'<?xml version="1.0"?>\n<!DOCTYPE lolz [\n<!ENTITY lol "lol">\n'
    prev = "lol"
    for i in range(1, 10):
        bomb += f'<!ENTITY lol{i} "{("&" + prev + ";") * 10}">\n'.encode()
        prev = f"lol{i}"
    bomb += b"]>\n<lolz>&lol9;</lolz>"
    # refused before any expansion (pytest-timeout guards against a hang)
    assert _code(bomb) == "CONN-XML-DTD"


def test_external_entity_is_never_read() -> None:
    xxe = (
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b'<cfdi:Comprobante xmlns:cfdi="http://www.sat.gob.mx/cfd/4" Version="4.0">&x;</cfdi:Comprobante>'
    )
    with pytest.raises(XmlError) as info:
        parse_xml_bytes(xxe)
    assert info.value.code == "CONN-XML-DTD"
    assert "root:" not in str(info.value)


def test_doctype_hidden_by_another_encoding_is_still_refused() -> None:
    doc = '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>'
    data = doc.encode("utf-16")
    assert b"<!DOCTYPE" not in data
    with pytest.raises(XmlError) as info:
        parse_xml_bytes(data)
    assert info.value.code in ("CONN-XML-DTD", "CONN-XML-MALFORMED")
    assert "root:" not in str(info.value)


def test_dtd_without_entities_is_refused() -> None:
    assert _code(b"<!DOCTYPE a SYSTEM 'http://127.0.0.1:9/x.dtd'><a/>") == "CONN-XML-DTD"


def test_external_xinclude_and_schema_locations_are_not_followed() -> None:
    data = b'<a xmlns:xi="http://www.w3.org/2001/XInclude"><xi:include href="file:///etc/passwd" parse="text"/></a>'
    root = parse_xml_bytes(data)
    assert b"root:" not in etree.tostring(root)


def test_text_instead_of_bytes_is_refused() -> None:
    with pytest.raises(XmlError):
        parse_xml_bytes("<a/>")  # type: ignore[arg-type]


# --- the big catalogs are checked as sets, with the same verdicts as SAT's full schema ----------


@pytest.fixture(scope="module")
def full_sat_schema() -> etree.XMLSchema:
    from connector.cfdi.xmlio import XSD_WRAPPER

    return etree.XMLSchema(etree.parse(str(XSD_WRAPPER)))


@pytest.mark.parametrize(
    ("old", "new", "attribute"),
    [
        (b'ClaveProdServ="52161557"', b'ClaveProdServ="52161599"', "ClaveProdServ"),
        (b'ClaveProdServ="52161557"', b'ClaveProdServ="  52161557 "', None),
        (b'LugarExpedicion="86000"', b'LugarExpedicion="00001"', "LugarExpedicion"),
        (b'LugarExpedicion="86000"', b'LugarExpedicion="99999"', None),
        (b'ClaveUnidad="H87"', b'ClaveUnidad="QQQ"', "ClaveUnidad"),
        (b'ClaveUnidad="H87"', b'ClaveUnidad="E48"', None),
    ],
)
def test_catalog_codes_match_sats_full_schema(
    full_sat_schema: etree.XMLSchema, old: bytes, new: bytes, attribute: str | None
) -> None:
    data = SAMPLE_I.read_bytes().replace(old, new)
    assert data != SAMPLE_I.read_bytes()
    problems = validate_xsd(data)
    sat_ok = full_sat_schema.validate(etree.fromstring(data))
    assert (problems == []) == sat_ok
    if attribute:
        assert len(problems) == 1
        assert f" de {attribute} de " in problems[0].message
        assert "no está en el catálogo c_" in problems[0].message
        assert "línea" in problems[0].message and problems[0].path.endswith(attribute)


def test_schema_compiles_light_while_other_threads_parse_files(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The three big catalogs are taken out however busy the process is: compiling used to
    rely on an lxml resolver that libxml2 skipped while another thread parsed a file, and then
    failed with 'catálogos no encontrados' (the sandbox PAC hit it under load)."""
    import threading

    from connector.cfdi import xmlio_xsd

    stop = threading.Event()

    def parse_files() -> None:
        while not stop.is_set():
            etree.parse(str(xmlio_xsd.XSD_WRAPPER))

    threads = [threading.Thread(target=parse_files) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for _ in range(5):
            monkeypatch.setattr(xmlio_xsd, "_schema", None)
            monkeypatch.setattr(xmlio_xsd, "_catalog_values", {})
            schema = xmlio_xsd._get_schema()
            assert all(len(xmlio_xsd._catalog_values[n]) > 1000 for n in xmlio_xsd._BIG_CATALOGS)
            # the compiled schema has no enumeration left for them: an unknown code passes
            # libxml2 and is reported by our own check
            bad = SAMPLE_I.read_bytes().replace(b'ClaveUnidad="H87"', b'ClaveUnidad="QQQ"')
            assert schema.validate(etree.fromstring(bad))
    finally:
        stop.set()
        for t in threads:
            t.join()
    problems = validate_xsd(bad)
    assert len(problems) == 1 and "'QQQ' de ClaveUnidad" in problems[0].message


def test_parte_and_complemento_concepto_round_trip() -> None:
    data = SAMPLE_I.read_bytes().replace(
        b"</cfdi:Impuestos>\n    </cfdi:Concepto>",
        b"</cfdi:Impuestos>\n      <cfdi:ComplementoConcepto>"
        b'<iedu:instEducativas xmlns:iedu="http://www.sat.gob.mx/iedu" version="1.0" '
        b'nombreAlumno="Juan  Perez" CURP="PEPJ800101HDFRRN09" nivelEducativo="Primaria" '
        b'autRVOE="1234"/></cfdi:ComplementoConcepto>'
        b'<cfdi:Parte ClaveProdServ="52161557" Cantidad="1" Descripcion="Pieza  A">'
        b'<cfdi:InformacionAduanera NumeroPedimento="23  47  3807  3002563"/></cfdi:Parte>\n'
        b"    </cfdi:Concepto>",
    )
    c = from_xml(data)
    k = c.Conceptos[0]
    assert k.Parte[0].Descripcion == "Pieza  A"
    assert k.Parte[0].InformacionAduanera == ["23  47  3807  3002563"]
    assert etree.fromstring(k.ComplementoConcepto[0]).get("nombreAlumno") == "Juan  Perez"
    again = to_xml(c)
    assert from_xml(again) == c
    problems = validate_xsd(again)
    # iedu's XSD is not shipped: a warning, never a false error
    assert [(p.code, p.severity) for p in problems] == [("CONN-XSD-COMPLEMENTO", "warning")]
    root = parse_xml_bytes(again)
    kids = [etree.QName(x).localname for x in root.find(f"{C}Conceptos/{C}Concepto")]
    assert kids == ["Impuestos", "ComplementoConcepto", "Parte"]


# --- fuzz: damaged documents never crash anything -----------------------------------------------


@st.composite
def _damaged(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from([SAMPLE_I, SAMPLE_P])).read_bytes())
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["cut", "flip", "insert", "delete"]))
        pos = draw(st.integers(0, len(data)))
        if kind == "cut":
            data = data[:pos]
        elif kind == "flip" and pos < len(data):
            data[pos] = draw(st.integers(0, 255))
        elif kind == "insert":
            junk = draw(
                st.sampled_from(
                    [b"<", b">", b"&", b'"', b"\x00", b"<!DOCTYPE x>", b"\xc3", b"&amp;"]
                )
            )
            data[pos:pos] = junk
        else:
            data[pos : pos + draw(st.integers(1, 40))] = b""
    return bytes(data)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(_damaged())
def test_damaged_documents_give_problems_never_crashes(data: bytes) -> None:
    from connector.cfdi.cadena import cadena_original
    from connector.cfdi.seal import verify_seal

    try:
        c = from_xml(data)
    except XmlError as exc:
        assert exc.problems and exc.code.startswith("CONN-")
    else:
        assert isinstance(c, Comprobante)
    assert all(p.code and p.message for p in validate_xsd(data))
    assert all(p.code and p.message for p in verify_seal(data))
    try:
        assert cadena_original(data).startswith("||")
    except XmlError as exc:
        assert exc.problems


def test_certificate_with_a_damaged_public_key_is_cfdi40106_not_a_crash() -> None:
    # found by the property test above: one base64 character of the key changed ("AM" → "A+")
    # leaves a certificate x509 parses, whose public key only fails when first used
    from connector.cfdi.seal import verify_seal

    data = SAMPLE_I.read_bytes()
    cert = etree.fromstring(data).get("Certificado")
    assert cert and "AQ8AMIIBCgKC" in cert
    damaged = data.replace(cert.encode(), cert.replace("AQ8AMIIBCgKC", "AQ8A+IIBCgKC").encode())
    assert [p.code for p in verify_seal(damaged)] == ["CFDI40106"]
