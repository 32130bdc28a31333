"""Carta Porte 3.1 (autotransporte federal) from DAT and CSV, end to end (issue 15): traslados and
freight invoices in the default DAT layout (CARTAPORTE and CP_* records) or a one-file CSV go
through the real pipeline — mapping, IdCCP and totals, SAT rules and the complement's rules,
seal, the sandbox PAC over HTTP — and come back stamped; each stamped document is valid by SAT's
XSD with the complement, its cadena is SAT's XSLT's, its seal verifies. A broken one, and a
rail one, are refused locally with their code and never reach the PAC."""

from __future__ import annotations

import re
from pathlib import Path

from connector.cfdi.cadena import cadena_original, cadena_original_xslt
from connector.cfdi.seal import verify_seal
from connector.cfdi.xmlio import from_xml, validate_xsd
from tests.daemon.conftest import csv_workspace, fecha, run_once, stamps_by_key

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config" / "examples" / "cartaporte31.dat"
CSV_MAPPING = REPO / "config" / "examples" / "cartaporte31.mapping.toml"
CSV_EXAMPLE = REPO / "config" / "examples" / "cartaporte31.csv"
IDCCP = re.compile(r'IdCCP="CCC[0-9a-f]{5}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"')
EMISOR = ("EKU9003173C9", "ESCUELA KEMPER URGATE")


def _line(kind: str, *fields: str, n: int = 0) -> str:
    """A record with ``fields`` first and empty fields up to ``n``."""
    values = list(fields) + [""] * (n - len(fields))
    return kind + "|" + "|".join(values) + "|\n"


def _cp(internac: tuple[str, str, str] = ("", "", ""), total: str = "") -> str:
    si = "Sí" if internac[0] else "No"
    return _line("CARTAPORTE", "3.1", "", si, *internac, total, n=16)


def _ub(tipo: str, ident: str, rfc: str, nombre: str, when: str, dist: str, estado: str,
        cp: str, *, extranjero: tuple[str, str] = ("", ""), pais: str = "MEX") -> str:  # fmt: skip
    return "\t" + _line("CP_UBICACION", tipo, ident, rfc, nombre, *extranjero, when, dist,
                        "Calle 1", "10", "", "", "", "", "", estado, pais, cp)  # fmt: skip


def _merc(clave: str, desc: str, qty: str, kg: str, peligroso: tuple[str, str] = ("", "")) -> str:
    mp = "Sí" if peligroso[0] else "No"
    return "\t" + _line("CP_MERCANCIA", clave, "", desc, qty, "H87", "Pieza", "", mp,
                        *peligroso, "", kg, n=18)  # fmt: skip


def _auto(config: str = "C2", seguro_ambiental: tuple[str, str] = ("", "")) -> str:
    return "\t" + _line("CP_AUTOTRANSPORTE", "TPAF01", "0X2XTXZ0X5X0X3X2X1X0", config, "10.50",
                        "501AAA", "2020", "SW Seguros", "123456", *seguro_ambiental, n=13)  # fmt: skip


OPERADOR = "\t" + _line("CP_FIGURA", "01", "VAAM130719H60", "a234567890", "Miguel Vázquez", n=16)


def _invoice(folio: str, body: str, *, tipo: str = "T", flete: str = "") -> str:
    """One invoice: a traslado of the emisor's own goods (receptor = emisor) or, with ``flete``,
    a transportista's tipo I invoice to XOCHILT CASAS CHAVEZ."""
    if tipo == "T":
        head = (
            f"COMPROBANTE|4.0|CP|{folio}|{fecha()}||||||MXN|||T|01||86000||\n"
            f"EMISOR|{EMISOR[0]}|{EMISOR[1]}|601||\n"
            f"RECEPTOR|{EMISOR[0]}|{EMISOR[1]}|86000|||601|S01|\n"
            "\tCONCEPTO|52161557|GAMEPAD007|40|H87|Pieza|Control de juego|0.00|||01|\n"
        )
    else:
        head = (
            f"COMPROBANTE|4.0|CP|{folio}|{fecha()}|03|||||MXN|||I|01|PUE|86000||\n"
            f"EMISOR|{EMISOR[0]}|{EMISOR[1]}|601||\n"
            "RECEPTOR|CACX7605101P8|XOCHILT CASAS CHAVEZ|36257|||612|G03|\n"
            f"\tCONCEPTO|78101802||1|E48|Servicio|Flete Villahermosa - Celaya|{flete}|||02|\n"
            "\t\tTRASLADOCONCEPTO||002|Tasa|0.160000||\n"
            "\t\tRETENCIONCONCEPTO||002|Tasa|0.040000||\n"
        )
    return head + body


