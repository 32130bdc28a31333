"""``status``: what the journal holds (invoices and files by state, failures, cancellation
requests, the PAC circuits), in Spanish or as ``--json``."""

from __future__ import annotations

import argparse
import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from connector.config import csd_expiry_problems

from .common import _load, _open_journal

# --- status -----------------------------------------------------------------------------------

_STATE_ES = {
    "received": "recibidas",
    "validated": "validadas",
    "sealed": "selladas",
    "sending": "enviándose",
    "retry_wait": "esperando reintento",
    "stamped": "timbradas (sin entregar)",
    "delivered": "entregadas",
    "failed": "con error",
}
_FILE_STATE_ES = {
    "claimed": "en proceso (work/)",
    "archiving": "archivándose",
    "failing": "pasando a failed/",
    "archived": "archivados",
    "failed": "en failed/",
    "replayed": "devueltos a la entrada (replay)",
}
_CIRCUIT_ES = {
    "closed": "cerrado (normal)",
    "open": "abierto (no se le llama)",
    "half_open": "semiabierto (probando)",
}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_CANCEL_REQUEST_ES = {  # cancellation requests not (yet) cancelled: never counted as such
    "solicitada": "cancelaciones sin respuesta",  # sent without answer: SAT asked first
    "enviada": "cancelaciones enviadas",  # the PAC took them, SAT does not show them yet
    "en_proceso": "cancelaciones en proceso",  # waiting for the receptor's acceptance
    "rechazada": "cancelaciones rechazadas",  # the receptor said no: still vigente
    "no_cancelable": "no cancelables",  # SAT: No cancelable (related documents)
    "invalida": "cancelaciones rechazadas por el PAC",
}


