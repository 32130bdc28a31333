"""Mapping engine: defaults, transforms, lookups, conditions, locations, check of the file."""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.adapters.base import ParsedRecord
from connector.mappers import Mapping, MappingError, parse_decimal
from connector.mappers.transforms import TransformError, build

HEADER = """
[Comprobante]
Serie = "SERIE"
Folio = "FOLIO"
Fecha = { field = "FECHA", date = ["%d/%m/%Y %H:%M:%S", "%d/%m/%Y"] }
Moneda = { field = "MONEDA", default = "MXN", transform = "upper" }
TipoDeComprobante = { default = "I" }
Exportacion = { default = "01" }
LugarExpedicion = { field = "CP_EXP", zfill = 5 }
FormaPago = { field = "PAGO", map = { EFECTIVO = "01", TRANSFERENCIA = "03" } }
[Comprobante.Emisor]
Rfc = { value = "EKU9003173C9" }
Nombre = { value = "ESCUELA KEMPER URGATE" }
RegimenFiscal = { value = "601" }
[Comprobante.Receptor]
Rfc = { field = "RFC", transform = "rfc" }
Nombre = { field = "NOMBRE", transform = ["trim", "collapse", "upper"] }
DomicilioFiscalReceptor = { field = "CP", zfill = 5 }
RegimenFiscalReceptor = "REGIMEN"
UsoCFDI = { field = "USO", default = "G03" }
"""

LINES = """
[[Comprobante.Conceptos]]
each = "LINEA"
ClaveProdServ = "CLAVE"
Cantidad = "CANTIDAD"
ClaveUnidad = { field = "UNIDAD", default = "H87" }
Descripcion = { field = "DESC", truncate = 10 }
ValorUnitario = "PRECIO"
ObjetoImp = { default = "02" }
[[Comprobante.Conceptos.Impuestos.Traslados]]
when = "IVA"
Impuesto = { value = "002" }
TipoFactor = { value = "Tasa" }
TasaOCuota = { field = "IVA", transform = "percent" }
"""


def _row(line: int, **fields: str) -> dict:
    return {"line": line, "fields": fields}


def _invoice(rows: list[dict], filename: str = "v.csv") -> ParsedRecord:
    root = ParsedRecord("FACTURA", dict(rows[0]["fields"]), rows[0]["line"], filename)
    for r in rows:
        root.add(ParsedRecord("LINEA", r["fields"], r["line"], filename))
    return root


BASE_ROW = {
    "SERIE": "A",
    "FOLIO": "7",
    "FECHA": "05/03/2025 13:04:05",
    "MONEDA": "",
    "CP_EXP": "6600",
    "PAGO": "transferencia",
    "RFC": " cacx-760510-1p8 ",
    "NOMBRE": "  xochilt   casas chavez ",
    "CP": "26015",
    "REGIMEN": "612",
    "USO": "",
    "CLAVE": "43201800",
    "CANTIDAD": "2",
    "UNIDAD": "",
    "DESC": "Memoria USB de 32 GB",
    "PRECIO": "1,234.50",
    "IVA": "16",
}


def test_defaults_values_and_transforms() -> None:
    m = Mapping.from_string(HEADER + LINES)
    c, problems = m.map(_invoice([_row(2, **BASE_ROW)]))
    assert problems == []
    assert (c.Serie, c.Folio, c.Fecha) == ("A", "7", "2025-03-05T13:04:05")
    assert (c.Moneda, c.TipoDeComprobante, c.Exportacion) == ("MXN", "I", "01")  # defaults
    assert c.LugarExpedicion == "06600"  # zfill
    assert c.FormaPago == "03"  # map, case-insensitive
    assert c.Emisor.Rfc == "EKU9003173C9"  # value
    assert c.Receptor.Rfc == "CACX7605101P8"  # rfc: trim, upper, no hyphens
    assert c.Receptor.Nombre == "XOCHILT CASAS CHAVEZ"  # trim + collapse + upper
    assert c.Receptor.UsoCFDI == "G03"
    (k,) = c.Conceptos
    assert (k.ClaveUnidad, k.Descripcion, k.ObjetoImp) == ("H87", "Memoria US", "02")  # truncate
    assert k.ValorUnitario == Decimal("1234.50")  # thousands separator, decimal point
    (t,) = k.Impuestos.Traslados
    assert t.TasaOCuota == Decimal("0.160000") and t.Base is None  # amounts.complete derives Base


