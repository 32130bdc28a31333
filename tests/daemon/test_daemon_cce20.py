"""Comercio Exterior 2.0 from DAT, end to end (issue 15): export invoices in the default DAT
layout (CCE records) go through the real pipeline — mapping, SAT rules and the complement's
rules, seal, the sandbox PAC over HTTP — and come back stamped; each stamped document is valid by
SAT's XSD with the complement, its cadena is SAT's XSLT's, its seal verifies. A broken one is
refused locally with its code and never reaches the PAC."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from connector.cfdi.cadena import cadena_original, cadena_original_xslt
from connector.cfdi.seal import verify_seal
from connector.cfdi.xmlio import from_xml, validate_xsd
from tests.daemon.conftest import csv_workspace, fecha, run_once, stamps_by_key

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config" / "examples" / "exportacion-cce20.dat"


def _line(kind: str, *fields: str) -> str:
    return kind + "|" + "|".join(fields) + "|\n"


def _dom(
    calle: str, estado: str, pais: str, cp: str, numero: str = "1", ref: str = ""
) -> list[str]:
    return [calle, numero, "", "", "", ref, "", estado, pais, cp]


def _export(
    folio: str,
    *,
    moneda: str = "USD",
    tipo_cambio: str = "17.5000",
    precios: tuple[str, str] = ("100.00", "250.50"),
    cce: tuple[str, ...] = ("2.0", "", "A1", "0", "", "", "FOB", ""),
    mercancias: list[tuple[str, ...]] | None = None,
    tipo: str = "I",
    extra: str = "",
) -> str:
    """One export invoice to ACME INC (two conceptos USB32 and LAP14), CCE records included."""
    forma, metodo, objeto, uso = (
        ("03", "PUE", "02", "S01") if tipo == "I" else ("", "", "01", "S01")
    )
    tc = "" if moneda == "MXN" else tipo_cambio
    text = (
        f"COMPROBANTE|4.0|EX|{folio}|{fecha()}|{forma}|||||{moneda}|{tc}||{tipo}|02|{metodo}|"
        "86000||\n"
        "EMISOR|EKU9003173C9|ESCUELA KEMPER URGATE|601||\n"
        f"RECEPTOR|XEXX010101000|ACME INC|86000|USA|121585958|616|{uso}|\n"
        f"\tCONCEPTO|43201800|USB32|10|H87|Pieza|Memoria USB 32 GB|{precios[0]}|||{objeto}|\n"
    )
    if tipo == "I":
        text += "\t\tTRASLADOCONCEPTO||002|Tasa|0.000000||\n"
    text += f"\tCONCEPTO|43211503|LAP14|5|H87|Pieza|Computadora portátil|{precios[1]}|||{objeto}|\n"
    if tipo == "I":
        text += "\t\tTRASLADOCONCEPTO||002|Tasa|0.000000||\n"
    merc = mercancias or [
        ("USB32", "8523510100", "10", "06", "100.00", "1000.00"),
        ("LAP14", "8471300101", "5", "06", "250.50", "1252.50"),
    ]
    total = sum(float(m[5]) for m in merc)
    text += _line("CCE", *cce, "17.5000", f"{total:.2f}")
    text += "\t" + _line(
        "CCE_EMISOR", "", *_dom("Av. Paseo Tabasco", "TAB", "MEX", "86000", "1203")
    )
    text += "\t" + _line("CCE_RECEPTOR", "", *_dom("Main St", "TX", "USA", "73301"))
    text += extra
    for m in merc:
        text += "\t" + _line("CCE_MERCANCIA", *m)
    return text


VALID = {
    "usd": _export("1"),
    "mxn": _export("2", moneda="MXN", precios=("1750.00", "4383.75")),
    "certificado_y_destinatario": _export(
        "3",
        cce=("2.0", "", "A1", "1", "CO-2025-000123", "MXEC12345", "CIF", "Entrega en Laredo"),
        extra="\t"
        + _line("CCE_DESTINATARIO", "987654321", "ACME Warehouse")
        + "\t\t"
        + _line("CCE_DESTINATARIO_DOMICILIO", *_dom("Dock 4", "TX", "USA", "78040", "", "Gate B")),
    ),
    "una_mercancia_en_dos_fracciones": _export(
        "4",
        mercancias=[
            ("USB32", "8523510100", "6", "06", "100.00", "600.00"),
            ("USB32", "85232101", "4", "06", "100.00", "400.00"),
            ("LAP14", "8471300101", "5", "06", "250.50", "1252.50"),
        ],
    ),
    "traslado_propiedad_de_terceros": _export(
        "5",
        tipo="T",
        moneda="MXN",
        precios=("0", "0"),
        cce=("2.0", "05", "A1", "0", "", "", "", ""),
        extra="\t" + _line("CCE_PROPIETARIO", "121585958", "USA"),
    ),
}


def test_the_shipped_example_is_valid() -> None:
    from connector.adapters import load_invoices
    from connector.cfdi import rules
    from connector.cfdi.amounts import complete
    from connector.cfdi.xmlio import validate_limits

    (inv,) = load_invoices(EXAMPLE.read_bytes(), EXAMPLE.name, adapter="dat", mapping=None)
    assert inv.problems == [] and inv.comprobante is not None
    c = complete(inv.comprobante)
    assert c.ComercioExterior is not None and len(c.ComercioExterior.Mercancias) == 2
    assert rules.validate(c) == [] and validate_limits(c) == []


def test_export_invoices_from_dat_are_stamped_valid(workspace: Path, sandbox) -> None:
    inbox = workspace.parent / "inbox"
    (inbox / "exportaciones.dat").write_text("".join(VALID.values()), encoding="utf-8")
    run_once(workspace)
    errors = list((workspace.parent / "failed").glob("*.error.txt"))
    assert errors == [], errors[0].read_text(encoding="utf-8") if errors else ""
    assert set(stamps_by_key(sandbox.store)) == {("EX", str(i)) for i in range(1, 6)}
    for path in sorted((workspace.parent / "out" / "xml").glob("EX*.xml")):
        xml = path.read_bytes()
        assert validate_xsd(xml) == [], path.name
        assert verify_seal(xml) == [], path.name
        assert b"<cce20:ComercioExterior" in xml
        c = from_xml(xml)
        assert c.ComercioExterior is not None and c.ComercioExterior.Mercancias
        assert cadena_original(xml) == cadena_original_xslt(xml)


def test_a_broken_export_invoice_is_refused_locally_with_its_code(workspace: Path, sandbox) -> None:
    inbox = workspace.parent / "inbox"
    bad = _export("9").replace("|17.5000|2252.50|", "|17.5000|2252.60|")  # TotalUSD ≠ Σ
    (inbox / "mala.dat").write_text(bad, encoding="utf-8")
    run_once(workspace)
    (err,) = (workspace.parent / "failed").glob("*.error.txt")
    text = err.read_text(encoding="utf-8")
    assert "CONN-CCE-005" in text and "ComercioExterior.TotalUSD" in text, text
    assert stamps_by_key(sandbox.store) == {}


# --- CSV (one file, one row per line; config/examples/exportacion-cce20.mapping.toml) -----------

CSV_MAPPING = REPO / "config" / "examples" / "exportacion-cce20.mapping.toml"
CSV_EXAMPLE = REPO / "config" / "examples" / "exportacion-cce20.csv"


def _csv_invoice(folio: str, moneda: str, lines: list[tuple[str, str, str, str]], **kw: str) -> str:
    """Rows of one export invoice: lines are (articulo, fraccion, cantidad, precio_usd)."""
    tc = "17.5000"
    factor = Decimal(tc) if moneda == "MXN" else Decimal(1)
    total = sum(Decimal(q) * Decimal(p) for _, _, q, p in lines)
    head = [
        "EC", folio, fecha(), moneda, "" if moneda == "MXN" else tc, "ACME INC", "USA",
        "121585958", kw.get("incoterm", "FOB"), kw.get("certificado", "0"),
        kw.get("num_certificado", ""), tc, str(total), "Main St", "1", "TX", "73301",
    ]  # fmt: skip
    rows = []
    for art, fraccion, qty, precio in lines:
        local = (Decimal(precio) * factor).quantize(Decimal("0.01"))
        rows.append(",".join([
            *head, art, "43201800", f"Artículo {art}", qty, str(local), fraccion, "6", precio,
            str(Decimal(qty) * Decimal(precio)),
        ]))  # fmt: skip
    return "\n".join(rows) + "\n"


def test_export_invoices_from_csv_are_stamped_valid(tmp_path: Path, sandbox) -> None:
    config = csv_workspace(tmp_path / "ws", sandbox, CSV_MAPPING, "exportaciones-csv")
    header = CSV_EXAMPLE.read_text(encoding="utf-8").splitlines()[0] + "\n"
    body = "".join([
        _csv_invoice("1", "USD", [("USB32", "8523510100", "10", "100.00")]),
        _csv_invoice("2", "MXN", [("USB32", "8523510100", "3", "12.25"),
                                  ("LAP14", "8471300101", "2", "250.50")]),
        _csv_invoice("3", "USD", [("LAP14", "8471300101", "1", "999.99")], incoterm="cif",
                     certificado="1", num_certificado="CO-2025-000123"),
        _csv_invoice("4", "USD", [("A1", "85232101", "7", "0.50"), ("A2", "8523510100", "1", "1"),
                                  ("A3", "8471300101", "4", "10.10")]),
        _csv_invoice("5", "MXN", [("USB32", "8523510100", "100", "3.333")]),
    ])  # fmt: skip
    (config.parent / "inbox-csv" / "exportaciones.csv").write_text(header + body, encoding="utf-8")
    run_once(config)
    errors = list((config.parent / "failed").glob("*.error.txt"))
    assert errors == [], errors[0].read_text(encoding="utf-8") if errors else ""
    assert set(stamps_by_key(sandbox.store)) == {("EC", str(i)) for i in range(1, 6)}
    for path in sorted((config.parent / "out" / "xml").glob("EC*.xml")):
        xml = path.read_bytes()
        assert validate_xsd(xml) == [] and verify_seal(xml) == [], path.name
        assert cadena_original(xml) == cadena_original_xslt(xml)
        c = from_xml(xml)
        assert c.ComercioExterior is not None and c.ComercioExterior.Mercancias


def test_the_shipped_csv_example_is_valid() -> None:
    from connector.adapters import load_invoices
    from connector.cfdi import rules
    from connector.cfdi.amounts import complete
    from connector.cfdi.xmlio import validate_limits
    from connector.mappers.engine import Mapping

    mapping = Mapping.from_toml(CSV_MAPPING)
    data = CSV_EXAMPLE.read_bytes()
    (inv,) = load_invoices(data, CSV_EXAMPLE.name, adapter="csv", mapping=mapping)
    assert inv.problems == [] and inv.comprobante is not None
    c = complete(inv.comprobante)
    assert c.ComercioExterior is not None and len(c.ComercioExterior.Mercancias) == 2
    assert rules.validate(c) == [] and validate_limits(c) == []
