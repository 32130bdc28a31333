"""The demo ERP exports map to invoices that pass SAT's rules (and the bad file does not)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest

from connector.adapters import load_invoices
from connector.cfdi import amounts, rules
from connector.demo.erp import INVALID_INVOICES, SOURCES, VALID_INVOICES, write_demo_exports
from connector.mappers import Mapping

NOW = datetime.now().replace(microsecond=0)


def _load(path: Path):
    kind = SOURCES[path.suffix.lstrip(".")]
    mapping = Mapping.from_toml(kind["mapping"]) if kind["mapping"] else None
    return list(
        load_invoices(
            path.read_bytes(),
            path.name,
            adapter=kind["adapter"],
            options=kind["options"],
            mapping=mapping,
        )
    )


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    paths = write_demo_exports(tmp_path_factory.mktemp("erp"), NOW)
    return {p.name: p for p in paths}


def test_all_files_are_written_without_placeholders(exports: dict[str, Path]) -> None:
    assert set(exports) == set(VALID_INVOICES) | set(INVALID_INVOICES)
    for path in exports.values():
        assert b"{FECHA" not in path.read_bytes() and b"{RUN}" not in path.read_bytes()
        assert not list(path.parent.glob(".*.tmp"))


@pytest.mark.parametrize("name", sorted(VALID_INVOICES))
def test_valid_demo_invoices_pass_the_sat_rules(exports: dict[str, Path], name: str) -> None:
    invoices = _load(exports[name])
    assert len(invoices) == VALID_INVOICES[name]
    keys = set()
    for inv in invoices:
        assert inv.problems == [], inv.problems
        c = amounts.complete(inv.comprobante)
        assert rules.validate(c, now=NOW) == []
        assert c.Emisor.Rfc == "EKU9003173C9" and c.LugarExpedicion == "42501"
        assert c.Fecha == NOW.strftime("%Y-%m-%dT%H:%M:%S")
        keys.add(c.business_key)
    assert len(keys) == len(invoices)


def test_demo_dat_covers_ieps_retenciones_and_publico_en_general(exports: dict[str, Path]) -> None:
    invs = [amounts.complete(i.comprobante) for i in _load(exports["ventas_demo.dat"])]
    impuestos = {t.Impuesto for c in invs for k in c.Conceptos for t in k.Impuestos.Traslados}
    assert impuestos == {"002", "003"}
    assert any(k.Impuestos.Retenciones for c in invs for k in c.Conceptos)
    (glob,) = [c for c in invs if c.InformacionGlobal is not None]
    assert glob.Receptor.Rfc == "XAXX010101000"
    assert (glob.InformacionGlobal.Meses, glob.InformacionGlobal.Anio) == (
        NOW.strftime("%m"),
        NOW.year,
    )


def test_demo_csv_is_cp1252_with_decimal_comma_and_resolves_lookups(
    exports: dict[str, Path],
) -> None:
    raw = exports["ventas_demo.csv"].read_bytes()
    assert "Cañón".encode("cp1252") in raw and b"12.500,00" in raw
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    first = _load(exports["ventas_demo.csv"])[0].comprobante
    assert first.Receptor.Rfc == "CACX7605101P8"  # customer C001 via clientes.csv
    assert first.Conceptos[0].Descripcion == "Cañón de proyección 3000 lúmenes"
    assert str(first.Conceptos[0].ValorUnitario) == "12500.00"
    assert first.Conceptos[0].ClaveProdServ == "45111600"  # article A100 via articulos.csv
    assert first.Conceptos[2].Descripcion == 'Libro "El niño y el año"'
    assert first.Conceptos[2].Impuestos.Traslados[0].TipoFactor == "Exento"
    assert first.FormaPago == "03"  # TRANSFERENCIA through map


def test_demo_xml_is_unsealed_and_seals(exports: dict[str, Path], csd_files) -> None:
    from connector.cfdi.csd import Csd
    from connector.cfdi.seal import seal_xml, verify_seal

    (inv,) = _load(exports["factura_sin_sello.xml"])
    assert inv.problems == [] and inv.xml == exports["factura_sin_sello.xml"].read_bytes()
    assert inv.comprobante.Sello is None
    sealed = seal_xml(inv.xml, Csd.load(*csd_files))
    assert verify_seal(sealed) == []


def test_demo_error_file_gives_located_problems(exports: dict[str, Path]) -> None:
    err1, err2 = _load(exports["ventas_error.dat"])
    assert err1.problems == []  # it parses; SAT's rules reject it
    codes = {p.path for p in rules.validate(amounts.complete(err1.comprobante), now=NOW)}
    assert "Receptor.Rfc" in codes and "Conceptos[0].ClaveProdServ" in codes
    found = {(p.code, p.location) for p in err2.problems}
    assert ("CONN-DAT-FIELDS", "ventas_error.dat:14") in found
    assert ("CONN-MAP-NUMBER", "ventas_error.dat:15:Cantidad") in found


def test_demo1002_iva_base_includes_ieps(exports: dict[str, Path]) -> None:
    # 12 × 18.50 = 222.00; IEPS 8 % = 17.76; IVA 16 % on 222.00 + 17.76 = 239.76 → 38.36
    (c,) = [
        amounts.complete(i.comprobante)
        for i in _load(exports["ventas_demo.dat"])
        if i.comprobante.Folio == "1002"
    ]
    k = c.Conceptos[0]
    got = {t.Impuesto: (t.Base, t.Importe) for t in k.Impuestos.Traslados}
    assert got == {
        "003": (Decimal("222.00"), Decimal("17.76")),
        "002": (Decimal("239.76"), Decimal("38.36")),
    }
    assert (c.SubTotal, c.Impuestos.TotalImpuestosTrasladados, c.Total) == (
        Decimal("222.00"),
        Decimal("56.12"),
        Decimal("278.12"),
    )