def cmd_status(args: argparse.Namespace) -> int:
    from connector.cancellations import status_lines
    from connector.service.metrics import journal_figures

    cfg = _load(Path(args.config), deep=False)
    if cfg is None:
        return 2
    csd_notes = csd_expiry_problems(cfg)  # an expired or expiring CSD: before anything else
    if not args.json:
        for p in csd_notes:
            print(f"{'ERROR' if p.severity == 'error' else 'AVISO'} {p.code} {p.message}")
    from connector.journal import journal_exists

    if not journal_exists(cfg.daemon):
        if args.json:  # scripts read JSON whatever the state: nothing processed yet
            doc = {
                "journal": None,
                "message": f"Aún no hay diario en {cfg.daemon.journal}: el daemon no ha "
                "procesado nada.",
                "csd": [
                    {"severity": p.severity, "code": p.code, "message": p.message}
                    for p in csd_notes
                ],
                "recent_failures": [],
            }
            print(json.dumps(doc, ensure_ascii=False, indent=2))
        else:
            print(f"Aún no hay diario en {cfg.daemon.journal}: el daemon no ha procesado nada.")
        return 0
    j = _open_journal(cfg)
    if j is None:
        return 2
    try:
        counts = j.counts()
        cancelled = j.cancelled_count()
        cancel_requests = j.cancel_request_counts()
        cancel_open = status_lines(j)
        files = j.file_counts()
        failures = j.recent_failures(args.limit)
        figures = journal_figures(cfg, j) if args.json else None
        instances = j.instances() if j.shared else []
    finally:
        j.close()
    status_file = cfg.daemon.local_file(".status.json")
    daemon_doc: dict[str, Any] | None = None
    if status_file.exists():
        try:
            daemon_doc = json.loads(status_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            daemon_doc = None
    if args.json:
        print(
            json.dumps(
                {
                    "invoices": counts,
                    "cancelled": cancelled,
                    "cancel_requests": cancel_requests,
                    "cancellations_open": cancel_open,
                    "files": files,
                    "daemon": daemon_doc,
                    # the connectors sharing a PostgreSQL journal (issue 16)
                    "instances": instances,
                    # the figures /metrics serves (connector.service.metrics)
                    "figures": figures,
                    "csd": [
                        {"severity": p.severity, "code": p.code, "message": p.message}
                        for p in csd_notes
                    ],
                    "recent_failures": [
                        {
                            "at": datetime.fromtimestamp(f.at).isoformat(timespec="seconds"),
                            "invoice": f.invoice,
                            "state": f.state,
                            "code": f.code,
                            "message": f.message,
                            "file": f.file,
                            "location": f.location,
                            "source": f.source,
                        }
                        for f in failures
                    ],
                },
                ensure_ascii=False,
                indent=2,
            )
        )
        return 0
    print("Facturas por estado:")
    for state, n in counts.items():
        print(f"  {_STATE_ES.get(state, state):28} {n}")
    print(f"  {'canceladas (de las entregadas)':28} {cancelled}")
    pending = {k: n for k, n in cancel_requests.items() if k != "cancelada"}
    for state, n in sorted(pending.items()):
        label = _CANCEL_REQUEST_ES.get(state, state)
        print(f"  {label:28} {n}")
    if cancel_open:
        print("Cancelaciones en seguimiento (el daemon consulta al SAT):")
    for c in cancel_open:
        said = f"; SAT: {c['sat_estatus_cancelacion']}" if c["sat_estatus_cancelacion"] else ""
        print(f"  {c['uuid']} {c['estado']} desde hace {c['edad']} (solicitudes: "
              f"{c['solicitudes']}, consultas al SAT: {c['consultas']}{said}; siguiente "
              f"consulta: {c['proxima_consulta']})"
              f"{' ' + c['error'] if c['error'] else ''}")  # fmt: skip
    print("Archivos:")
    for state, n in files.items():
        print(f"  {_FILE_STATE_ES.get(state, state):28} {n}")
    if daemon_doc and _pid_alive(int(daemon_doc.get("pid", 0))):
        print(f"Daemon en marcha (pid {daemon_doc['pid']}, {daemon_doc.get('at')}):")
        for name, snap in (daemon_doc.get("pacs") or {}).items():
            state = snap.get("state") if isinstance(snap, dict) else snap
            extra = ""
            if isinstance(snap, dict) and snap.get("last_error"):
                extra = f" (último error {snap['last_error']})"
            print(f"  PAC {name}: circuito {_CIRCUIT_ES.get(str(state), state)}{extra}")
            credit = (daemon_doc.get("credits") or {}).get(name)
            if credit:
                low = " (por debajo del aviso: compre más timbres)" if credit.get("bajo") else ""
                print(f"    timbres restantes: {credit.get('restantes')}{low}")
            paused = snap.get("paused") if isinstance(snap, dict) else None
            if paused:
                print(
                    f"    EN PAUSA: el PAC rechazó la cuenta: {paused.get('code')} "
                    f"{paused.get('message')} Las facturas esperan (no fallan); se vuelve a "
                    f"probar en {paused.get('probe_in_seconds')} s. Corrija el usuario o la "
                    "contraseña y reinicie el servicio, o revise la cuenta en el portal del PAC."
                )
    else:
        print("El daemon no está en marcha: estado del circuito de los PAC desconocido.")
    if instances:
        print("Instancias que comparten el diario:")
    for i in instances:
        if i["alive"]:
            state = f"viva (último latido hace {i['heartbeat_age_seconds']:g} s)"
        elif i["taken_over_by"]:
            state = f"relevada por {i['taken_over_by']}"
        else:
            state = "detenida" if i["stopped"] else "sin latido"
        print(f"  {i['name']:24} {i['host']} pid {i['pid']}: {state}; en proceso: "
              f"{i['open_invoices']} factura(s), {i['open_files']} archivo(s)")  # fmt: skip
    if failures:
        print("Errores recientes (el más reciente primero):")
        for f in failures:
            when = datetime.fromtimestamp(f.at).strftime("%Y-%m-%d %H:%M:%S")
            what = f.invoice or "(archivo)"
            state = _STATE_ES.get(f.state, f.state) if f.state else "rechazado"
            print(f"  {when}  {what:12} {state:20} {f.code}  {f.message}  ({f.location or f.file})")
    return 0