def test_when_skips_a_tax_and_empty_impuestos_disappear() -> None:
    m = Mapping.from_string(HEADER + LINES)
    c, problems = m.map(_invoice([_row(2, **{**BASE_ROW, "IVA": " "})]))
    assert problems == [] and c.Conceptos[0].Impuestos is None


def test_typed_reference_outside_the_scope_is_the_first_record_depth_first() -> None:
    # "NOTA.TEXTO" from the comprobante: no NOTA above it, so the invoice's first NOTA in
    # depth-first order (the one under the line, not the later one at the top); every invoice
    # mapped by the same mapping finds its own
    header = HEADER.replace('Serie = "SERIE"', 'Serie = "SERIE"\nCondicionesDePago = "NOTA.TEXTO"')
    m = Mapping.from_string(header + LINES)
    for first, later in (("a", "b"), ("c", "d")):
        root = _invoice([_row(2, **BASE_ROW)])
        root.children[0].add(ParsedRecord("NOTA", {"TEXTO": first}, 3, "v.csv"))
        root.add(ParsedRecord("NOTA", {"TEXTO": later}, 4, "v.csv"))
        c, problems, locate = m.map_located(root)
        assert problems == [] and c is not None
        assert c.CondicionesDePago == first
        assert locate("CondicionesDePago") == "v.csv:3:TEXTO"


def test_date_only_format_and_a_bad_date() -> None:
    m = Mapping.from_string(HEADER + LINES)
    c, _ = m.map(_invoice([_row(2, **{**BASE_ROW, "FECHA": "05/03/2025"})]))
    assert c.Fecha == "2025-03-05T00:00:00"
    c, problems = m.map(_invoice([_row(9, **{**BASE_ROW, "FECHA": "2025/13/45"})]))
    assert [(p.code, p.path, p.location) for p in problems] == [
        ("CONN-MAP-DATE", "Fecha", "v.csv:9:FECHA")
    ]
    assert "2025/13/45" in problems[0].message
    assert c is None  # Fecha is required: no Comprobante, and only one problem for it


def test_decimal_comma_for_the_whole_file_and_located_number_errors() -> None:
    m = Mapping.from_string('[mapping]\ndecimal = "comma"\n' + HEADER + LINES)
    rows = [
        _row(2, **{**BASE_ROW, "PRECIO": "1.234,56", "CANTIDAD": "1,5"}),
        _row(3, **{**BASE_ROW, "PRECIO": "12,3x", "CANTIDAD": "2"}),
    ]
    c, problems = m.map(_invoice(rows))
    assert [(p.code, p.path, p.location) for p in problems] == [
        ("CONN-MAP-NUMBER", "Conceptos[1].ValorUnitario", "v.csv:3:PRECIO")
    ]
    assert "12,3x" in problems[0].message


def test_missing_required_field_is_located_at_its_source() -> None:
    m = Mapping.from_string(HEADER + LINES)
    c, problems = m.map(_invoice([_row(4, **{**BASE_ROW, "REGIMEN": ""})]))
    assert c is None
    (p,) = problems
    assert p.path == "Receptor.RegimenFiscalReceptor" and p.location == "v.csv:4:REGIMEN"
    assert "obligatorio" in p.message


@pytest.mark.parametrize(
    ("name", "arg", "value", "expected"),
    [
        ("trim", None, "  a b ", "a b"),
        ("upper", None, "g03", "G03"),
        ("lower", None, "ABC", "abc"),
        ("rfc", None, " xaxx-010101 000 ", "XAXX010101000"),
        ("zfill", 5, "6600", "06600"),
        ("zfill", 5, "6600.0", "06600"),
        ("date", "%d/%m/%Y %H:%M", "31/12/2024 23:59", "2024-12-31T23:59:00"),
        ("date", "%d/%m/%Y", "2024-12-31T08:00:00", "2024-12-31T08:00:00"),  # ISO passes
        ("decimal", "comma", "1.234.567,891", "1234567.891"),
        ("decimal", "point", "1,234,567.891", "1234567.891"),
        ("decimal", None, "$ 10.50", "10.50"),
        ("map", {"EFECTIVO": "01"}, "Efectivo", "01"),
        ("map", {"EFECTIVO": "01"}, "02", "02"),
        ("percent", None, "16", "0.160000"),
        ("percent", None, "10.6667", "0.106667"),
        ("truncate", 3, "abcdef", "abc"),
        ("collapse", None, "a   b\t c", "a b c"),
    ],
)
def test_each_transform(name: str, arg: object, value: str, expected: str) -> None:
    assert build(name, arg)(value) == expected


