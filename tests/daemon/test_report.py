"""Issue 13, ``report``: a month with Ingresos in two currencies, an Egreso, a Pago 2.0 and a
cancellation, stamped by the daemon through the sandbox PAC; the report's lines and totals are
recomputed here from the stamped XMLs with lxml (csv, json and the xlsx opened with openpyxl),
and ``--pendientes-pago`` gives the saldo insoluto the Pago left."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from lxml import etree

from connector.cfdi.amounts import complete
from connector.cfdi.xmlio import to_xml
from connector.cli import main
from tests.cfdi.base_invoice import base_data, load, pago_data
from tests.daemon.conftest import fecha, start_pipeline

NS = {
    "cfdi": "http://www.sat.gob.mx/cfd/4",
    "tfd": "http://www.sat.gob.mx/TimbreFiscalDigital",
}


def _invoice(serie: str, folio: str, **changes: Any) -> bytes:
    data = base_data()
    data.update(Serie=serie, Folio=folio, Fecha=fecha(), **changes)
    return to_xml(complete(load(data)))


def _pago(folio: str, uuid: str, total: Decimal, pagado: Decimal) -> bytes:
    data = pago_data()
    data.update(Serie="P", Folio=folio, Fecha=fecha(1))
    pago = data["Pagos"]["Pago"][0]
    pago.update(FechaPago=fecha(2), Monto=str(pagado))
    pago["DoctoRelacionado"] = [
        {
            "IdDocumento": uuid,
            "MonedaDR": "MXN",
            "EquivalenciaDR": "1",
            "NumParcialidad": 1,
            "ImpSaldoAnt": str(total),
            "ImpPagado": str(pagado),
            "ImpSaldoInsoluto": str(total - pagado),
            "ObjetoImpDR": "01",
        }
    ]
    return to_xml(complete(load(data)))


def _stamp(workspace: Path, files: dict[str, bytes]) -> None:
    inbox = workspace.parent / "inbox"
    for name, data in files.items():
        (inbox / name).write_bytes(data)
    pipe = start_pipeline(workspace)
    try:
        assert pipe.run_until_idle(120)
    finally:
        pipe.close()
    failed = list((workspace.parent / "failed").glob("*"))
    assert not failed, [p.read_text("utf-8", "replace")[:2000] for p in failed]


def _stamped(workspace: Path) -> dict[str, etree._Element]:
    out = {}
    for p in (workspace.parent / "out" / "xml").glob("*.xml"):
        root = etree.fromstring(p.read_bytes())
        out[f"{root.get('Serie')}-{root.get('Folio')}"] = root
    return out


def _uuid(root: etree._Element) -> str:
    return root.find(".//tfd:TimbreFiscalDigital", NS).get("UUID")


RETENIDO = {"001": "ISR", "002": "IVA"}
CONCEPT_RETENTION = "cfdi:Conceptos/cfdi:Concepto/cfdi:Impuestos/cfdi:Retenciones/cfdi:Retencion"


def _concept_retention_tasas(root: etree._Element, impuesto: str) -> dict[str, Decimal]:
    """tasa → the sum of the conceptos' retention importes of ``impuesto`` at that tasa."""
    out: dict[str, Decimal] = {}
    for r in root.iterfind(CONCEPT_RETENTION, NS):
        if r.get("Impuesto") == impuesto:
            out[r.get("TasaOCuota")] = out.get(r.get("TasaOCuota"), Decimal(0)) + Decimal(
                r.get("Importe")
            )
    return out


