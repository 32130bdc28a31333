"""Table sources end to end: rows from PostgreSQL over ODBC to written-back stamps, beside the
folder figures in the same run (the peer).

Run from the repository root (the local PostgreSQL on 127.0.0.1:5432, trust auth, and the
psqlODBC driver, ``apt-get install unixodbc odbc-postgresql``):

    python bench/bench_tables.py                          # 600 invoices, 0 and 150 ms
    python bench/bench_tables.py --invoices 1000 --latency 0 0.15

For each PAC latency: N invoice rows (one line each) are written into fresh default tables of
a new database, the pipeline runs until every row is written back, and the same N invoices in
DAT files of 10 go through a folder source (``bench_daemon.case_throughput``). Reported: wall
time → invoices/s, this process's CPU per invoice (the sandbox PAC runs in its own process), and
the database round trips per invoice (statements and commits the table source sent: claim,
read, write-back). Every run checks its result: every row TIMBRADO, one stamp per invoice.
"""

from __future__ import annotations

import argparse
import os
import platform
import secrets
import sys
import time
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_daemon as bd  # noqa: E402
import pyodbc  # noqa: E402

from connector.adapters.table import get_dialect  # noqa: E402

PG = "DRIVER={PostgreSQL Unicode};SERVER=127.0.0.1;PORT=5432;UID=postgres"


def _fill(conn_str: str, n: int) -> None:
    conn = pyodbc.connect(conn_str, autocommit=False)
    cur = conn.cursor()
    for stmt in get_dialect("postgresql").ddl():
        cur.execute(stmt)
    when = datetime.now() - timedelta(minutes=5)
    cur.fast_executemany = False
    cur.executemany(
        "INSERT INTO cfdi_concepto (factura_id, linea, clave_prod_serv, cantidad, clave_unidad, "
        "unidad, descripcion, valor_unitario, objeto_imp, iva_tasa) "
        "VALUES (?, 1, '43201800', 1, 'H87', 'Pieza', 'Memoria USB', ?, '02', ?)",
        [(i, Decimal("100.00"), Decimal("0.160000")) for i in range(1, n + 1)],
    )
    cur.executemany(
        "INSERT INTO cfdi_factura (id, serie, folio, fecha, receptor_rfc, receptor_nombre, "
        "receptor_cp, receptor_regimen, uso_cfdi, forma_pago, metodo_pago, moneda, estado) "
        "VALUES (?, 'B', ?, ?, 'CACX7605101P8', 'XOCHILT CASAS CHAVEZ', '26015', '612', 'G03', "
        "'03', 'PUE', 'MXN', 'PENDIENTE')",
        [(i, str(i), when) for i in range(1, n + 1)],
    )
    conn.commit()
    conn.close()


def _config(base: Path, url: str, conn_str: str, workers: int) -> Path:
    (base / "var").mkdir(parents=True, exist_ok=True)
    (base / "csd.pw").write_text("12345678a")
    (base / "pac.pw").write_text("demo")
    text = f"""
[daemon]
journal = "var/journal.sqlite"
workers = {workers}
poll_seconds = 0.2
log_level = "warning"
log_file = "var/connector.log"
journal_synchronous = "{bd.SYNC}"

[[emisores]]
rfc = "{bd.RFC}"
cer = "{bd.CSD}.cer"
key = "{bd.CSD}.key"
password_file = "csd.pw"
nombre = "ESCUELA KEMPER URGATE"
regimen_fiscal = "601"
lugar_expedicion = "42501"

[[pacs]]
name = "sandbox"
kind = "fel"
url = "{url}"
usuario = "demo"
cuenta = "DEMO"
password_file = "pac.pw"
timeout_seconds = 30

[[sources]]
name = "erp"
kind = "table"
emisor = "{bd.RFC}"
pac = "sandbox"
[sources.table]
connection = "{conn_str}"
dialect = "postgresql"
batch = 100
"""
    path = base / "connector.toml"
    path.write_text(text, encoding="utf-8")
    return path


def case_tables(n: int, latency: float, *, workers: int) -> dict[str, float]:
    name = f"bench_tables_{os.getpid()}_{secrets.token_hex(3)}"
    admin = pyodbc.connect(f"{PG};DATABASE=test", autocommit=True)
    admin.execute(f"CREATE DATABASE {name}")
    conn_str = f"{PG};DATABASE={name}"
    try:
        _fill(conn_str, n)
        with bd.scratch() as tmp:
            base = Path(tmp)
            sb = bd.Sandbox(base, latency)
            try:
                pipe = bd.pipeline(_config(base / "ws", sb.url, conn_str, workers))
                counts: dict[str, int] = {}
                for db in pipe.tables._dbs.values():
                    db.table.round_trips = counts
                cpu0, t0 = os.times(), time.perf_counter()
                assert pipe.run_until_idle(3600)
                wall, cpu1 = time.perf_counter() - t0, os.times()
                pipe.close()
                stamps = sb.stamps()
                assert len(stamps) == n and set(stamps.values()) == {1}, "one UUID per invoice"
            finally:
                sb.close()
        check = pyodbc.connect(conn_str)
        states = dict(check.execute("SELECT estado, COUNT(*) FROM cfdi_factura GROUP BY estado"))
        check.close()
        assert states == {"TIMBRADO": n}, states
    finally:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()
    cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    return {
        "wall": wall,
        "rate": n / wall,
        "cpu_ms": 1000 * cpu / n,
        "round_trips": (counts.get("statements", 0) + counts.get("commits", 0)) / n,
        "statements": counts.get("statements", 0) / n,
        "commits": counts.get("commits", 0) / n,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--invoices", type=int, default=600)
    ap.add_argument("--latency", type=float, nargs="+", default=[0.0, 0.15])
    ap.add_argument("--workers", type=int, default=32)
    a = ap.parse_args()
    print(f"# {platform.python_version()} {platform.machine()} cpus={os.cpu_count()} "
          f"load={os.getloadavg()[0]:.2f}")  # fmt: skip
    for lat in a.latency:
        t = case_tables(a.invoices, lat, workers=a.workers)
        f = bd.case_throughput(
            a.invoices, lat, pdf=False, acuse=True, workers=a.workers, pdf_processes=None
        )
        print(
            f"latency={lat * 1000:.0f}ms invoices={a.invoices}: "
            f"tables {t['rate']:.1f}/s (wall {t['wall']:.1f} s), CPU {t['cpu_ms']:.2f} ms/invoice, "
            f"{t['round_trips']:.2f} round trips/invoice ({t['statements']:.2f} statements + "
            f"{t['commits']:.2f} commits) | folders {f['rate']:.1f}/s (wall {f['wall']:.1f} s), "
            f"CPU {f['cpu_ms']:.2f} ms/invoice",
            flush=True,
        )


if __name__ == "__main__":
    main()