ORIGEN = _ub("Origen", "OR000001", *EMISOR, "2025-06-02T09:00:00", "", "TAB", "86000")
DESTINO = _ub("Destino", "DE000001", *EMISOR, "2025-06-03T07:30:00", "1050.5", "GUA", "36257")
BASIC = _cp() + ORIGEN + DESTINO + _merc("52161557", "Control de juego", "40", "24.000") + (
    "\t\t" + _line("CP_CANTIDADTRANSPORTA", "40", "OR000001", "DE000001", n=4)
) + _auto() + OPERADOR  # fmt: skip

VALID = {
    "traslado": _invoice("1", BASIC),
    "flete_ingreso": _invoice("2", BASIC, tipo="I", flete="18500.00"),
    "salida_internacional_peligroso_remolque": _invoice(
        "3",
        _cp(("Salida", "USA", "01"))
        + "\t" + _line("CP_REGIMENADUANERO", "EXD")
        + ORIGEN
        + _ub("Destino", "DE000001", "XEXX010101000", "ACME INC", "2025-06-03T18:00:00",
              "1200", "TX", "78040", extranjero=("121585958", "USA"), pais="USA")
        + _merc("52161557", "Control de juego", "40", "24.000")
        + _merc("12352104", "Solvente", "2", "40.000", peligroso=("1266", "4G"))
        + _auto("T3S2", ("Eco Seguros", "MA-1234"))
        + "\t\t" + _line("CP_REMOLQUE", "CTR004", "ABC1234")
        + OPERADOR,
    ),
    "dos_destinos": _invoice(
        "4",
        _cp() + ORIGEN + DESTINO
        + _ub("Destino", "DE000002", "CACX7605101P8", "XOCHILT CASAS CHAVEZ",
              "2025-06-03T12:00:00", "80.25", "GUA", "38000")
        + _merc("52161557", "Control de juego", "40", "24.000")
        + "\t\t" + _line("CP_CANTIDADTRANSPORTA", "25", "OR000001", "DE000001", n=4)
        + "\t\t" + _line("CP_CANTIDADTRANSPORTA", "15", "OR000001", "DE000002", n=4)
        + _merc("43211503", "Computadora portátil", "12", "28.800")
        + "\t\t" + _line("CP_DETALLEMERCANCIA", "KGM", "28.800", "24.000", "4.800", "12")
        + _auto() + OPERADOR,
    ),
    "propietario_con_partes_y_guias": _invoice(
        "5",
        _cp() + ORIGEN + DESTINO
        + _merc("43211503", "Computadora portátil", "12", "28.800")
        + "\t\t" + _line("CP_GUIA", "GUIA000001", "Caja 1 de 2", "14.400")
        + "\t\t" + _line("CP_GUIA", "GUIA000002", "Caja 2 de 2", "14.400")
        + _auto() + OPERADOR
        + "\t" + _line("CP_FIGURA", "02", EMISOR[0], "", EMISOR[1], "", "", "Av. Paseo Tabasco",
                       "1203", "", "", "", "", "", "TAB", "MEX", "86000")
        + "\t\t" + _line("CP_PARTETRANSPORTE", "PT01", "PT05"),
    ),
}  # fmt: skip


def test_the_shipped_example_is_valid() -> None:
    from connector.adapters import load_invoices
    from connector.cfdi import rules
    from connector.cfdi.amounts import complete
    from connector.cfdi.xmlio import validate_limits

    (inv,) = load_invoices(EXAMPLE.read_bytes(), EXAMPLE.name, adapter="dat", mapping=None)
    assert inv.problems == [] and inv.comprobante is not None
    c = complete(inv.comprobante)
    assert c.CartaPorte is not None and len(c.CartaPorte.Mercancias.Mercancia) == 2
    assert c.CartaPorte.Mercancias.Mercancia[0].DetalleMercancia is None  # only the 2nd has one
    assert rules.validate(c) == [] and validate_limits(c) == []


def _assert_stamped(out: Path, prefix: str, count: int) -> None:
    paths = sorted(out.glob(f"{prefix}*.xml"))
    assert len(paths) == count
    for path in paths:
        xml = path.read_bytes()
        assert validate_xsd(xml) == [], path.name
        assert verify_seal(xml) == [], path.name
        assert b"<cartaporte31:CartaPorte" in xml and IDCCP.search(xml.decode()), path.name
        c = from_xml(xml)
        assert c.CartaPorte is not None and c.CartaPorte.Mercancias.Autotransporte is not None
        assert cadena_original(xml) == cadena_original_xslt(xml)


def test_carta_porte_invoices_from_dat_are_stamped_valid(workspace: Path, sandbox) -> None:
    inbox = workspace.parent / "inbox"
    (inbox / "viajes.dat").write_text("".join(VALID.values()), encoding="utf-8")
    run_once(workspace)
    errors = list((workspace.parent / "failed").glob("*.error.txt"))
    assert errors == [], errors[0].read_text(encoding="utf-8") if errors else ""
    assert set(stamps_by_key(sandbox.store)) == {("CP", str(i)) for i in range(1, 6)}
    _assert_stamped(workspace.parent / "out" / "xml", "CP", 5)