def _expected_totals(roots: list[etree._Element]) -> tuple[dict, dict]:
    """Totals per moneda and per tipo (MXN) recomputed from the XMLs."""
    by_moneda: dict[str, dict[str, Decimal]] = {}
    by_tipo: dict[str, dict[str, Decimal]] = {}
    for r in roots:
        tc = Decimal(r.get("TipoCambio") or "1") if r.get("Moneda") not in ("MXN", "XXX") else 1
        values = {
            "subtotal": Decimal(r.get("SubTotal")),
            "descuento": Decimal(r.get("Descuento") or "0"),
            "total": Decimal(r.get("Total")),
        }
        for t in r.findall("cfdi:Impuestos/cfdi:Traslados/cfdi:Traslado", NS):
            key = f"traslado {'IVA' if t.get('Impuesto') == '002' else t.get('Impuesto')} "
            key += t.get("TasaOCuota")
            values[key] = values.get(key, Decimal(0)) + Decimal(t.get("Importe"))
        for t in r.findall("cfdi:Impuestos/cfdi:Retenciones/cfdi:Retencion", NS):
            # the summary has no tasa: these invoices retain each impuesto at one tasa, the
            # conceptos' (two tasas: test_retenciones_by_impuesto_and_tasa)
            (tasa,) = set(_concept_retention_tasas(r, t.get("Impuesto")))
            key = f"retencion {RETENIDO[t.get('Impuesto')]} {tasa}"
            values[key] = values.get(key, Decimal(0)) + Decimal(t.get("Importe"))
        for group, key, factor in (
            (by_moneda, r.get("Moneda"), 1),
            (by_tipo, r.get("TipoDeComprobante"), tc),
        ):
            g = group.setdefault(key, {"documentos": Decimal(0)})
            g["documentos"] += 1
            for k, v in values.items():
                g[k] = g.get(k, Decimal(0)) + v * factor
    return by_moneda, by_tipo


def _nonzero(groups: dict[str, dict[str, Decimal]]) -> dict[str, dict[str, Decimal]]:
    """A tax column a group does not have is 0 in the report: compare what is not 0."""
    return {k: {c: v for c, v in g.items() if v} for k, g in groups.items()}