@pytest.mark.parametrize(
    ("name", "arg", "value"),
    [
        ("zfill", 5, "12a"),
        ("date", "%d/%m/%Y", "2024-31-12"),
        ("decimal", "point", "1,5"),
        ("decimal", "comma", "1.5,5"),
        ("decimal", None, "abc"),
        ("percent", None, "x"),
    ],
)
def test_transform_rejections(name: str, arg: object, value: str) -> None:
    with pytest.raises(TransformError):
        build(name, arg)(value)


@settings(max_examples=50, deadline=None)
@given(
    st.decimals(
        min_value=-(10**9), max_value=10**9, places=2, allow_nan=False, allow_infinity=False
    )
)
def test_parse_decimal_reads_both_styles_with_thousands(d: Decimal) -> None:
    point = f"{d:,.2f}"
    comma = point.replace(",", "_").replace(".", ",").replace("_", ".")
    assert parse_decimal(point) == d
    assert parse_decimal(comma, comma=True) == d
    assert parse_decimal(f"{d:.2f}") == d


# --- lookups -----------------------------------------------------------------------------------

LOOKUP_MAPPING = """
[lookups.articulos]
file = "articulos.csv"
key = "codigo"
label = "el artículo"
[lookups.clientes]
file = "tablas/clientes.csv"
key = "cliente"
[Comprobante]
Fecha = { value = "2025-01-01T00:00:00" }
Moneda = { value = "MXN" }
TipoDeComprobante = { value = "I" }
Exportacion = { value = "01" }
LugarExpedicion = { value = "42501" }
[Comprobante.Emisor]
Rfc = { value = "EKU9003173C9" }
Nombre = { value = "ESCUELA KEMPER URGATE" }
RegimenFiscal = { value = "601" }
[Comprobante.Receptor]
Rfc = { field = "RFC", lookup = "clientes", key = "CLIENTE", column = "rfc" }
Nombre = { lookup = "clientes", key = "CLIENTE", column = "nombre" }
DomicilioFiscalReceptor = { lookup = "clientes", key = "CLIENTE", column = "cp", zfill = 5 }
RegimenFiscalReceptor = { lookup = "clientes", key = "CLIENTE", column = "regimen" }
UsoCFDI = { lookup = "clientes", key = "CLIENTE", column = "uso", default = "G03" }
[[Comprobante.Conceptos]]
each = "LINEA"
ClaveProdServ = { lookup = "articulos", key = "ART", column = "clave" }
ClaveUnidad = { lookup = "articulos", key = "ART", column = "unidad" }
ObjetoImp = { lookup = "articulos", key = "ART", column = "objeto" }
Cantidad = "CANT"
Descripcion = "ART"
ValorUnitario = "PRECIO"
[[Comprobante.Conceptos.Impuestos.Traslados]]
when = { lookup = "articulos", key = "ART", column = "iva", not_in = ["", "exento"] }
Impuesto = { value = "002" }
TipoFactor = { value = "Tasa" }
TasaOCuota = { lookup = "articulos", key = "ART", column = "iva" }
[[Comprobante.Conceptos.Impuestos.Traslados]]
when = { lookup = "articulos", key = "ART", column = "iva", equals = "exento" }
Impuesto = { value = "002" }
TipoFactor = { value = "Exento" }
"""


@pytest.fixture
def lookup_dir(tmp_path: Path) -> Path:
    (tmp_path / "tablas").mkdir()
    (tmp_path / "articulos.csv").write_text(
        "codigo,clave,unidad,objeto,iva\nA1,43201800,H87,02,0.160000\nL1,55101500,H87,02,exento\n",
        encoding="utf-8",
    )
    (tmp_path / "tablas" / "clientes.csv").write_bytes(
        "cliente,rfc,nombre,cp,regimen,uso\nC1,CACX7605101P8,JOSÉ PEÑA,6600,612,\n".encode("cp1252")
    )
    return tmp_path


