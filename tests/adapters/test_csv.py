"""CSV adapter: repeated-header rows grouped into invoices, formats, located errors."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.adapters import load_invoices
from connector.adapters.csv import CsvAdapter
from connector.mappers import Mapping
from tests.conftest import LAYOUTS

MAPPING = Mapping.from_string(
    """
[mapping]
decimal = "comma"
[Comprobante]
Serie = "SERIE"
Folio = "FOLIO"
Fecha = { field = "FECHA", date = "%d/%m/%Y %H:%M:%S" }
Moneda = { default = "MXN" }
TipoDeComprobante = { default = "I" }
Exportacion = { default = "01" }
LugarExpedicion = { value = "42501" }
[Comprobante.Emisor]
Rfc = { value = "EKU9003173C9" }
Nombre = { value = "ESCUELA KEMPER URGATE" }
RegimenFiscal = { value = "601" }
[Comprobante.Receptor]
Rfc = "RFC"
Nombre = "NOMBRE"
DomicilioFiscalReceptor = "CP"
RegimenFiscalReceptor = { default = "612" }
UsoCFDI = { default = "G03" }
[[Comprobante.Conceptos]]
each = "LINEA"
ClaveProdServ = "CLAVE"
Cantidad = "LINEA.CANTIDAD"
ClaveUnidad = { default = "H87" }
Descripcion = "DESCRIPCION"
ValorUnitario = "PRECIO"
ObjetoImp = { default = "01" }
""",
    source="prueba.toml",
)

HEAD = "SERIE;FOLIO;FECHA;RFC;NOMBRE;CP;CLAVE;DESCRIPCION;CANTIDAD;PRECIO\r\n"


def _row(
    folio: str,
    desc: str = "Artículo",
    cantidad: str = "1",
    precio: str = "1.234,50",
    serie: str = "A",
) -> str:
    return f"{serie};{folio};15/01/2025 10:00:00;CACX7605101P8;XOCHILT CASAS CHAVEZ;26015;43201800;{desc};{cantidad};{precio}\r\n"


OPTS = {"delimiter": ";"}


def test_repeated_header_rows_grouped_with_decimal_comma_and_dates() -> None:
    text = (
        HEAD + _row("1", "Cañón", "2", "1.234,50") + _row("1", "Niño", "0,5", "10,00") + _row("2")
    )
    out = list(
        load_invoices(text.encode("cp1252"), "v.csv", adapter="csv", options=OPTS, mapping=MAPPING)
    )
    assert [(i.index, i.location, i.problems) for i in out] == [
        (0, "v.csv:2", []),
        (1, "v.csv:4", []),
    ]
    c = out[0].comprobante
    assert (c.Serie, c.Folio, c.Fecha) == ("A", "1", "2025-01-15T10:00:00")
    assert [(k.Descripcion, k.Cantidad, k.ValorUnitario) for k in c.Conceptos] == [
        ("Cañón", Decimal("2"), Decimal("1234.50")),
        ("Niño", Decimal("0.5"), Decimal("10.00")),
    ]
    assert len(out[1].comprobante.Conceptos) == 1


def test_grouping_is_by_consecutive_key_and_configurable() -> None:
    text = HEAD + _row("1") + _row("1", serie="B") + _row("1")
    keys = [
        i.comprobante.business_key[1:]
        for i in load_invoices(text.encode(), "g.csv", adapter="csv", options=OPTS, mapping=MAPPING)
    ]
    assert keys == [("A", "1"), ("B", "1"), ("A", "1")]
    by_folio = {**OPTS, "group_by": ["FOLIO"]}
    out = list(
        load_invoices(text.encode(), "g.csv", adapter="csv", options=by_folio, mapping=MAPPING)
    )
    assert len(out) == 1 and len(out[0].comprobante.Conceptos) == 3
    one_per_row = {**OPTS, "group_by": []}
    assert (
        len(
            list(
                load_invoices(
                    text.encode(), "g.csv", adapter="csv", options=one_per_row, mapping=MAPPING
                )
            )
        )
        == 3
    )


def test_bad_number_is_located_at_file_line_column() -> None:
    text = HEAD + _row("1") + _row("1", cantidad="dos") + _row("2", precio="1,2,3")
    out = list(load_invoices(text.encode(), "n.csv", adapter="csv", options=OPTS, mapping=MAPPING))
    assert [(p.code, p.location, p.path) for p in out[0].problems] == [
        ("CONN-MAP-NUMBER", "n.csv:3:CANTIDAD", "Conceptos[1].Cantidad")
    ]
    assert "dos" in out[0].problems[0].message
    assert [(p.code, p.location) for p in out[1].problems] == [
        ("CONN-MAP-NUMBER", "n.csv:4:PRECIO")
    ]


def test_wrong_column_count_only_affects_its_invoice() -> None:
    text = HEAD + _row("1") + "A;2;x\r\n" + _row("3")
    out = list(load_invoices(text.encode(), "c.csv", adapter="csv", options=OPTS, mapping=MAPPING))
    assert len(out) == 3
    assert out[0].problems == [] and out[2].problems == []
    assert ("CONN-CSV-COLUMNS", "c.csv:3") in {(p.code, p.location) for p in out[1].problems}


def test_quoted_fields_delimiters_and_multiline_line_numbers() -> None:
    head = HEAD.replace(";", ",")
    row = _row("1").replace(";", ",").replace("1.234,50", '"1.234,50"')
    multi = 'A,2,15/01/2025 10:00:00,CACX7605101P8,"XOCHILT, CASAS",26015,43201800,"dos\nrenglones",1,"5,00"\r\n'
    text = head + row + multi + _row("3", precio="x").replace(";", ",")
    out = list(
        load_invoices(
            text.encode(), "q.csv", adapter="csv", options={"delimiter": ","}, mapping=MAPPING
        )
    )
    assert out[0].comprobante.Conceptos[0].ValorUnitario == Decimal("1234.50")
    assert out[1].comprobante.Receptor.Nombre == "XOCHILT, CASAS"
    assert out[1].comprobante.Conceptos[0].Descripcion == "dos\nrenglones"
    assert out[2].location == "q.csv:5"
    assert out[2].problems[0].location == "q.csv:5:PRECIO"


def test_missing_group_columns_and_missing_mapping_are_problems() -> None:
    (inv,) = load_invoices(b"A;B\n1;2\n", "h.csv", adapter="csv", options=OPTS, mapping=MAPPING)
    assert inv.problems[0].code == "CONN-CSV-HEADER" and "SERIE" in inv.problems[0].message
    (inv,) = load_invoices(
        (HEAD + _row("1")).encode(), "h.csv", adapter="csv", options=OPTS, mapping=None
    )
    assert inv.problems[0].code == "CONN-MAP-NONE"


def test_bad_options_are_rejected_clearly() -> None:
    with pytest.raises(ValueError, match="delimiter"):
        CsvAdapter(delimiter=";;")
    with pytest.raises(ValueError, match="columns"):
        CsvAdapter(header=False)


def test_headerless_flat_layout_like_solucion_factible() -> None:
    spec = (LAYOUTS / "solucionfactible_txt51_cfdi40_fields.txt").read_text(encoding="utf-8")
    header_line = next(line for line in spec.splitlines() if line.startswith("|FOLIO|"))
    columns = header_line.strip("|").split("|")
    rows = [line for line in spec.splitlines() if line.startswith("1001|")]
    assert len(columns) == 54 and len(rows) == 2
    mapping = Mapping.from_string(
        """
