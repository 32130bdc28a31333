"""Adapters + mappers benchmark: ERP export bytes → mapped Comprobantes, and folder scans.

Run from the repository root:

    python bench/bench_adapters.py --invoices 2000 --rounds 5

- ``dat``: a DAT file (default layout + default mapping) with N invoices of 3 conceptos each,
  derived amounts left empty (as most ERPs write them);
- ``csv``: the demo ERP's CSV shape (';', decimal comma, dd/mm/yyyy, cp1252) with N invoices of
  3 rows each, articles and customers resolved through the demo lookup tables;
- ``scan``: ``FolderSource.scan()`` of an inbox holding 2000 files (two scans: observe, ready).

Figures are the median per invoice (or per scan) over the rounds, wall clock and CPU time of
the process (the CPU figure is the steadier one on a shared machine). Each run checks its result
(N invoices, no problems, completed amounts pass ``rules.validate``) so a fast but wrong result
cannot pass unnoticed.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from connector.adapters import load_invoices  # noqa: E402
from connector.adapters.folder import FolderSource  # noqa: E402
from connector.cfdi import amounts, rules  # noqa: E402
from connector.demo.erp import CSV_MAPPING  # noqa: E402
from connector.mappers import Mapping  # noqa: E402

NOW = datetime.now().replace(microsecond=0)
FECHA = NOW.strftime("%Y-%m-%dT%H:%M:%S")


def dat_file(n: int) -> bytes:
    out = []
    for i in range(n):
        out.append(
            f"COMPROBANTE|4.0|B|{i + 1}|{FECHA}|03||CONTADO|||MXN|||I|01|PUE|42501||\n"
            "EMISOR|EKU9003173C9|ESCUELA KEMPER URGATE|601||\n"
            "RECEPTOR|CACX7605101P8|XOCHILT CASAS CHAVEZ|26015|||612|G03|\n"
            "CONCEPTOS|3|\n"
        )
        for k in range(3):
            out.append(
                f"\tCONCEPTO|43201800|ART{k}|{k + 1}|H87|Pieza|Artículo número {k}|{100 + i % 50}.{k}5|||02|\n"
                "\t\tTRASLADOCONCEPTO||002|Tasa|0.160000||\n"
            )
    return "".join(out).encode()


def csv_file(n: int) -> bytes:
    rows = [
        "SERIE;FOLIO;FECHA;CLIENTE;FORMA_PAGO;CONDICIONES;ARTICULO;DESCRIPCION;CANTIDAD;PRECIO;DESCUENTO"
    ]
    fecha = NOW.strftime("%d/%m/%Y %H:%M:%S")
    for i in range(n):
        for art in ("A100", "A300", "A500"):
            rows.append(
                f"C;{i + 1};{fecha};C00{1 + i % 2};TRANSFERENCIA;CONTADO;{art};Descripción con ñ;2;1.2{i % 10}0,50;0,00"
            )
    return ("\r\n".join(rows) + "\r\n").encode("cp1252")


def run_load(
    data: bytes, name: str, adapter: str, options: dict, mapping: Mapping | None, n: int
) -> tuple[float, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    out = list(load_invoices(data, name, adapter=adapter, options=options, mapping=mapping))
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert len(out) == n and all(not i.problems for i in out), out[0].problems
    return elapsed, cpu


def check(data: bytes, name: str, adapter: str, options: dict, mapping: Mapping | None) -> None:
    for inv in list(load_invoices(data, name, adapter=adapter, options=options, mapping=mapping))[
        :50
    ]:
        problems = rules.validate(amounts.complete(inv.comprobante), now=NOW)
        assert problems == [], problems


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--invoices", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--files", type=int, default=2000)
    args = ap.parse_args()
    n = args.invoices
    csv_mapping = Mapping.from_toml(CSV_MAPPING)
    cases = {
        "dat": (dat_file(n), "b.dat", "dat", {}, None),
        "csv": (csv_file(n), "b.csv", "csv", {"delimiter": ";", "encoding": "cp1252"}, csv_mapping),
    }
    print(f"python {platform.python_version()} on {platform.machine()}, {n} invoices x 3 lines")
    for label, case in cases.items():
        check(*case)
        runs = [run_load(*case, n) for _ in range(args.rounds)]
        med = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        print(f"{label}: {cpu * 1e6 / n:8.1f} µs CPU/invoice (process time)")
        print(
            f"{label}: {med * 1e6 / n:8.1f} µs/invoice  ({n / med:8.0f} invoices/s, file {len(case[0]) / 1e6:.1f} MB)"
        )

    with tempfile.TemporaryDirectory() as tmp:
        inbox = Path(tmp) / "in"
        inbox.mkdir()
        for i in range(args.files):
            (inbox / f"v{i:05d}.dat").write_bytes(b"x")
        times = []
        for _ in range(args.rounds):
            src = FolderSource(inbox, Path(tmp) / "work", stable_seconds=0.0)
            t0 = time.perf_counter()
            ready = src.scan()
            times.append(time.perf_counter() - t0)
            assert len(ready) == args.files
        print(f"scan of {args.files} files: {statistics.median(times) * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