def test_lookup_hits(lookup_dir: Path) -> None:
    m = Mapping.from_string(LOOKUP_MAPPING, base_dir=lookup_dir)
    rows = [
        _row(2, CLIENTE="C1", RFC="", ART="A1", CANT="1", PRECIO="10"),
        _row(3, CLIENTE="C1", RFC="", ART="l1", CANT="1", PRECIO="10"),
    ]
    c, problems = m.map(_invoice(rows))
    assert problems == []
    assert (c.Receptor.Rfc, c.Receptor.Nombre, c.Receptor.DomicilioFiscalReceptor) == (
        "CACX7605101P8",
        "JOSÉ PEÑA",
        "06600",
    )
    assert c.Receptor.UsoCFDI == "G03"  # empty column → default
    assert c.Conceptos[0].Impuestos.Traslados[0].TasaOCuota == Decimal("0.160000")
    assert c.Conceptos[1].ClaveProdServ == "55101500"  # key matched case-insensitively
    assert c.Conceptos[1].Impuestos.Traslados[0].TipoFactor == "Exento"


def test_field_wins_over_lookup(lookup_dir: Path) -> None:
    m = Mapping.from_string(LOOKUP_MAPPING, base_dir=lookup_dir)
    c, _ = m.map(
        _invoice([_row(2, CLIENTE="C1", RFC="XAXX010101000", ART="A1", CANT="1", PRECIO="1")])
    )
    assert c.Receptor.Rfc == "XAXX010101000"


def test_lookup_miss_is_one_clear_problem_per_key(lookup_dir: Path) -> None:
    m = Mapping.from_string(LOOKUP_MAPPING, base_dir=lookup_dir)
    rows = [
        _row(2, CLIENTE="C1", RFC="", ART="XYZ", CANT="1", PRECIO="10"),
        _row(3, CLIENTE="C1", RFC="", ART="XYZ", CANT="1", PRECIO="10"),
    ]
    c, problems = m.map(_invoice(rows))
    misses = [p for p in problems if p.code == "CONN-MAP-LOOKUP"]
    assert len(misses) == 1
    assert misses[0].message == "El artículo 'XYZ' no está en la tabla articulos.csv."
    assert misses[0].location == "v.csv:2:ART"
    assert c is None
    assert {p.code for p in problems} == {"CONN-MAP-LOOKUP"}  # no follow-up "missing" noise


def test_lookup_table_is_reread_when_it_changes(lookup_dir: Path) -> None:
    m = Mapping.from_string(LOOKUP_MAPPING, base_dir=lookup_dir)
    inv = _invoice([_row(2, CLIENTE="C1", RFC="", ART="B2", CANT="1", PRECIO="10")])
    assert m.map(inv)[0] is None
    table = lookup_dir / "articulos.csv"
    table.write_text(table.read_text() + "B2,43211708,H87,02,0.080000\n", encoding="utf-8")
    st_ = table.stat()
    os.utime(table, ns=(st_.st_atime_ns, st_.st_mtime_ns + 1_000_000_000))
    c, problems = m.map(inv)
    assert problems == [] and c.Conceptos[0].ClaveProdServ == "43211708"


# --- the mapping file is checked as a whole -------------------------------------------------------