def test_report_of_a_month_adds_up_to_the_stamped_xmls(
    workspace: Path, sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _stamp(
        workspace,
        {
            "a1.xml": _invoice("A", "1"),
            "a2.xml": _invoice("A", "2", Moneda="USD", TipoCambio="17.5"),
            "a3.xml": _invoice("A", "3", MetodoPago="PPD", FormaPago="99"),
            "a4.xml": _invoice("A", "4"),
            "e1.xml": _invoice("E", "1", TipoDeComprobante="E", MetodoPago="PUE"),
        },
    )
    roots = _stamped(workspace)
    ppd = roots["A-3"]
    total_ppd = Decimal(ppd.get("Total"))
    _stamp(workspace, {"p1.xml": _pago("1", _uuid(ppd), total_ppd, Decimal("1000.00"))})
    roots = _stamped(workspace)
    assert set(roots) == {"A-1", "A-2", "A-3", "A-4", "E-1", "P-1"}
    cancelled = _uuid(roots["A-4"])
    cfg = ["--config", str(workspace)]
    assert main(["cancel", cancelled, "--motivo", "02", *cfg]) == 0
    today = datetime.now().date()
    period = ["--from", str(today.replace(day=1)), "--to", str(today)]
    capsys.readouterr()

    # json: one line per CFDI, its state; totals of those not cancelled
    assert main(["report", *cfg, *period, "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    lines = {x["serie_folio"]: x for x in doc["lineas"]}
    assert set(lines) == set(roots)
    assert lines["A-4"]["estado"] == "cancelado" and lines["A-4"]["motivo_cancelacion"] == "02"
    assert lines["A-4"]["fecha_cancelacion"].startswith(str(today))
    assert lines["A-1"]["estado"] == "vigente" and lines["P-1"]["tipo"] == "P"
    assert lines["A-2"]["moneda"] == "USD" and lines["A-2"]["tipo_cambio"] == "17.5"
    for key, root in roots.items():
        assert lines[key]["uuid"] == _uuid(root)
        assert lines[key]["total"] == root.get("Total")
        assert lines[key]["receptor_rfc"] == root.find("cfdi:Receptor", NS).get("Rfc")
    alive = [r for k, r in roots.items() if k != "A-4"]
    by_moneda, by_tipo = _expected_totals(alive)
    assert set(doc["totales_por_moneda"]) == {"MXN", "USD", "XXX"}
    for got, want in (
        (doc["totales_por_moneda"], by_moneda),
        (doc["totales_por_tipo_mxn"], by_tipo),
    ):
        assert _nonzero({k: {c: Decimal(v) for c, v in g.items()} for k, g in got.items()}) == (
            _nonzero(want)
        )

    # xlsx, opened with openpyxl: the same totals, the same lines
    out = tmp_path / "diciembre.xlsx"
    assert main(["report", *cfg, *period, "-o", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    wb = openpyxl.load_workbook(out)
    sheet = wb["Totales por moneda"]
    header = [c.value for c in sheet[1]]
    for row in sheet.iter_rows(min_row=2, values_only=True):
        want = by_moneda[row[0]]
        for name, value in zip(header[1:], row[1:], strict=True):
            assert Decimal(str(value)) == want.get(name, Decimal(0)), (row[0], name)
    sheet = wb["Totales por tipo MXN"]
    header = [c.value for c in sheet[1]]
    for row in sheet.iter_rows(min_row=2, values_only=True):
        want = by_tipo[row[0]]
        for name, value in zip(header[1:], row[1:], strict=True):
            assert abs(Decimal(str(value)) - want.get(name, Decimal(0))) < Decimal("0.000001")
    rows = list(wb["CFDI"].iter_rows(values_only=True))
    assert len(rows) == 1 + len(roots)
    col = rows[0].index("total")
    assert sum(Decimal(str(r[col])) for r in rows[1:]) == sum(
        Decimal(r.get("Total")) for r in roots.values()
    )

    # csv; --emisor of another RFC: nothing
    assert main(["report", *cfg, *period, "--format", "csv"]) == 0
    text = capsys.readouterr().out
    table = list(csv.reader(io.StringIO(text)))
    assert table[0][:3] == ["fecha", "serie_folio", "uuid"]
    col = table[0].index("total")
    assert {r[1]: Decimal(r[col]) for r in table[1:7]} == {
        k: Decimal(r.get("Total")) for k, r in roots.items()
    }
    assert table[7] == [] and table[8][:2] == ["total moneda MXN", "3"]  # A-4 is cancelled
    assert table[9][:2] == ["total moneda USD", "1"]
    assert main(["report", *cfg, *period, "--emisor", "XAXX010101000", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["lineas"] == []
    empty = ["--from", str(date(today.year - 1, 1, 1)), "--to", str(date(today.year - 1, 1, 31))]
    assert main(["report", *cfg, *empty, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["lineas"] == []

    # pendientes de pago: the PPD invoice with what the Pago left
    assert main(["report", *cfg, "--pendientes-pago", "--format", "json"]) == 0
    (pending,) = json.loads(capsys.readouterr().out)["pendientes"]
    assert pending["uuid"] == _uuid(ppd)
    assert Decimal(pending["saldo_insoluto"]) == total_ppd - Decimal("1000.00")
    assert Decimal(pending["pagado"]) == Decimal("1000.00") and pending["parcialidades"] == 1


def test_report_refuses_bad_periods(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = ["--config", str(workspace)]
    assert main(["report", *cfg, "--from", "2026-12-31", "--to", "2026-12-01"]) == 2
    assert "posterior" in capsys.readouterr().err
    assert main(["report", *cfg, "--from", "2026-13-01", "--to", "2026-12-31"]) == 2
    assert "AAAA-MM-DD" in capsys.readouterr().err
    assert main(["report", *cfg, "--from", "2026-12-01", "--to", "2026-12-31",
                 "--format", "xlsx"]) == 2  # fmt: skip
    assert "-o" in capsys.readouterr().err


def test_retenciones_by_impuesto_and_tasa(
    workspace: Path, sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    """ISR retained at two tasas in one CFDI (10 % on a service, 1.25 % on another): a column
    per tasa, each the conceptos' sum to the cent, and together exactly the summary's ISR
    importe (the one figure SAT's rules check); the period's totals add the same columns."""
    data = base_data()
    extra = {
        "ClaveProdServ": "84111506",
        "Cantidad": "3",
        "ClaveUnidad": "E48",
        "Descripcion": "Asesoría",
        "ValorUnitario": "333.337",
        "ObjetoImp": "02",
        "Impuestos": {
            "Traslados": [{"Impuesto": "002", "TipoFactor": "Tasa", "TasaOCuota": "0.160000"}],
            "Retenciones": [{"Impuesto": "001", "TipoFactor": "Tasa", "TasaOCuota": "0.012500"}],
        },
    }
    data["Conceptos"].append(extra)
    data.update(Serie="R", Folio="1", Fecha=fecha())
    _stamp(workspace, {"r1.xml": to_xml(complete(load(data)))})
    (root,) = _stamped(workspace).values()
    today = datetime.now().date()
    cfg = ["--config", str(workspace), "--from", str(today.replace(day=1)), "--to", str(today)]
    capsys.readouterr()
    assert main(["report", *cfg, "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    (line,) = doc["lineas"]
    summary = {
        r.get("Impuesto"): Decimal(r.get("Importe"))
        for r in root.iterfind("cfdi:Impuestos/cfdi:Retenciones/cfdi:Retencion", NS)
    }
    assert set(summary) == {"001", "002"}
    for code, name in RETENIDO.items():
        tasas = _concept_retention_tasas(root, code)
        columns = {k: Decimal(v) for k, v in line.items() if k.startswith(f"retencion {name} ")}
        assert set(columns) == {f"retencion {name} {t}" for t in tasas}, columns
        assert sum(columns.values()) == summary[code]
        for tasa, concept_sum in tasas.items():
            assert abs(columns[f"retencion {name} {tasa}"] - concept_sum) <= Decimal("0.01")
    assert set(_concept_retention_tasas(root, "001")) == {"0.100000", "0.012500"}
    (totals,) = doc["totales_por_moneda"].values()
    for k, v in line.items():
        if k.startswith("retencion "):
            assert Decimal(totals[k]) == Decimal(v)


def test_retenciones_rounding_goes_to_the_largest_tasa() -> None:
    """Conceptos with importes of more decimals than the summary's (SAT allows 6): each tasa
    rounded to the summary's cents would add up to a cent more than the summary; the largest
    takes the difference, so the columns still equal the summary's ISR."""
    from connector.reports import retenciones

    root = etree.fromstring(
        f"""<cfdi:Comprobante xmlns:cfdi="{NS["cfdi"]}"><cfdi:Conceptos>
        <cfdi:Concepto><cfdi:Impuestos><cfdi:Retenciones>
          <cfdi:Retencion Impuesto="001" TipoFactor="Tasa" TasaOCuota="0.100000" Importe="10.005"/>
        </cfdi:Retenciones></cfdi:Impuestos></cfdi:Concepto>
        <cfdi:Concepto><cfdi:Impuestos><cfdi:Retenciones>
          <cfdi:Retencion Impuesto="001" TipoFactor="Tasa" TasaOCuota="0.012500" Importe="1.255"/>
        </cfdi:Retenciones></cfdi:Impuestos></cfdi:Concepto>
        </cfdi:Conceptos><cfdi:Impuestos TotalImpuestosRetenidos="11.26"><cfdi:Retenciones>
          <cfdi:Retencion Impuesto="001" Importe="11.26"/>
          <cfdi:Retencion Impuesto="003" Importe="4.00"/>
        </cfdi:Retenciones></cfdi:Impuestos></cfdi:Comprobante>""".encode()
    )
    got = retenciones(root, root.find("cfdi:Impuestos", NS))
    assert got == {
        "retencion ISR 0.100000": Decimal("10.00"),  # 10.01 rounded, less the extra cent
        "retencion ISR 0.012500": Decimal("1.26"),
        "retencion IEPS": Decimal("4.00"),  # no concepto retains it: its column has no tasa
    }
