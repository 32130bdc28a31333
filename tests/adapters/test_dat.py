"""DAT adapter with the shipped default layout and mapping."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.adapters import AdapterNotFound, available_adapters, get_adapter, load_invoices
from connector.adapters.dat import DatAdapter, DatLayout, LayoutError
from tests.conftest import LAYOUTS

EXAMPLE = (LAYOUTS / "facturaloplus_pipe_cfdi40_example.txt").read_bytes()


def _invoice(serie: str, folio: str, extra: str = "") -> str:
    return (
        f"COMPROBANTE|4.0|{serie}|{folio}|2025-01-15T10:00:00|03||CONTADO|100.00||MXN||116.00|I|01|PUE|42501||\n"
        "EMISOR|EKU9003173C9|ESCUELA KEMPER URGATE|601||\n"
        "RECEPTOR|CACX7605101P8|XOCHILT CASAS CHAVEZ|26015|||612|G03|\n"
        "CONCEPTOS|1|\n"
        "\tCONCEPTO|43201800|USB32|1|H87|Pieza|Memoria USB|100.00|100.00||02|\n"
        "\t\tIMPUESTOSCONCEPTO|1|0|\n"
        "\t\t\tTRASLADOCONCEPTO|100.00|002|Tasa|0.160000|16.00|\n"
        f"{extra}"
    )


def test_default_layout_parses_the_reference_example() -> None:
    (inv,) = list(load_invoices(EXAMPLE, "ejemplo.dat", adapter="dat", options={}, mapping=None))
    assert inv.problems == []
    assert inv.index == 0 and inv.location == "ejemplo.dat:1" and inv.xml is None
    c = inv.comprobante
    assert c is not None
    assert (c.Version, c.Serie, c.Folio, c.Fecha) == ("4.0", "A", "1001", "2025-01-15T10:00:00")
    assert (c.FormaPago, c.NoCertificado, c.CondicionesDePago) == (
        "03",
        "30001000000500003416",
        "CONTADO",
    )
    assert (c.SubTotal, c.Descuento, c.Total, c.TipoCambio) == (
        Decimal("300.00"),
        None,
        Decimal("348.00"),
        Decimal("1"),
    )
    assert (c.Moneda, c.TipoDeComprobante, c.Exportacion, c.MetodoPago) == ("MXN", "I", "01", "PUE")
    assert c.LugarExpedicion == "42501" and c.Confirmacion is None
    assert c.Emisor.model_dump(exclude_none=True) == {
        "Rfc": "EKU9003173C9",
        "Nombre": "ESCUELA KEMPER URGATE",
        "RegimenFiscal": "601",
    }
    assert c.Receptor.model_dump(exclude_none=True) == {
        "Rfc": "CACX7605101P8",
        "Nombre": "XOCHILT CASAS CHAVEZ",
        "DomicilioFiscalReceptor": "26015",
        "RegimenFiscalReceptor": "612",
        "UsoCFDI": "G03",
    }
    assert [x.NoIdentificacion for x in c.Conceptos] == ["USB32", "MOUSE"]
    first = c.Conceptos[0]
    assert (first.ClaveProdServ, first.Cantidad, first.ClaveUnidad, first.Unidad) == (
        "43201800",
        Decimal("2"),
        "H87",
        "Pieza",
    )
    assert (first.Descripcion, first.ValorUnitario, first.Importe, first.ObjetoImp) == (
        "Memoria USB 32 GB",
        Decimal("100.00"),
        Decimal("200.00"),
        "02",
    )
    (t,) = first.Impuestos.Traslados
    assert (t.Base, t.Impuesto, t.TipoFactor, t.TasaOCuota, t.Importe) == (
        Decimal("200.00"),
        "002",
        "Tasa",
        Decimal("0.160000"),
        Decimal("32.00"),
    )
    assert c.Conceptos[1].Impuestos.Traslados[0].Importe == Decimal("16.00")
    assert c.Impuestos.TotalImpuestosTrasladados == Decimal("48.00")
    (tr,) = c.Impuestos.Traslados
    assert (tr.Base, tr.Importe) == (Decimal("300.00"), Decimal("48.00"))
    assert c.InformacionGlobal is None and c.CfdiRelacionados == [] and c.Pagos is None


def test_many_invoices_per_file_with_locations() -> None:
    text = _invoice("A", "1") + _invoice("A", "2") + _invoice("B", "7")
    out = list(load_invoices(text.encode(), "v.dat", adapter="dat", mapping=None))
    assert [(i.index, i.location) for i in out] == [(0, "v.dat:1"), (1, "v.dat:8"), (2, "v.dat:15")]
    assert [i.comprobante.business_key for i in out] == [
        ("EKU9003173C9", "A", "1"),
        ("EKU9003173C9", "A", "2"),
        ("EKU9003173C9", "B", "7"),
    ]
    assert all(i.problems == [] for i in out)


def test_optional_records_global_related_customs_and_terceros() -> None:
    text = (
        "COMPROBANTE|4.0|G|9|2025-01-15T10:00:00|01|||100.00||MXN||116.00|I|01|PUE|42501||\n"
        "INFORMACIONGLOBAL|01|1|2025|\n"
        "CFDIRELACIONADOS|2|04|\n"
        "CFDIRELACIONADO|5fb2822e-396d-4725-8521-cdc4bdd20ccf|a1b2c3d4-396d-4725-8521-cdc4bdd20ccf|\n"
        "EMISOR|EKU9003173C9|ESCUELA KEMPER URGATE|601||\n"
        "RECEPTOR|XAXX010101000|PUBLICO EN GENERAL|42501|||616|S01|\n"
        "CONCEPTO|01010101|T1|1|ACT|Actividad|Venta|100.00|100.00||02|\n"
        "TRASLADOCONCEPTO|100.00|002|Tasa|0.160000|16.00|\n"
        "RETENCIONCONCEPTO|100.00|002|Tasa|0.040000|4.00|\n"
        "ACUENTATERCEROS|cacx7605101p8|XOCHILT CASAS CHAVEZ|612|26015|\n"
        "INFORMACIONADUANERA|2|\n"
        "NUMEROSPEDIMENTO|21  47  3807  8003832|21  47  3807  8003833|\n"
    )
    (inv,) = list(load_invoices(text.encode(), "g.dat", adapter="dat", mapping=None))
    assert inv.problems == []
    c = inv.comprobante
    assert (
        c.InformacionGlobal.Periodicidad,
        c.InformacionGlobal.Meses,
        c.InformacionGlobal.Anio,
    ) == ("01", "01", 2025)
    (rel,) = c.CfdiRelacionados
    assert rel.TipoRelacion == "04"
    assert rel.UUIDs == [
        "5FB2822E-396D-4725-8521-CDC4BDD20CCF",
        "A1B2C3D4-396D-4725-8521-CDC4BDD20CCF",
    ]
    con = c.Conceptos[0]
    assert con.Impuestos.Retenciones[0].TasaOCuota == Decimal("0.040000")
    assert con.ACuentaTerceros.RfcACuentaTerceros == "CACX7605101P8"
    assert con.InformacionAduanera == ["21  47  3807  8003832", "21  47  3807  8003833"]


@pytest.mark.parametrize(
    ("bad_line", "code"),
    [
        ("\tFOO|1|2|\n", "CONN-DAT-RECORD"),
        ("\tCONCEPTO|43201800|X|1|H87|\n", "CONN-DAT-FIELDS"),
        ("\tEMISOR|EKU9003173C9|ESCUELA KEMPER URGATE|601|extra|otra|\n", "CONN-DAT-FIELDS"),
        (
            "IMPUESTOS|1|0|16.00||\nTRASLADOCONCEPTO|100.00|002|Tasa|0.160000|16.00|\n",
            "CONN-DAT-ORDER",
        ),
        ("DOCTORELACIONADO|x|A|1|MXN||1|10|10|0|01|\n", "CONN-DAT-ORDER"),
    ],
)
def test_each_error_kind_has_its_code_and_line_and_affects_only_its_invoice(
    bad_line: str, code: str
) -> None:
    text = _invoice("A", "1") + _invoice("A", "2", extra=bad_line) + _invoice("A", "3")
    out = list(load_invoices(text.encode(), "e.dat", adapter="dat", mapping=None))
    assert len(out) == 3
    assert out[0].problems == [] and out[2].problems == []
    bad = [p for p in out[1].problems if p.code == code]
    assert bad, out[1].problems
    expected_line = 8 + 7 + bad_line.count("\n") - 1  # the last line of the extra text
    assert bad[0].location == f"e.dat:{expected_line}"
    assert bad[0].message  # Spanish message
    assert out[1].comprobante is not None and out[1].comprobante.Folio == "2"


def test_children_of_a_bad_record_are_not_attached_to_the_previous_one() -> None:
    extra = "\tCONCEPTO|1|2|\n\t\tTRASLADOCONCEPTO|50.00|002|Tasa|0.160000|8.00|\n"
    (inv,) = list(
        load_invoices(_invoice("A", "1", extra).encode(), "c.dat", adapter="dat", mapping=None)
    )
    assert [p.code for p in inv.problems] == ["CONN-DAT-FIELDS"]
    assert len(inv.comprobante.Conceptos) == 1
    assert len(inv.comprobante.Conceptos[0].Impuestos.Traslados) == 1


def test_records_before_the_first_invoice_are_reported_on_their_own() -> None:
    text = "EMISOR|EKU9003173C9|X|601||\n" + _invoice("A", "1")
    out = list(load_invoices(text.encode(), "o.dat", adapter="dat", mapping=None))
    assert len(out) == 2
    assert out[0].comprobante is None
    assert [(p.code, p.location) for p in out[0].problems] == [("CONN-DAT-ORDER", "o.dat:1")]
    assert out[1].problems == [] and out[1].location == "o.dat:2"


def test_cp1252_input_with_accents_decodes_right() -> None:
    text = (
        _invoice("A", "1")
        .replace("XOCHILT CASAS CHAVEZ", "JOSÉ PEÑA NÚÑEZ")
        .replace("Memoria USB", "Cañón óptico")
    )
    data = text.replace("\n", "\r\n").encode("cp1252")
    for options in ({}, {"encoding": "cp1252"}, {"encoding": "latin-1"}):
        (inv,) = list(load_invoices(data, "w.dat", adapter="dat", options=options, mapping=None))
        assert inv.problems == []
        assert inv.comprobante.Receptor.Nombre == "JOSÉ PEÑA NÚÑEZ"
        assert inv.comprobante.Conceptos[0].Descripcion == "Cañón óptico"
    bom = b"\xef\xbb\xbf" + text.encode("utf-8")
    (inv,) = list(
        load_invoices(bom, "u.dat", adapter="dat", options={"encoding": "utf-8"}, mapping=None)
    )
    assert inv.problems == [] and inv.comprobante.Receptor.Nombre == "JOSÉ PEÑA NÚÑEZ"


@pytest.mark.parametrize(
    ("encode", "options", "code", "where"),
    [
        (lambda t: t.encode("utf-8"), {"encoding": "cp1252"}, "CONN-DECODE-UTF8", "x.dat:3"),
        (lambda t: t.encode("utf-8"), {"encoding": "latin-1"}, "CONN-DECODE-UTF8", "x.dat:3"),
        (
            lambda t: b"\xef\xbb\xbf" + t.encode(),
            {"encoding": "cp1252"},
            "CONN-DECODE-UTF8",
            "x.dat:1",
        ),
        (lambda t: t.encode("utf-16"), {"encoding": "cp1252"}, "CONN-DECODE-UTF16", "x.dat:1"),
        (lambda t: t.encode("utf-16-le"), {"encoding": "utf-8"}, "CONN-DECODE-UTF16", "x.dat:1"),
        (lambda t: t.encode("utf-16-be"), {}, None, None),
        (lambda t: t.encode("utf-16"), {}, None, None),
        (lambda t: t.encode("utf-16"), {"encoding": "utf-16"}, None, None),
        (lambda t: t.encode("utf-8"), {}, None, None),
        (lambda t: t.encode().decode("cp1252").encode(), {}, "CONN-DECODE-MOJIBAKE", "x.dat:3"),
    ],
)
def test_a_file_in_another_encoding_is_named_never_read_as_mojibake(
    encode: Any, options: dict[str, str], code: str | None, where: str | None
) -> None:
    text = _invoice("A", "1").replace("XOCHILT CASAS CHAVEZ", "JOSÉ PEÑA NÚÑEZ")
    out = list(load_invoices(encode(text), "x.dat", adapter="dat", options=options, mapping=None))
    if code is None:
        (inv,) = out
        assert inv.problems == [] and inv.comprobante.Receptor.Nombre == "JOSÉ PEÑA NÚÑEZ"
    else:  # one problem for the file, not one per record it could not recognize
        (inv,) = out
        assert [(p.code, p.location) for p in inv.problems] == [(code, where)]


def test_undecodable_file_gives_one_invoice_with_a_problem() -> None:
    data = _invoice("A", "1").replace("XOCHILT", "JOSÉ").encode("cp1252")
    out = list(
        load_invoices(data, "x.dat", adapter="dat", options={"encoding": "utf-8"}, mapping=None)
    )
    assert len(out) == 1 and out[0].comprobante is None
    assert out[0].problems[0].code == "CONN-DECODE"
    assert out[0].problems[0].location == "x.dat:3"


def test_mapping_problems_carry_file_line_field() -> None:
    text = _invoice("A", "1").replace("|1|H87|", "|uno|H87|")
    (inv,) = list(load_invoices(text.encode(), "m.dat", adapter="dat", mapping=None))
    (p,) = inv.problems
    assert p.code == "CONN-MAP-NUMBER"
    assert p.location == "m.dat:5:Cantidad"
    assert p.path == "Conceptos[0].Cantidad"


def test_empty_file_and_unknown_adapter_are_problems_not_exceptions() -> None:
    (inv,) = list(load_invoices(b"", "empty.dat", adapter="dat", mapping=None))
    assert inv.problems[0].code == "CONN-EMPTY"
    (inv,) = list(load_invoices(b"x", "f.dat", adapter="nope", mapping=None))
    assert inv.problems[0].code == "CONN-ADAPTER" and "dat" in inv.problems[0].message
    (inv,) = list(load_invoices(b"x", "f.dat", adapter="dat", options={"bogus": 1}, mapping=None))
    assert inv.problems[0].code == "CONN-ADAPTER"


def test_registry_lists_the_shipped_adapters() -> None:
    assert {"dat", "csv", "xml"} <= set(available_adapters())
    assert isinstance(get_adapter("dat"), DatAdapter)
    with pytest.raises(AdapterNotFound, match="Disponibles: .*csv.*dat.*xml"):
        get_adapter("sap")


def test_layout_errors_are_all_reported() -> None:
    with pytest.raises(LayoutError) as info:
        DatLayout.from_dict(
            {
                "layout": {"start": "HEAD", "delimiter": "||", "bogus": 1},
                "records": {
                    "LINE": {"parent": "NOPE", "fields": ["a"]},
                    "OTHER": {"fields": []},
                },
            }
        )
    places = {p.path for p in info.value.problems}
    assert {
        "[layout] bogus",
        "[layout] delimiter",
        "[layout] start",
        "[records.LINE] parent",
        "[records.OTHER] fields",
    } <= places


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    out = list(load_invoices(data, "r.dat", adapter="dat", mapping=None))
    assert out
    for inv in out:
        assert inv.comprobante is not None or inv.problems


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.sampled_from(_invoice("A", "1").splitlines() + ["FOO|1|", "CONCEPTO|1|", "", "#x"]),
        max_size=25,
    )
)
def test_shuffled_records_never_raise(lines: list[str]) -> None:
    out = list(load_invoices("\n".join(lines).encode(), "s.dat", adapter="dat", mapping=None))
    assert out


def test_sat_rule_problems_can_be_located_at_the_source_field() -> None:
    from connector.cfdi import amounts, rules

    text = (
        _invoice("A", "1").replace("CACX7605101P8", "CACX7605101").replace("43201800", "99999999")
    )
    (inv,) = load_invoices(text.encode(), "r.dat", adapter="dat", mapping=None)
    assert inv.problems == []
    located = {
        p.path: inv.locate(p).location for p in rules.validate(amounts.complete(inv.comprobante))
    }
    assert located["Receptor.Rfc"] == "r.dat:3:Rfc"
    assert located["Conceptos[0].ClaveProdServ"] == "r.dat:5:ClaveProdServ"
    # a problem that already has a location keeps it; one without a path gets the invoice's
    from connector.cfdi.errors import Problem

    assert inv.locate(Problem("X", "Receptor.Rfc", "m", location="a:1")).location == "a:1"
    assert inv.locate(Problem("X", "", "m")).location == "r.dat:1"
    assert (
        inv.locate(Problem("X", "Conceptos[0].Impuestos.Traslados[0].Importe", "m")).location
        == "r.dat:7:Importe"
    )


def test_ignored_records_before_the_first_invoice_are_not_an_invoice() -> None:
    text = "CORREO|x@example.com|\nCONCEPTOS|1|\n" + _invoice("A", "1")
    out = list(load_invoices(text.encode(), "i.dat", adapter="dat", mapping=None))
    assert len(out) == 1 and out[0].problems == [] and out[0].location == "i.dat:3"
