"""``cfdi-connector find``: what the journal knows of one invoice or a few (a customer calls),
and ``--redeliver``: its XML, PDF and acuses written again to the ERP's folders.

Matches by UUID, by RFC (emisor or receptor), by serie-folio (``A-15``, ``A15`` or ``A/15``)
or by the date the connector received it (``--from``/``--to``). For each: state, dates, the
source and file it came from, where its outputs are (and whether they are there), its errors
and attempts, its history, its cancellation.
"""

from __future__ import annotations

import json
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Any

from lxml import etree

from connector.journal import Entry, Journal, State, journal_exists, open_journal

_NS = {"cfdi": "http://www.sat.gob.mx/cfd/4"}


def _receptor(e: Entry) -> str:
    xml = e.stamped_xml or (e.payload if (e.payload or b"").lstrip()[:1] == b"<" else None)
    if not xml:
        return ""
    try:
        r = etree.fromstring(xml).find("cfdi:Receptor", _NS)
    except etree.XMLSyntaxError:
        return ""
    return (r.get("Rfc") if r is not None else "") or ""


def matches(
    j: Journal,
    *,
    uuid: str | None = None,
    rfc: str | None = None,
    folio: str | None = None,
    start: date | None = None,
    end: date | None = None,
) -> list[Entry]:
    if uuid:
        e = j.find_uuid(uuid)
        return [e] if e is not None else []
    wanted = (folio or "").replace("-", "").replace("/", "").upper()
    out = []
    for e in j.all_entries():
        if wanted and f"{e.serie}{e.folio}".upper() != wanted:
            continue
        if rfc and rfc.upper() not in (e.emisor_rfc.upper(), _receptor(e).upper()):
            continue
        day = datetime.fromtimestamp(e.created_at).date()
        if (start and day < start) or (end and day > end):
            continue
        out.append(e)
    return out


def _when(at: float | None) -> str:
    return datetime.fromtimestamp(at).isoformat(sep=" ", timespec="seconds") if at else ""


def describe(j: Journal, e: Entry) -> dict[str, Any]:
    c = j.cancellation(e.uuid) if e.uuid else None
    req = j.cancel_request(e.uuid) if e.uuid else None
    return {
        "factura": e.label,
        "emisor": e.emisor_rfc,
        "receptor": _receptor(e),
        "uuid": e.uuid,
        "estado": str(e.state),
        "recibida": _when(e.created_at),
        "actualizada": _when(e.updated_at),
        "origen": {"fuente": e.source, "archivo": e.source_file, "ubicacion": e.location},
        "salidas": {k: {"ruta": p, "existe": Path(p).is_file()} for k, p in e.outputs.items()},
        "intentos": e.attempts,
        "error": {"codigo": e.error_code, "mensaje": e.error_message} if e.error_code else None,
        "problemas": e.problems,
        "historial": [
            {"de": frm, "a": to, "detalle": detail} for frm, to, detail in j.events(e.id)
        ],
        "cancelacion": None
        if req is None and c is None
        else {
            "estado": str(req.state) if req else "cancelada",
            "motivo": (req.motivo if req else c.motivo if c else None),
            "solicitada": _when(req.requested_at) if req else "",
            "solicitudes": req.requests if req else None,
            "sat_estatus_cancelacion": req.estatus_cancelacion if req else None,
            "cancelada": _when(c.at) if c else "",
        },
    }


def redeliver(cfg: Any, j: Journal, e: Entry) -> dict[str, str]:
    """The stamped XML, the PDF (with the CANCELADO mark when the journal knows it was
    cancelled) and the acuse again, whole, where the source writes them; then the acuse de
    cancelación and the cancellation's result file. Raises ``KeyError`` (source or emisor
    gone from the configuration) or ``OSError``."""
    from connector.adapters.files.finishing import deliver_outputs
    from connector.cancel_results import write_back

    src, emisor = cfg.source(e.source), cfg.emisor(e.emisor_rfc)
    cancelled = e.uuid is not None and j.cancellation(e.uuid) is not None
    written = {}
    if src.output is not None:
        written = deliver_outputs(src, emisor, e, cancelled=cancelled)
    if src.kind == "table":  # its row gets TIMBRADO, the UUID, the XML and the acuse again
        from connector.adapters.table.rows import rewrite_row

        written["fila"] = rewrite_row(src, e)
    if e.state is State.STAMPED:
        j.mark_delivered(e.id, written)
    req = j.cancel_request(e.uuid) if e.uuid else None
    if req is not None:
        write_back(cfg, j, req)
    return written


def cmd_find(args: Any) -> int:
    from connector.reports import config_and_period

    loaded = config_and_period(args)
    if loaded is None:
        return 2
    cfg, start, end = loaded
    if not (args.uuid or args.rfc or args.folio or start or end):
        print("CONN-CLI: indique un UUID, --rfc, --folio o --from/--to.", file=sys.stderr)
        return 2
    if not journal_exists(cfg.daemon):
        print(f"Aún no hay diario en {cfg.daemon.journal}.")
        return 1
    with open_journal(cfg.daemon) as j:
        found = matches(j, uuid=args.uuid, rfc=args.rfc, folio=args.folio, start=start, end=end)
        docs = [describe(j, e) for e in found]
        rc = 0 if found else 1
        if args.redeliver:
            for e in found:
                if e.stamped_xml is None or e.state not in (State.STAMPED, State.DELIVERED):
                    print(f"{e.label}: no está timbrada ({e.state}); no hay nada que entregar.")
                    rc = 1
                    continue
                try:
                    written = redeliver(cfg, j, e)
                except KeyError:
                    print(f"CONN-CFG {e.label}: su origen {e.source!r} o su emisor ya no está "
                          "en la configuración.", file=sys.stderr)  # fmt: skip
                    rc = 1
                    continue
                except OSError as exc:
                    print(f"CONN-FILE {e.label}: no se pudo escribir ({exc}).", file=sys.stderr)
                    rc = 1
                    continue
                for kind, path in written.items():  # beside JSON: on stderr
                    print(f"{e.label}: {kind} escrito de nuevo en {path}",
                          file=sys.stderr if args.json else sys.stdout)  # fmt: skip
    if args.json:
        print(json.dumps(docs, ensure_ascii=False, indent=2))
        return rc
    if not docs:
        print("No se encontró ninguna factura con esos datos en el diario.")
    for d in docs:
        print(f"{d['factura']} (emisor {d['emisor']}, receptor {d['receptor'] or '-'}): "
              f"{d['estado']}; UUID {d['uuid'] or '-'}")  # fmt: skip
        print(f"  recibida {d['recibida']}, actualizada {d['actualizada']}; "
              f"{d['origen']['archivo']} ({d['origen']['ubicacion']}); intentos: {d['intentos']}")  # fmt: skip
        for kind, out in d["salidas"].items():
            print(f"  {kind}: {out['ruta']}{'' if out['existe'] else ' (NO ESTÁ)'}")
        if d["error"]:
            print(f"  error {d['error']['codigo']}: {d['error']['mensaje']}")
        c = d["cancelacion"]
        if c:
            print(f"  cancelación: {c['estado']} (motivo {c['motivo'] or '-'}, solicitada "
                  f"{c['solicitada'] or '-'}, cancelada {c['cancelada'] or '-'}"
                  f"{'; SAT: ' + c['sat_estatus_cancelacion'] if c['sat_estatus_cancelacion'] else ''})")  # fmt: skip
    return rc
