"""The documented example in config/erp/ works: a custom DAT layout for another ERP."""

from __future__ import annotations

from decimal import Decimal

from connector.adapters import load_invoices
from connector.adapters.dat import DatLayout
from connector.cfdi import amounts, rules
from connector.mappers import Mapping
from tests.conftest import REPO

EXAMPLES = REPO / "config" / "erp"


def test_custom_enc_det_layout_maps_to_valid_invoices() -> None:
    layout = EXAMPLES / "layout-enc-det.toml"
    assert DatLayout.from_toml(layout).start == "ENC"
    mapping = Mapping.from_toml(EXAMPLES / "mapping-enc-det.toml")
    data = (EXAMPLES / "ejemplo-enc-det.dat").read_bytes()
    out = list(
        load_invoices(
            data, "erp.dat", adapter="dat", options={"layout": str(layout)}, mapping=mapping
        )
    )
    assert [(i.location, i.problems) for i in out] == [("erp.dat:1", []), ("erp.dat:5", [])]
    first = out[0].comprobante
    assert (first.Serie, first.Folio, first.Fecha, first.FormaPago) == (
        "F",
        "12345",
        "2025-01-15T10:30:00",
        "01",
    )
    assert first.Receptor.Rfc == "CACX7605101P8"
    assert [k.ClaveProdServ for k in first.Conceptos] == ["45111600", "39121600"]
    assert first.Conceptos[0].Descuento == Decimal("500.00")
    second = out[1].comprobante
    assert second.Conceptos[0].Impuestos.Retenciones[0].TasaOCuota == Decimal("0.040000")
    for inv in out:
        assert rules.validate(amounts.complete(inv.comprobante)) == []


def test_custom_layout_without_a_mapping_is_reported() -> None:
    layout = str(EXAMPLES / "layout-enc-det.toml")
    (inv, _) = load_invoices(
        (EXAMPLES / "ejemplo-enc-det.dat").read_bytes(),
        "erp.dat",
        adapter="dat",
        options={"layout": layout},
        mapping=None,
    )
    assert [p.code for p in inv.problems] == ["CONN-MAP-NONE"]