def test_from_toml_reports_every_error_with_its_place(tmp_path: Path) -> None:
    (tmp_path / "art.csv").write_text("codigo,clave\nA,1\n", encoding="utf-8")
    path = tmp_path / "malo.toml"
    path.write_text(
        """
[mapping]
decimal = "coma"
colour = "red"
[lookups.art]
file = "art.csv"
key = "codigo"
[lookups.nada]
file = "no_existe.csv"
key = "x"
[extra]
[Comprobante]
Serie = "SERIE"
Foilo = "FOLIO"
Fecha = { field = "FECHA", date = 5 }
Moneda = { field = "M", transform = ["upper", "shout"] }
LugarExpedicion = { field = "CP", zfill = "cinco" }
Exportacion = { lookup = "art", key = "A", column = "no_col" }
TipoDeComprobante = { lookup = "otra", key = "A", column = "clave" }
Total = 5
[Comprobante.Emisor]
Rfc = { }
[[Comprobante.Conceptos]]
record = "LINEA"
Cantidad = { field = "Q", bogus = 1 }
ValorUnitario = { field = "P", equals = "1" }
""",
        encoding="utf-8",
    )
    with pytest.raises(MappingError) as info:
        Mapping.from_toml(path)
    places = [p.path for p in info.value.problems]
    for expected in [
        "[mapping] decimal",
        "[mapping] colour",
        "[lookups.nada] file",
        "[extra]",
        "[Comprobante] Foilo",
        "[Comprobante] Fecha.date",
        "[Comprobante] Moneda.transform",
        "[Comprobante] LugarExpedicion.zfill",
        "[Comprobante] Exportacion.column",
        "[Comprobante] TipoDeComprobante.lookup",
        "[Comprobante] Total",
        "[Comprobante.Emisor] Rfc",
        "[[Comprobante.Conceptos]] #1 record",
        "[[Comprobante.Conceptos]] #1 Cantidad.bogus",
        "[[Comprobante.Conceptos]] #1 ValorUnitario.equals",
        "[Comprobante] Receptor",  # required fields and nodes that the mapping does not fill
        "[Comprobante.Emisor] Nombre",
        "[[Comprobante.Conceptos]] #1 ClaveProdServ",
    ]:
        assert expected in places, (expected, places)
    assert all(
        p.code == "CONN-MAPPING" and p.location.startswith("malo.toml: ")
        for p in info.value.problems
    )
    assert all(p.message for p in info.value.problems)


def test_toml_syntax_error_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "x.toml"
    bad.write_text("[Comprobante\nSerie = 1", encoding="utf-8")
    with pytest.raises(MappingError, match="no es TOML válido"):
        Mapping.from_toml(bad)
    with pytest.raises(MappingError, match="No se puede leer"):
        Mapping.from_toml(tmp_path / "nope.toml")


def test_shipped_mappings_load() -> None:
    from connector.adapters.dat import DEFAULT_MAPPING
    from connector.demo.erp import CSV_MAPPING

    assert Mapping.from_toml(DEFAULT_MAPPING).name == "default-dat"
    assert Mapping.from_toml(CSV_MAPPING).decimal_comma


@settings(max_examples=50, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(sorted(BASE_ROW)),
        st.text(alphabet="0123456789.,-$ abcñ/:T", max_size=12),
        max_size=len(BASE_ROW),
    )
)
def test_arbitrary_field_values_never_raise(overrides: dict[str, str]) -> None:
    m = Mapping.from_string('[mapping]\ndecimal = "comma"\n' + HEADER + LINES)
    c, problems = m.map(_invoice([_row(2, **{**BASE_ROW, **overrides})]))
    assert c is not None or problems
    assert all(p.location and p.location.startswith("v.csv:2") for p in problems)


def test_a_single_child_record_of_one_line_is_not_given_to_the_others() -> None:
    # `record = "ACUENTATERCEROS"` under [[Comprobante.Conceptos]]: the second CONCEPTO's
    # ACUENTATERCEROS was found by the whole-invoice search and copied into the first concepto
    from connector.adapters import load_invoices

    dat = (
        "COMPROBANTE|4.0|A|1|2025-01-15T10:00:00|03|||||MXN|||I|01|PUE|86000||\n"
        "EMISOR|EKU9003173C9|ESCUELA KEMPER URGATE|601||\n"
        "RECEPTOR|CACX7605101P8|XOCHILT CASAS CHAVEZ|36257|||612|G03|\n"
        "CONCEPTO|43201800|USB32|1|H87|Pieza|Memoria USB|100.00|||02|\n"
        "CONCEPTO|43201800|USB33|1|H87|Pieza|Memoria USB|100.00|||02|\n"
        "ACUENTATERCEROS|CACX7605101P8|XOCHILT CASAS CHAVEZ|612|36257|\n"
    )
    (inv,) = load_invoices(dat.encode(), "x.dat", adapter="dat", mapping=None)
    assert inv.problems == []
    first, second = inv.comprobante.Conceptos
    assert first.ACuentaTerceros is None
    assert second.ACuentaTerceros.RfcACuentaTerceros == "CACX7605101P8"
