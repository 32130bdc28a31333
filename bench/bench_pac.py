"""Stamping throughput through the FEL driver against the in-process sandbox PAC.

    python bench/bench_pac.py [--n 400] [--threads 16] [--latency 0 0.15] [--drivers shared|per-thread]

Invoices are sealed before the clock starts (sealing is measured in bench_core); each one is
then stamped through ``ResilientPac(FelDriver)`` over real HTTP on 127.0.0.1, ``--threads``
requests in flight. The sandbox runs in the same process (it shares the GIL and the two cores
with the client), with ``--latency`` seconds added to every reply, as FEL's advertised 150 ms.
Reports invoices/s, latency percentiles and the process's CPU time (user + sys) per invoice per
setting, and checks one UUID per referencia. The CPU figure includes the sandbox (same code
before and after a client change, so a difference is the client's).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from connector.cfdi.amounts import complete  # noqa: E402
from connector.cfdi.csd import Csd  # noqa: E402
from connector.cfdi.model import load_invoice  # noqa: E402
from connector.cfdi.seal import seal_invoice  # noqa: E402
from connector.pac.base import Timeouts  # noqa: E402
from connector.pac.fel import FelDriver  # noqa: E402
from connector.pac.resilience import CircuitBreaker, ResilientPac, RetryPolicy  # noqa: E402
from connector.pac.sandbox import SandboxAccount, SandboxPac  # noqa: E402

CSD_DIR = ROOT / "connector" / "demo" / "csd"
EMISOR = "EKU9003173C9"


def load_csd() -> Csd:
    cer = next(CSD_DIR.glob("*.cer"))
    return Csd.from_files(cer, cer.with_suffix(".key"), "12345678a")


def sealed_invoices(csd: Csd, n: int, tag: str) -> list[bytes]:
    fecha = (datetime.now() - timedelta(minutes=1)).replace(microsecond=0).isoformat()
    out = []
    for i in range(n):
        c, problems = load_invoice(
            {
                "Serie": "B",
                "Folio": f"{tag}{i}",
                "Fecha": fecha,
                "FormaPago": "03",
                "Moneda": "MXN",
                "TipoDeComprobante": "I",
                "Exportacion": "01",
                "MetodoPago": "PUE",
                "LugarExpedicion": "86000",
                "Emisor": {
                    "Rfc": EMISOR,
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
                "Conceptos": [
                    {
                        "ClaveProdServ": "52161557",
                        "Cantidad": "1",
                        "ClaveUnidad": "H87",
                        "Descripcion": f"Artículo {i}",
                        "ValorUnitario": "100.00",
                        "ObjetoImp": "02",
                        "Impuestos": {
                            "Traslados": [
                                {"Impuesto": "002", "TipoFactor": "Tasa", "TasaOCuota": "0.160000"}
                            ]
                        },
                    }
                ],
            }
        )
        assert c is not None, problems
        out.append(seal_invoice(complete(c), csd))
    return out


def run(pac: SandboxPac, xmls: list[bytes], threads: int, drivers: str, tag: str) -> dict:
    def make() -> ResilientPac:
        d = FelDriver(
            "bench",
            "bench-pass",
            timbrado_url=pac.fel_timbrado_url,
            timeouts=Timeouts(connect=5, read=30),
            pool_size=threads,
        )
        return ResilientPac(
            d,
            policy=RetryPolicy(max_attempts=3, base_delay=0.05, max_delay=0.5),
            breaker=CircuitBreaker("bench", failure_threshold=1000),
        )

    shared = make() if drivers == "shared" else None
    pool = [make() for _ in range(threads)] if drivers == "per-thread" else []
    latencies: list[float] = []

    def one(i: int) -> str:
        rp = shared if shared is not None else pool[i % threads]
        t0 = time.perf_counter()
        res = rp.submit(xmls[i], f"{tag}-{i}")
        latencies.append(time.perf_counter() - t0)
        return res.uuid

    # warm the connections (not timed)
    warm = sealed_invoices(load_csd(), threads, f"W{tag}")
    with ThreadPoolExecutor(threads) as ex:
        list(ex.map(lambda i: (shared or pool[i]).submit(warm[i], f"w{tag}-{i}"), range(threads)))
    latencies.clear()

    cpu0, t0 = os.times(), time.perf_counter()
    with ThreadPoolExecutor(threads) as ex:
        uuids = list(ex.map(one, range(len(xmls))))
    elapsed, cpu1 = time.perf_counter() - t0, os.times()
    cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    assert len(set(uuids)) == len(xmls)
    for i in range(0, len(xmls), max(1, len(xmls) // 20)):
        assert pac.store.uuids_for_referencia(f"{tag}-{i}") == [uuids[i]]
    lat = sorted(latencies)
    return {
        "n": len(xmls),
        "elapsed": elapsed,
        "rate": len(xmls) / elapsed,
        "cpu_ms": 1000 * cpu / len(xmls),
        "p50": statistics.median(lat) * 1000,
        "p95": lat[int(0.95 * (len(lat) - 1))] * 1000,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--threads", type=int, default=16)
    ap.add_argument("--latency", type=float, nargs="+", default=[0.0, 0.15])
    ap.add_argument("--drivers", choices=("shared", "per-thread"), default="shared")
    args = ap.parse_args()

    csd = load_csd()
    with tempfile.TemporaryDirectory() as tmp:
        account = SandboxAccount("bench", "bench-pass", "B", 10_000_000, csds={EMISOR: csd})
        with SandboxPac(Path(tmp) / "pac.db", accounts=[account]) as pac:
            print(
                f"threads={args.threads} drivers={args.drivers} n={args.n} "
                f"python={sys.version.split()[0]}"
            )
            for k, latency in enumerate(args.latency):
                tag = f"L{k}{int(time.time())}"
                xmls = sealed_invoices(csd, args.n, tag)
                pac.latency = latency
                r = run(pac, xmls, args.threads, args.drivers, tag)
                print(
                    f"latency={latency * 1000:.0f} ms: {r['rate']:.1f} invoices/s "
                    f"({r['n']} in {r['elapsed']:.2f} s), p50={r['p50']:.0f} ms, "
                    f"p95={r['p95']:.0f} ms, process CPU {r['cpu_ms']:.2f} ms/invoice "
                    "(client + in-process sandbox)"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
