"""An IEPS by Cuota (pesos per litre, per cigarette, per gram) from a DAT export: its Base is
the number of units the cuota applies to, which only the ERP knows. Without it the invoice is
refused locally at the field (``CONN-IEPS-CUOTA-BASE``), nothing is sent to the PAC; with it the
sandbox stamps IEPS = units × cuota and IVA on Importe + IEPS (Ley del IVA, art. 12)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from lxml import etree

from connector.cli import main
from tests.daemon.conftest import dat_invoice, stamps_by_key

CFDI = {"cfdi": "http://www.sat.gob.mx/cfd/4"}


def _gasolina(folio: str, ieps_base: str) -> str:
    """10 litres at 22.00 (Importe 220.00), IEPS 6.000000 per litre, IVA 16 %."""
    text = dat_invoice("G", folio)
    concepto = "|43201800|USB32|1|H87|Pieza|Memoria USB|100.00|||02|\n"
    assert concepto in text
    return text.replace(
        concepto,
        "|15101514|MAGNA|10|LTR|Litro|Gasolina magna|22.00|||02|\n"
        f"\t\tTRASLADOCONCEPTO|{ieps_base}|003|Cuota|6.000000||\n",
    )


def test_ieps_cuota_without_base_is_refused_locally_and_with_it_stamped(
    workspace: Path, sandbox, capsys: pytest.CaptureFixture, tmp_path: Path
) -> None:
    sin_base = tmp_path / "sin-base.dat"
    sin_base.write_text(_gasolina("1", ""), encoding="utf-8")
    assert main(["submit", str(sin_base), "--config", str(workspace), "--source", "ventas"]) == 1
    out = capsys.readouterr().out
    errors = [line for line in out.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1 and "CONN-IEPS-CUOTA-BASE" in errors[0], out
    assert "sin-base.dat:5:Base" in errors[0] and "número de unidades" in errors[0]
    assert sandbox.store.requests() == [] and stamps_by_key(sandbox.store) == {}

    con_base = tmp_path / "con-base.dat"
    con_base.write_text(_gasolina("2", "10"), encoding="utf-8")
    assert main(["submit", str(con_base), "--config", str(workspace), "--source", "ventas"]) == 0
    capsys.readouterr()
    ((uuid,),) = stamps_by_key(sandbox.store).values()
    (xml,) = (workspace.parent / "out" / "xml").glob(f"G2_{uuid}.xml")
    root = etree.fromstring(xml.read_bytes())
    ieps, iva = root.findall("cfdi:Conceptos/cfdi:Concepto/cfdi:Impuestos/cfdi:Traslados/*", CFDI)
    assert (ieps.get("Base"), ieps.get("Importe")) == ("10", "60.00")
    assert (iva.get("Base"), iva.get("Importe")) == ("280.00", "44.80")
    assert Decimal(root.get("Total")) == Decimal("324.80")
