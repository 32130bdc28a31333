"""``cfdi-connector report``: what was issued in a period, read from the stamped XMLs the
journal keeps (never from re-typed figures), and ``report --pendientes-pago``: the PPD invoices
still open according to the Pagos 2.0 complements the journal has stamped.

One line per CFDI whose ``Fecha`` falls in the period (both ends included): fecha, serie-folio,
UUID, tipo, receptor, moneda, tipo de cambio, subtotal, descuento, each tax of the CFDI's
``Impuestos`` summary by impuesto and tasa (traslados as the summary groups them; retenciones,
whose summary has no tasa, split by the tasas of the conceptos: ``retenciones``), total, método and forma de pago, and its state
(``vigente``, ``en proceso`` while a cancellation request is open, ``cancelado`` with the date
and motivo). Totals: per moneda (in that moneda) and per tipo (in MXN: each amount times its
``TipoCambio``), of the CFDIs not cancelled.
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from lxml import etree

from connector.journal import CANCEL_OPEN, Journal, journal_exists, open_journal

NS = {
    "cfdi": "http://www.sat.gob.mx/cfd/4",
    "tfd": "http://www.sat.gob.mx/TimbreFiscalDigital",
    "pago20": "http://www.sat.gob.mx/Pagos20",
}
IMPUESTOS = {"001": "ISR", "002": "IVA", "003": "IEPS"}
AMOUNTS = ("subtotal", "descuento", "total")  # plus the tax columns
ZERO = Decimal("0")


@dataclass
class Line:
    fecha: str
    serie_folio: str
    uuid: str
    tipo: str
    receptor_rfc: str
    receptor_nombre: str
    moneda: str
    tipo_cambio: Decimal
    subtotal: Decimal
    descuento: Decimal
    taxes: dict[str, Decimal]
    total: Decimal
    metodo_pago: str
    forma_pago: str
    estado: str
    fecha_cancelacion: str = ""
    motivo_cancelacion: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _dec(text: str | None) -> Decimal:
    return Decimal(text) if text not in (None, "") else ZERO


def read_line(xml: bytes) -> Line:
    """The report's figures of one stamped CFDI, read from its XML."""
    root = etree.fromstring(xml)
    receptor = root.find("cfdi:Receptor", NS)
    tfd = root.find(".//tfd:TimbreFiscalDigital", NS)
    taxes: dict[str, Decimal] = {}
    imp = root.find("cfdi:Impuestos", NS)
    if imp is not None:
        for t in imp.findall("cfdi:Traslados/cfdi:Traslado", NS):
            name = IMPUESTOS.get(t.get("Impuesto") or "", t.get("Impuesto"))
            tasa = t.get("TasaOCuota") or t.get("TipoFactor") or ""
            key = f"traslado {name} {tasa}"
            taxes[key] = taxes.get(key, ZERO) + _dec(t.get("Importe"))
        for key, amount in retenciones(root, imp).items():
            taxes[key] = taxes.get(key, ZERO) + amount
    return Line(
        fecha=root.get("Fecha") or "",
        serie_folio=f"{root.get('Serie') or ''}{'-' if root.get('Serie') else ''}"
        f"{root.get('Folio') or ''}",
        uuid=(tfd.get("UUID") if tfd is not None else "") or "",
        tipo=root.get("TipoDeComprobante") or "",
        receptor_rfc=(receptor.get("Rfc") if receptor is not None else "") or "",
        receptor_nombre=(receptor.get("Nombre") if receptor is not None else "") or "",
        moneda=root.get("Moneda") or "",
        tipo_cambio=_dec(root.get("TipoCambio")) or Decimal("1"),
        subtotal=_dec(root.get("SubTotal")),
        descuento=_dec(root.get("Descuento")),
        taxes=taxes,
        total=_dec(root.get("Total")),
        metodo_pago=root.get("MetodoPago") or "",
        forma_pago=root.get("FormaPago") or "",
        estado="vigente",
    )


