"""Sandbox PAC server cost: what one stamp costs the server, and how many it answers per second.

Two measurements:

* ``engine``: ``PacEngine.stamp`` called directly (no HTTP): parse, XSD, seal verification,
  72 h / RFC checks, TFD signing, SQLite insert — the server-side work per invoice, plus the
  cost of a 307 (same document again).
* ``http``: the sandbox running in its own process (``cfdi-connector sandbox-pac``) and a light
  client (``http.client`` keep-alive connections, pre-built SOAP envelopes, no zeep) sending
  ``TimbrarCFDI`` from N threads, with and without added latency.

Invoices are sealed with SAT's test CSD before the clock starts.

    python bench/bench_sandbox.py --n 300 --threads 1 8 --latency 0 0.15
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from xml.sax.saxutils import escape

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from connector.cfdi.amounts import complete  # noqa: E402
from connector.cfdi.csd import Csd  # noqa: E402
from connector.cfdi.model import load_invoice  # noqa: E402
from connector.cfdi.seal import seal_invoice  # noqa: E402

CSD_DIR = REPO / "connector" / "demo" / "csd"
CSD_BASE = "eku9003173c9_csd_2023_30001000000500003416"


def load_csd() -> Csd:
    return Csd.from_files(CSD_DIR / f"{CSD_BASE}.cer", CSD_DIR / f"{CSD_BASE}.key", "12345678a")


def sealed_invoices(csd: Csd, n: int, tag: str) -> list[bytes]:
    fecha = datetime.now().replace(microsecond=0).isoformat()
    out = []
    for i in range(n):
        c, problems = load_invoice(
            {
                "Serie": tag,
                "Folio": str(i),
                "Fecha": fecha,
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
                "Conceptos": [
                    {
                        "ClaveProdServ": "52161557",
                        "Cantidad": str(k + 1),
                        "ClaveUnidad": "H87",
                        "Descripcion": f"Artículo {k}",
                        "ValorUnitario": "150.00",
                        "ObjetoImp": "02",
                        "Impuestos": {
                            "Traslados": [
                                {"Impuesto": "002", "TipoFactor": "Tasa", "TasaOCuota": "0.160000"}
                            ]
                        },
                    }
                    for k in range(3)
                ],
            }
        )
        assert c is not None, problems
        out.append(seal_invoice(complete(c), csd))
    return out


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def bench_engine(csd: Csd, n: int) -> None:
    from connector.pac.sandbox.stamping import PacCertificate, PacEngine, SandboxAccount
    from connector.pac.sandbox.store import SandboxStore

    xmls = sealed_invoices(csd, n, "ENG")
    with tempfile.TemporaryDirectory() as tmp:
        store = SandboxStore(Path(tmp) / "pac.db")
        engine = PacEngine(
            store,
            [SandboxAccount("u", "p", "C", creditos=10 * n, csds={"EKU9003173C9": csd})],
            PacCertificate.load_or_create(Path(tmp) / "pac"),
        )
        engine.stamp("u", xmls[0], "warm-up")  # compile the XSD once
        for label, refs in (("stamp (new)", "new"), ("307 (same document again)", "dup")):
            wall: list[float] = []
            cpu: list[float] = []
            for i, xml in enumerate(xmls[1:]):
                t0, c0 = time.perf_counter(), time.process_time()
                outcome = engine.stamp("u", xml, f"{refs}-{i}" if refs == "new" else None)
                wall.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
                expected = "200" if refs == "new" else "307"
                assert outcome.code == expected, (outcome.code, outcome.detail)
            print(
                f"| engine {label} | {statistics.median(cpu) * 1000:.2f} ms | "
                f"{statistics.median(wall) * 1000:.2f} ms | {pct(wall, 95) * 1000:.2f} ms |"
            )
        store.close()


def envelope(xml: bytes, referencia: str) -> bytes:
    return (
        '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>'
        '<TimbrarCFDI xmlns="http://tempuri.org/"><usuario>demo</usuario><password>demo</password>'
        f"<cadenaXML>{escape(xml.decode('utf-8'))}</cadenaXML><referencia>{referencia}</referencia>"
        "</TimbrarCFDI></s:Body></s:Envelope>"
    ).encode()


def bench_http(csd: Csd, n: int, threads: list[int], latencies: list[float]) -> None:
    for latency in latencies:
        with tempfile.TemporaryDirectory() as tmp:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "connector.cli",
                    "sandbox-pac",
                    "--port",
                    "0",
                    "--db",
                    str(Path(tmp) / "pac.db"),
                    "--latency",
                    str(latency),
                ],
                stdout=subprocess.PIPE,
                text=True,
                cwd=REPO,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
            assert proc.stdout is not None
            port = 0
            for line in proc.stdout:
                m = re.search(r"127\.0\.0\.1:(\d+)", line)
                if m and not port:
                    port = int(m.group(1))
                if line.startswith("Ctrl-C"):
                    break
            try:
                for k in threads:
                    bodies = [
                        envelope(x, f"H{latency}-{k}-{i}")
                        for i, x in enumerate(sealed_invoices(csd, n, f"H{k}"))
                    ]
                    run_http(port, bodies, k, latency)
            finally:
                proc.terminate()
                proc.wait(timeout=30)


_OK = re.compile(rb"OperacionExitosa[^>]*>true<")


def run_http(port: int, bodies: list[bytes], k: int, latency: float) -> None:
    local = threading.local()
    lat: list[float] = []
    lock = threading.Lock()

    def send(body: bytes) -> None:
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        t0 = time.perf_counter()
        conn.request(
            "POST",
            "/fel/WSCFDI33.svc",
            body=body,
            headers={
                "Content-Type": "text/xml; charset=utf-8",
                "SOAPAction": '"http://tempuri.org/IWSCFDI33/TimbrarCFDI"',
            },
        )
        resp = conn.getresponse()
        data = resp.read()
        assert resp.status == 200 and _OK.search(data), data[:500]
        with lock:
            lat.append(time.perf_counter() - t0)

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=k) as pool:
        list(pool.map(send, bodies))
    elapsed = time.perf_counter() - start
    print(
        f"| http TimbrarCFDI, {k} in flight, +{int(latency * 1000)} ms latency | "
        f"{len(bodies) / elapsed:.1f}/s | {statistics.median(lat) * 1000:.1f} ms | "
        f"{pct(lat, 95) * 1000:.1f} ms |"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--latency", type=float, nargs="+", default=[0.0, 0.15])
    ap.add_argument("--only", choices=["engine", "http"], default=None)
    args = ap.parse_args()
    csd = load_csd()
    print(
        f"n={args.n}, Python {sys.version.split()[0]}, cores={os.cpu_count()}, load={os.getloadavg()[0]:.1f}"
    )
    if args.only in (None, "engine"):
        print("| case | CPU (median) | wall (median) | wall p95 |")
        print("| --- | --- | --- | --- |")
        bench_engine(csd, args.n)
    if args.only in (None, "http"):
        print("| case | throughput | p50 | p95 |")
        print("| --- | --- | --- | --- |")
        bench_http(csd, args.n, args.threads, args.latency)


if __name__ == "__main__":
    main()
