"""``cfdi-connector sandbox-pac``: run the sandbox PAC in the foreground until Ctrl-C / SIGTERM."""

from __future__ import annotations

import argparse
import signal
import sqlite3
import sys
import threading
from types import FrameType
from typing import TextIO


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from connector.cfdi.errors import CfdiError

    from .faults import FaultSpecError, parse_fault_spec
    from .server import DEMO_RFC, SandboxPac

    out = out or sys.stdout
    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    try:
        specs = [parse_fault_spec(spec) for spec in args.fault or []]
        for spec in specs:
            _check_fault(spec)
    except FaultSpecError as exc:
        print(f"ERROR {exc}", file=sys.stderr)
        return 2
    if args.latency < 0:
        print("ERROR SBX-LATENCY: --latency no puede ser negativa", file=sys.stderr)
        return 2
    if not 0 <= args.port <= 65535:
        print(f"ERROR SBX-PORT: el puerto {args.port} no existe; use 0 a 65535", file=sys.stderr)
        return 2
    try:
        sandbox = SandboxPac.demo(args.db, port=args.port, latency=args.latency)
    except (OSError, sqlite3.Error, CfdiError) as exc:
        print(
            f"ERROR SBX-START: no se pudo preparar el sandbox ({args.db}): {exc}", file=sys.stderr
        )
        return 2
    for spec in specs:
        sandbox.faults.add(**spec)  # type: ignore[arg-type]
    try:
        sandbox.start()
    except OSError as exc:
        sandbox.close()
        print(
            f"ERROR SBX-PORT: no se pudo escuchar en 127.0.0.1:{args.port}: {exc}", file=sys.stderr
        )
        return 2
    previous = {
        sig: signal.signal(sig, _stop)
        for sig in (signal.SIGINT, signal.SIGTERM)
        if threading.current_thread() is threading.main_thread()
    }
    try:
        print(f"PAC de pruebas escuchando en {sandbox.base_url}", file=out)
        print(f"  FEL Timbrado:         {sandbox.fel_timbrado_url}", file=out)
        print(f"  FEL Conexión Remota:  {sandbox.fel_remote_url}", file=out)
        print(f"  Finkok timbrado:      {sandbox.finkok_stamp_url}", file=out)
        print(f"  Finkok cancelación:   {sandbox.finkok_cancel_url}", file=out)
        print(f"  SAT estado del CFDI:  {sandbox.sat_status_url}", file=out)
        print(
            f"Cuenta demo: usuario=demo password=demo cuenta=DEMO (RFC {DEMO_RFC}); "
            f"base de datos {args.db}",
            file=out,
        )
        if args.latency:
            print(f"Latencia agregada: {args.latency} s", file=out)
        for spec in specs:
            print(f"Falla activa: {spec}", file=out)
        print("Ctrl-C para detener.", file=out, flush=True)
        while not stop.wait(0.2):
            pass
    finally:
        sandbox.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("PAC de pruebas detenido.", file=out, flush=True)
    return 0


def _check_fault(spec: dict[str, object]) -> None:
    """Refuse, before starting, a fault that would fail later or never fire: values out of
    range and operation names no sandbox service has (a typo would silently disable it)."""
    import math

    from .faults import Faults, FaultSpecError
    from .server import SERVICES

    for key in ("probability", "seconds"):
        value = spec.get(key)
        if isinstance(value, float) and not math.isfinite(value):
            raise FaultSpecError(f"SBX-FAULT: {key} debe ser un número finito ({value})")
    Faults().add(**spec)  # type: ignore[arg-type]  # raises FaultSpecError for bad values
    known = {name for svc in SERVICES for name in svc.handlers}
    unknown = sorted(set(spec.get("operations") or ()) - known)  # type: ignore[call-overload]
    if unknown:
        raise FaultSpecError(
            f"SBX-FAULT: operación desconocida {', '.join(unknown)}; use una de "
            f"{', '.join(sorted(known))}"
        )