def retenciones(root: etree._Element, imp: etree._Element) -> dict[str, Decimal]:
    """The summary's retenciones by impuesto and tasa (``retencion ISR 0.100000``): CFDI 4.0's
    summary has one importe per impuesto and no tasa, the conceptos have the tasa. Each tasa
    gets the sum of its conceptos' importes rounded to the decimals of the summary's importe;
    a rounding difference goes to the largest, so an impuesto's columns add up to the
    summary's importe exactly (the figure SAT's rules check). An impuesto no concepto retains
    keeps one column without tasa (``retencion ISR``)."""
    by_tasa: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    path = "cfdi:Conceptos/cfdi:Concepto/cfdi:Impuestos/cfdi:Retenciones/cfdi:Retencion"
    for r in root.iterfind(path, NS):
        by_tasa[r.get("Impuesto") or ""][r.get("TasaOCuota") or ""] += _dec(r.get("Importe"))
    out: dict[str, Decimal] = {}
    for r in imp.iterfind("cfdi:Retenciones/cfdi:Retencion", NS):
        code = r.get("Impuesto") or ""
        name, total = IMPUESTOS.get(code, code), _dec(r.get("Importe"))
        parts = by_tasa.get(code)
        if not parts:
            out[f"retencion {name}"] = out.get(f"retencion {name}", ZERO) + total
            continue
        quantum = Decimal(1).scaleb(int(total.as_tuple().exponent))
        shares = {t: v.quantize(quantum, ROUND_HALF_UP) for t, v in parts.items()}
        largest = max(shares, key=lambda t: (shares[t], t))
        shares[largest] += total - sum(shares.values(), ZERO)
        for tasa, amount in shares.items():
            key = f"retencion {name} {tasa}"
            out[key] = out.get(key, ZERO) + amount
    return out


def _in_period(fecha: str, start: date | None, end: date | None) -> bool:
    try:
        day = datetime.fromisoformat(fecha).date()
    except ValueError:
        return False
    return (start is None or day >= start) and (end is None or day <= end)


def issued(j: Journal, start: date | None, end: date | None, emisor: str | None) -> list[Line]:
    """The lines of the CFDIs issued in the period (oldest first), with their state."""
    lines = []
    for e in j.stamped_entries(emisor):
        assert e.stamped_xml is not None
        line = read_line(e.stamped_xml)
        if not _in_period(line.fecha, start, end):
            continue
        c = j.cancellation(line.uuid)
        req = j.cancel_request(line.uuid)
        if c is not None:
            line.estado = "cancelado"
            line.fecha_cancelacion = datetime.fromtimestamp(c.at).isoformat(timespec="seconds")
            line.motivo_cancelacion = c.motivo
        elif req is not None and req.state in CANCEL_OPEN:
            line.estado = "en proceso"
            line.motivo_cancelacion = req.motivo
        lines.append(line)
    lines.sort(key=lambda x: (x.fecha, x.serie_folio))
    return lines


def tax_columns(lines: list[Line]) -> list[str]:
    cols = {k for line in lines for k in line.taxes}
    return sorted(cols, key=lambda k: (not k.startswith("traslado"), k))


def totals(
    lines: list[Line],
) -> tuple[dict[str, dict[str, Decimal]], dict[str, dict[str, Decimal]]]:
    """Per moneda (in that moneda) and per tipo (in MXN), of the CFDIs not cancelled."""
    cols = tax_columns(lines)
    by_moneda: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    by_tipo: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for line in lines:
        if line.estado == "cancelado":
            continue
        values = _amounts(line, cols)
        m, t = by_moneda[line.moneda], by_tipo[line.tipo]
        m["documentos"] += 1
        t["documentos"] += 1
        for k, v in values.items():
            m[k] += v
            t[k] += v * line.tipo_cambio if line.moneda not in ("MXN", "XXX") else v
    return ({k: dict(v) for k, v in sorted(by_moneda.items())},
            {k: dict(v) for k, v in sorted(by_tipo.items())})  # fmt: skip


def _amounts(line: Line, cols: list[str]) -> dict[str, Decimal]:
    out = {"subtotal": line.subtotal, "descuento": line.descuento}
    out.update({c: line.taxes.get(c, ZERO) for c in cols})
    out["total"] = line.total
    return out


_HEAD = ["fecha", "serie_folio", "uuid", "tipo", "receptor_rfc", "receptor_nombre", "moneda",
         "tipo_cambio", "subtotal", "descuento"]  # fmt: skip
_TAIL = ["total", "metodo_pago", "forma_pago", "estado", "fecha_cancelacion",
         "motivo_cancelacion"]  # fmt: skip