[Comprobante]
Serie = "SERIE"
Folio = "FOLIO"
Fecha = "FECHA"
FormaPago = "FORMA_PAGO"
CondicionesDePago = "CONDICIONES_PAGO"
MetodoPago = "METODO_PAGO"
Moneda = "MONEDA_SIMBOLO"
TipoDeComprobante = { default = "I" }
Exportacion = { default = "01" }
LugarExpedicion = "LUGAR_EXPEDICION"
[Comprobante.Emisor]
Rfc = { value = "EKU9003173C9" }
Nombre = { value = "ESCUELA KEMPER URGATE" }
RegimenFiscal = "REGIMEN"
[Comprobante.Receptor]
Rfc = "RFC"
Nombre = "RAZON_SOCIAL"
DomicilioFiscalReceptor = "CP_FISCAL"
RegimenFiscalReceptor = { default = "612" }
UsoCFDI = "USO_CFDI"
[[Comprobante.Conceptos]]
each = "LINEA"
ClaveProdServ = "CLAVE_PROD_SERV"
NoIdentificacion = "CODIGO"
Cantidad = "CANTIDAD"
ClaveUnidad = "CLAVE_UNIDAD"
Unidad = "UNIDAD"
Descripcion = "CONCEPTO"
ValorUnitario = "PRECIO"
ObjetoImp = { default = "02" }
[[Comprobante.Conceptos.Impuestos.Traslados]]
when = "TASA_IVA"
Base = "BASE_IVA"
Impuesto = { value = "002" }
TipoFactor = { value = "Tasa" }
TasaOCuota = "TASA_IVA"
Importe = "MONTO_IVA"
"""
    )
    data = "\n".join(rows).encode("latin-1")  # the layout's default encoding is ISO-8859-1
    options = {
        "delimiter": "|",
        "header": False,
        "columns": columns,
        "group_by": ["SERIE", "FOLIO"],
    }
    (inv,) = load_invoices(data, "sf.txt", adapter="csv", options=options, mapping=mapping)
    assert inv.problems == []
    c = inv.comprobante
    # (the note's synthetic lines carry two extra empty fields before the totals, so SubTotal
    # and Total are not mapped here: amounts.complete derives them)
    assert (c.Serie, c.Folio, c.Fecha, c.Receptor.Rfc) == (
        "A",
        "1001",
        "2025-01-15T10:00:00",
        "CACX7605101P8",
    )
    assert [k.Descripcion for k in c.Conceptos] == ["Memoria USB 32 GB", "Mouse óptico"]
    assert [k.Impuestos.Traslados[0].Importe for k in c.Conceptos] == [
        Decimal("32.00"),
        Decimal("16.00"),
    ]
    from connector.cfdi import amounts, rules

    done = amounts.complete(c)
    assert (done.SubTotal, done.Total) == (Decimal("300.00"), Decimal("348.00"))
    assert rules.validate(done) == []


@settings(max_examples=40, deadline=None)
@given(st.text(alphabet=';"\r\nAB1,.x ñ', max_size=300))
def test_arbitrary_text_never_raises(text: str) -> None:
    out = list(
        load_invoices(
            (HEAD + text).encode("utf-8"), "r.csv", adapter="csv", options=OPTS, mapping=MAPPING
        )
    )
    assert out and all(i.comprobante is not None or i.problems for i in out)