def test_broken_and_rail_carta_porte_are_refused_locally(workspace: Path, sandbox) -> None:
    inbox = workspace.parent / "inbox"
    (inbox / "mala.dat").write_text(_invoice("9", BASIC.replace(_cp(), _cp(total="999"))),
                                    encoding="utf-8")  # fmt: skip
    (inbox / "tren.dat").write_text(
        _invoice("8", BASIC.replace(_cp(), _cp(("Salida", "USA", "04")))), encoding="utf-8"
    )
    run_once(workspace)
    texts = {
        p.name.split(".")[0]: p.read_text(encoding="utf-8")
        for p in (workspace.parent / "failed").glob("*.error.txt")
    }
    assert "CONN-CP-008" in texts["mala"] and "CartaPorte.TotalDistRec" in texts["mala"], texts
    assert "CONN-CP-002" in texts["tren"] and "CartaPorte.ViaEntradaSalida" in texts["tren"]
    assert stamps_by_key(sandbox.store) == {}


# --- CSV (one file, one row per mercancía; config/examples/cartaporte31.mapping.toml) -----------


def _csv(folio: str, rows: list[tuple[str, str, str, str]], **kw: str) -> str:
    """Rows of one traslado: (clave, descripcion, cantidad, peso en kg) per mercancía."""
    head = [
        "CP", folio, fecha(), kw.get("destino_rfc", "CACX7605101P8"),
        kw.get("destino_nombre", "XOCHILT CASAS CHAVEZ"), "2025-06-02T09:00:00",
        kw.get("llegada", "2025-06-03T07:30:00"), kw.get("km", "1050.5"),
        kw.get("estado", "GUA"), kw.get("cp", "36257"), kw.get("config", "C2"),
        kw.get("placa", "501AAA"), kw.get("operador_rfc", "VAAM130719H60"),
        kw.get("licencia", "a234567890"), kw.get("operador", "Miguel Vázquez"),
    ]  # fmt: skip
    return "".join(",".join([*head, *row]) + "\n" for row in rows)


def test_carta_porte_invoices_from_csv_are_stamped_valid(tmp_path: Path, sandbox) -> None:
    config = csv_workspace(tmp_path / "ws", sandbox, CSV_MAPPING, "cartaporte-csv")
    header = CSV_EXAMPLE.read_text(encoding="utf-8").splitlines()[0] + "\n"
    body = "".join([
        _csv("1", [("52161557", "Control de juego", "40", "24.000")]),
        _csv("2", [("52161557", "Control de juego", "4", "2.400"),
                   ("43211503", "Computadora portátil", "12", "28.800")]),
        _csv("3", [("43211503", "Computadora portátil", "1", "2.400")], km="80.25",
             estado="QUE", cp="76000", llegada="2025-06-02T11:45:00"),
        _csv("4", [("52161557", "Control de juego", "1", "0.600"),
                   ("43211503", "Computadora portátil", "2", "4.800"),
                   ("43201800", "Memoria USB", "100", "1.000")], placa="XYZ987"),
        _csv("5", [("52161557", "Control de juego", "400", "240.000")],
             destino_rfc="EKU9003173C9", destino_nombre="ESCUELA KEMPER URGATE"),
    ])  # fmt: skip
    (config.parent / "inbox-csv" / "viajes.csv").write_text(header + body, encoding="utf-8")
    run_once(config)
    errors = list((config.parent / "failed").glob("*.error.txt"))
    assert errors == [], errors[0].read_text(encoding="utf-8") if errors else ""
    assert set(stamps_by_key(sandbox.store)) == {("CP", str(i)) for i in range(1, 6)}
    _assert_stamped(config.parent / "out" / "xml", "CP", 5)


def test_the_shipped_csv_example_is_valid() -> None:
    from connector.adapters import load_invoices
    from connector.cfdi import rules
    from connector.cfdi.amounts import complete
    from connector.cfdi.xmlio import validate_limits
    from connector.mappers.engine import Mapping

    mapping = Mapping.from_toml(CSV_MAPPING)
    (inv,) = load_invoices(CSV_EXAMPLE.read_bytes(), CSV_EXAMPLE.name, adapter="csv",
                           mapping=mapping)  # fmt: skip
    assert inv.problems == [] and inv.comprobante is not None
    c = complete(inv.comprobante)
    assert c.CartaPorte is not None and len(c.CartaPorte.Mercancias.Mercancia) == 2
    assert rules.validate(c) == [] and validate_limits(c) == []