def table(lines: list[Line]) -> tuple[list[str], list[list[Any]]]:
    """Header and rows (Decimals kept) of the lines."""
    cols = tax_columns(lines)
    rows = []
    for x in lines:
        rows.append(
            [x.fecha, x.serie_folio, x.uuid, x.tipo, x.receptor_rfc, x.receptor_nombre,
             x.moneda, x.tipo_cambio, x.subtotal, x.descuento,
             *(x.taxes.get(c, ZERO) for c in cols),
             x.total, x.metodo_pago, x.forma_pago, x.estado, x.fecha_cancelacion,
             x.motivo_cancelacion]
        )  # fmt: skip
    return [*_HEAD, *cols, *_TAIL], rows


def render(lines: list[Line], fmt: str, meta: dict[str, Any]) -> bytes:
    """The report as csv (UTF-8 with BOM, for Excel), json or xlsx bytes."""
    header, rows = table(lines)
    by_moneda, by_tipo = totals(lines)
    if fmt == "json":
        return _json(meta, lineas=_records(header, rows), totales_por_moneda=by_moneda,
                     totales_por_tipo_mxn=by_tipo)  # fmt: skip
    if fmt == "csv":
        blocks = [
            [[f"{title} {key}", *_total_cells(header, values)] for key, values in groups.items()]
            for title, groups in (("total moneda", by_moneda), ("total tipo (MXN)", by_tipo))
        ]
        return _csv(header, rows, *blocks)
    return _xlsx(header, rows, by_moneda, by_tipo, meta)


def _records(header: list[str], rows: list[list[Any]]) -> list[dict[str, Any]]:
    return [dict(zip(header, r, strict=True)) for r in rows]


def _json(meta: dict[str, Any], **parts: Any) -> bytes:
    doc = {**meta, **parts}
    return json.dumps(doc, ensure_ascii=False, indent=2, default=str).encode("utf-8")


def _csv(header: list[str], rows: list[list[Any]], *blocks: list[list[Any]]) -> bytes:
    """UTF-8 with BOM (Excel opens it right); each block after a blank row."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    w.writerows(rows)
    for block in blocks:
        w.writerow([])
        w.writerows(block)
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


def _total_cells(header: list[str], values: dict[str, Decimal]) -> list[Any]:
    """A totals row under the line columns (after the first): documents, then the amounts."""
    return [values.get("documentos") if h == "serie_folio" else values.get(h, "")
            for h in header[1:]]  # fmt: skip


def _xlsx(
    header: list[str],
    rows: list[list[Any]],
    by_moneda: dict[str, dict[str, Decimal]],
    by_tipo: dict[str, dict[str, Decimal]],
    meta: dict[str, Any],
) -> bytes:
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = "CFDI"
    ws.append(header)
    for r in rows:
        ws.append(r)
    ws.freeze_panes = "A2"
    amounts = [h for h in header if h in AMOUNTS or h.startswith(("traslado", "retencion"))]
    for title, groups in (("Totales por moneda", by_moneda), ("Totales por tipo MXN", by_tipo)):
        sheet = wb.create_sheet(title)
        sheet.append(["clave", "documentos", *amounts])
        for key, values in groups.items():
            sheet.append([key, values.get("documentos", 0), *(values.get(a, ZERO)
                                                               for a in amounts)])  # fmt: skip
    info = wb.create_sheet("Parametros")
    for k, v in meta.items():
        info.append([k, str(v)])
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


# --- pendientes de pago -----------------------------------------------------------------------


@dataclass
class Pending:
    line: Line
    saldo: Decimal
    pagado: Decimal
    parcialidades: int
    ultimo_pago: str


def pending_payments(
    j: Journal, start: date | None, end: date | None, emisor: str | None
) -> list[Pending]:
    """PPD Ingresos not cancelled, with the saldo insoluto of the last parcialidad the
    journal's Pagos 2.0 complements (not cancelled) record for each; still open only."""
    payments: dict[str, tuple[int, Decimal, str]] = {}  # UUID -> (parcialidad, saldo, fecha)
    for e in j.stamped_entries(emisor):
        assert e.stamped_xml is not None
        root = etree.fromstring(e.stamped_xml)
        if root.get("TipoDeComprobante") != "P":
            continue
        tfd = root.find(".//tfd:TimbreFiscalDigital", NS)
        if tfd is not None and j.cancellation(tfd.get("UUID") or "") is not None:
            continue
        for pago in root.iterfind(".//pago20:Pago", NS):
            for dr in pago.iterfind("pago20:DoctoRelacionado", NS):
                uuid = (dr.get("IdDocumento") or "").upper()
                n = int(dr.get("NumParcialidad") or 0)
                if uuid not in payments or n > payments[uuid][0]:
                    saldo = _dec(dr.get("ImpSaldoInsoluto"))
                    payments[uuid] = (n, saldo, pago.get("FechaPago") or "")
    out = []
    for line in issued(j, start, end, emisor):
        if line.tipo != "I" or line.metodo_pago != "PPD" or line.estado == "cancelado":
            continue
        n, saldo, when = payments.get(line.uuid.upper(), (0, line.total, ""))
        if saldo > 0:
            out.append(Pending(line, saldo, line.total - saldo, n, when))
    return out


