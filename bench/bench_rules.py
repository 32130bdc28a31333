"""Catalogs, amounts and rules benchmark: catalog cold parse vs disk cache, complete(), validate().

Run from the repository root:

    python bench/bench_rules.py --rounds 5 --calls 2000

* catalogs cold: parse SAT's 5 MB ``catCFDI.xsd`` and build the frozen ``Catalogs``;
* catalogs cached: load the JSON disk cache written by the cold run (what a new process does);
* complete / validate: one 5-concepto invoice (IVA 16 %, one with discount and retenciones),
  median over rounds of the mean time per call. The invoice is checked to be valid first, so a
  fast but wrong validator cannot pass unnoticed.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from connector.cfdi import catalogs as cat_mod  # noqa: E402
from connector.cfdi.amounts import complete  # noqa: E402
from connector.cfdi.model import Comprobante, load_invoice  # noqa: E402
from connector.cfdi.rules import validate  # noqa: E402


def invoice() -> Comprobante:
    iva = {"Impuesto": "002", "TipoFactor": "Tasa", "TasaOCuota": "0.160000"}
    conceptos = []
    for n in range(5):
        k = {
            "ClaveProdServ": "01010101",
            "Cantidad": str(n + 1),
            "ClaveUnidad": "H87",
            "Descripcion": f"Artículo {n}",
            "ValorUnitario": str(Decimal("123.45") * (n + 1)),
            "ObjetoImp": "02",
            "Impuestos": {"Traslados": [dict(iva)]},
        }
        if n == 0:
            k["Descuento"] = "10.00"
        if n == 1:
            k["Impuestos"]["Retenciones"] = [
                {"Impuesto": "001", "TipoFactor": "Tasa", "TasaOCuota": "0.100000"}
            ]
        conceptos.append(k)
    data = {
        "Fecha": "2025-01-15T10:00:00",
        "FormaPago": "03",
        "Moneda": "MXN",
        "TipoDeComprobante": "I",
        "Exportacion": "01",
        "MetodoPago": "PUE",
        "LugarExpedicion": "86000",
        "Emisor": {
            "Rfc": "EKU9003173C9",
            "Nombre": "ESCUELA KEMPER URGATE",
            "RegimenFiscal": "601",
        },
        "Receptor": {
            "Rfc": "CACX7605101P8",
            "Nombre": "XOCHILT CASAS CHAVEZ",
            "DomicilioFiscalReceptor": "36257",
            "RegimenFiscalReceptor": "612",
            "UsoCFDI": "G03",
        },
        "Conceptos": conceptos,
    }
    c, problems = load_invoice(data)
    assert c is not None, problems
    return c


def per_call(fn, calls: int, rounds: int) -> tuple[float, float]:  # noqa: ANN001
    """(wall, CPU) seconds per call, median over rounds. CPU time (process_time) is the steadier
    figure on a shared machine; wall time includes waiting for the other processes."""
    walls, cpus = [], []
    for _ in range(rounds):
        w, c = time.perf_counter(), time.process_time()
        for _ in range(calls):
            fn()
        walls.append((time.perf_counter() - w) / calls)
        cpus.append((time.process_time() - c) / calls)
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--calls", type=int, default=2000)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        cache_dir = Path(tmp)
        cold, cached = [], []
        for _ in range(args.rounds):
            for f in cache_dir.glob("*.json"):
                f.unlink()
            t = time.process_time()
            cat_mod.load_catalogs(cache_dir=cache_dir)
            cold.append(time.process_time() - t)
            t = time.process_time()
            cat_mod.load_catalogs(cache_dir=cache_dir)
            cached.append(time.process_time() - t)
        cache_size = sum(f.stat().st_size for f in cache_dir.glob("*.json"))

    raw = invoice()
    done = complete(raw)
    problems = validate(done)
    assert problems == [], problems
    t_complete = per_call(lambda: complete(raw), args.calls, args.rounds)
    t_validate = per_call(lambda: validate(done), args.calls, args.rounds)

    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores")
    print(f"load average {os.getloadavg()[0]:.1f}")
    print(
        f"catalogs cold parse (5 MB XSD), CPU: {statistics.median(cold) * 1000:.0f} ms; "
        f"cached load, CPU: {statistics.median(cached) * 1000:.0f} ms "
        f"(cache {cache_size / 1e6:.1f} MB)"
    )
    for name, (wall, cpu) in (("complete()", t_complete), ("validate()", t_validate)):
        print(f"{name} 5 conceptos: {cpu * 1e6:.0f} µs/call CPU, {wall * 1e6:.0f} µs/call wall")


if __name__ == "__main__":
    main()