def render_pending(items: list[Pending], fmt: str, meta: dict[str, Any]) -> bytes:
    header = ["fecha", "serie_folio", "uuid", "receptor_rfc", "receptor_nombre", "moneda",
              "total", "pagado", "saldo_insoluto", "parcialidades", "ultimo_pago"]  # fmt: skip
    rows = [[p.line.fecha, p.line.serie_folio, p.line.uuid, p.line.receptor_rfc,
             p.line.receptor_nombre, p.line.moneda, p.line.total, p.pagado, p.saldo,
             p.parcialidades, p.ultimo_pago] for p in items]  # fmt: skip
    if fmt == "json":
        return _json(meta, pendientes=_records(header, rows))
    if fmt == "csv":
        return _csv(header, rows)
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = "Pendientes de pago"
    ws.append(header)
    for r in rows:
        ws.append(r)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


# --- the command ------------------------------------------------------------------------------


def config_and_period(args: Any) -> tuple[Any, date | None, date | None] | None:
    """The configuration of ``--config`` and the dates of ``--from``/``--to`` (``report``,
    ``find``), or None after printing a coded error (exit code 2)."""
    import sys

    from connector.config import ConfigError, load_config

    try:
        cfg = load_config(args.config)
    except (ConfigError, OSError) as exc:
        print(f"CONN-CFG: {exc}", file=sys.stderr)
        return None
    try:
        start = date.fromisoformat(args.date_from) if args.date_from else None
        end = date.fromisoformat(args.date_to) if args.date_to else None
    except ValueError as exc:
        print(f"CONN-CLI: fecha no válida ({exc}); use AAAA-MM-DD.", file=sys.stderr)
        return None
    if start and end and start > end:
        print(f"CONN-CLI: --from {start} es posterior a --to {end}.", file=sys.stderr)
        return None
    return cfg, start, end


def cmd_report(args: Any) -> int:
    import sys
    from pathlib import Path

    from connector.sinks import atomic_write

    loaded = config_and_period(args)
    if loaded is None:
        return 2
    cfg, start, end = loaded
    if (start is None or end is None) and not args.pendientes_pago:
        print("CONN-CLI: indique el periodo con --from y --to (AAAA-MM-DD).", file=sys.stderr)
        return 2
    fmt = args.format or (Path(args.output).suffix.lstrip(".") if args.output else "csv")
    if fmt not in ("csv", "xlsx", "json"):
        print(f"CONN-CLI: formato {fmt!r} no válido: csv, xlsx o json.", file=sys.stderr)
        return 2
    if fmt == "xlsx" and not args.output:
        print("CONN-CLI: el formato xlsx requiere -o ARCHIVO.xlsx.", file=sys.stderr)
        return 2
    if not journal_exists(cfg.daemon):
        print(f"Aún no hay diario en {cfg.daemon.journal}: no hay CFDI que reportar.")
        return 0
    emisor = args.emisor.upper() if args.emisor else None
    meta = {"desde": str(start or ""), "hasta": str(end or ""), "emisor": emisor or "todos"}
    with open_journal(cfg.daemon) as j:
        if args.pendientes_pago:
            data = render_pending(pending_payments(j, start, end, emisor), fmt, meta)
        else:
            data = render(issued(j, start, end, emisor), fmt, meta)
    if args.output:
        try:
            atomic_write(Path(args.output), data)
        except OSError as exc:
            print(f"CONN-FILE {args.output}: no se pudo escribir ({exc.strerror}).",
                  file=sys.stderr)  # fmt: skip
            return 1
        print(f"Reporte escrito en {args.output}")
    else:
        sys.stdout.write(data.decode("utf-8").lstrip("\ufeff"))
    return 0
