"""Several connector instances on one shared journal on PostgreSQL (issue 16): invoices/s at
150 ms PAC latency with 1, 2 and 3 instances in the same run, beside one instance on a SQLite
journal; the PostgreSQL journal's own cost per invoice (statements, server CPU).

Run from the repository root (PostgreSQL's server binaries installed: ``initdb``/``postgres``
of ``/usr/lib/postgresql/*/bin``; the bench runs a private server of its own on a free port,
with ``pg_stat_statements`` loaded and ``fsync`` on):

    python bench/bench_instances.py                        # 600 invoices, 1/2/3 on PG + SQLite
    python bench/bench_instances.py --invoices 900 --workers 8 --instances 1 2 3 --rounds 2

Each case: the sandbox PAC in its own process (latency ``--latency``, default 0.150 s, FEL's
two calls per invoice: stamp + acuse), K daemons as real processes (``python -m connector.cli
run --config C --instance iK``, each with ``--workers`` PAC requests in flight) on one inbox
(a folder source, DAT files of 10 invoices, XML + acuse outputs), every daemon's journal the
same PostgreSQL database (or, for the SQLite case, its own ``var/journal.sqlite``). Each
daemon says it is ready through systemd's notify protocol (a socket of the bench's); then every
file is renamed into the inbox at once, and the clock runs until the last file is archived.

Reported per case: wall → invoices/s (and against K × the one-instance rate: linear), the
daemons' CPU per invoice (user + system from ``/proc``, between the drop and the end), the
PostgreSQL server's CPU per invoice (postmaster and backends, from ``/proc``), and the
journal's statements per invoice (``pg_stat_statements``, reset at the drop; BEGIN/COMMIT
included) with the most frequent ones. Every run checks its result: each invoice stamped
exactly once at the PAC, every file archived.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_daemon as bd  # noqa: E402
import psycopg  # noqa: E402

from tests.instances.private_pg import PrivatePostgres  # noqa: E402

PER_FILE = 10


def _proc_cpu(pid: int) -> float:
    """CPU seconds (user + system, every thread) of a live process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _config(base: Path, name: str, share: Path, url: str, journal: str, workers: int) -> Path:
    d = base / name
    (d / "var").mkdir(parents=True, exist_ok=True)
    (d / "csd.pw").write_text("12345678a")
    (d / "pac.pw").write_text("demo")
    s = share.as_posix()
    text = f"""
[daemon]
journal = "{journal}"
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

[[pacs]]
name = "sandbox"
kind = "fel"
url = "{url}"
usuario = "demo"
cuenta = "DEMO"
password_file = "pac.pw"
timeout_seconds = 30

[[sources]]
name = "ventas"
inbox = "{s}/inbox"
adapter = "dat"
include = ["*.dat"]
emisor = "{bd.RFC}"
pac = "sandbox"
stable_seconds = 0
archive = "{s}/archive"
failed = "{s}/failed"
[sources.output]
xml = "{s}/out/xml"
acuse = "{s}/out/acuse"
"""
    path = d / "connector.toml"
    path.write_text(text, encoding="utf-8")
    return path


class Daemons:
    """K ``run`` processes, each told to report READY=1 on a notify socket of ours."""

    def __init__(self, configs: list[Path]) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self.socks: list[socket.socket] = []
        for i, config in enumerate(configs):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            path = config.parent / "notify.sock"
            sock.bind(str(path))
            sock.settimeout(120)
            self.socks.append(sock)
            err = open(config.parent / "var" / "daemon.stderr", "ab")  # noqa: SIM115
            self.procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "connector.cli",
                        "run",
                        "--config",
                        str(config),
                        "--instance",
                        f"i{i + 1}",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=err,
                    cwd=REPO,
                    env={**os.environ, "NOTIFY_SOCKET": str(path)},
                )  # fmt: skip
            )
            err.close()

    def wait_ready(self) -> None:
        for sock, proc in zip(self.socks, self.procs, strict=True):
            while True:
                msg = sock.recv(4096).decode()
                if "READY=1" in msg.splitlines():
                    break
            assert proc.poll() is None

    def cpu(self) -> float:
        return sum(_proc_cpu(p.pid) for p in self.procs)

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            p.wait(120)
        for s in self.socks:
            s.close()


def _stage(base: Path, n: int) -> list[Path]:
    """The DAT files of ``n`` invoices, written beside the inbox (renamed in at the start)."""
    stage = base / "stage"
    stage.mkdir()
    when = bd.fecha()
    out = []
    for f in range(n // PER_FILE):
        text = "".join(bd.invoice(f"M{f}", i, when) for i in range(1, PER_FILE + 1))
        p = stage / f"lote{f:05d}.dat"
        p.write_text(text, encoding="utf-8")
        out.append(p)
    return out


def case(
    n: int, k: int, *, latency: float, workers: int, server: PrivatePostgres | None, tag: str
) -> dict[str, Any]:
    """K instances on the PostgreSQL journal of ``server`` (None: one on SQLite)."""
    with bd.scratch() as tmp:
        base = Path(tmp)
        share = base / "share"
        for d in ("inbox", "archive", "failed", "out/xml", "out/acuse"):
            (share / d).mkdir(parents=True)
        files = _stage(base, n)
        db = f"bench_{tag}"
        journal = server.create_database(db) if server is not None else "var/journal.sqlite"
        sb = bd.Sandbox(base, latency)
        daemons = None
        try:
            configs = [
                _config(base, f"i{i + 1}", share, sb.url, journal, workers) for i in range(k)
            ]
            daemons = Daemons(configs)
            daemons.wait_ready()
            if server is not None:
                with psycopg.connect(server.url(), autocommit=True) as admin:
                    admin.execute("SELECT pg_stat_statements_reset()")
                srv0 = server.server_cpu_seconds()
            cpu0, t0 = daemons.cpu(), time.perf_counter()
            for p in files:
                os.replace(p, share / "inbox" / p.name)
            archive = share / "archive"
            while sum(1 for p in archive.rglob("*") if p.is_file()) < len(files):
                time.sleep(0.02)
                assert all(p.poll() is None for p in daemons.procs), "a daemon exited"
            wall, cpu1 = time.perf_counter() - t0, daemons.cpu()
            result: dict[str, Any] = {
                "k": k,
                "backend": "postgresql" if server is not None else "sqlite",
                "wall": wall,
                "rate": n / wall,
                "cpu_ms": 1000 * (cpu1 - cpu0) / n,
            }
            if server is not None:
                result["server_ms"] = 1000 * (server.server_cpu_seconds() - srv0) / n
                result.update(_statements(server, db, n))
        finally:
            if daemons is not None:
                daemons.stop()
            sb_stamps = sb.stamps()
            sb.close()
        assert len(sb_stamps) == n and set(sb_stamps.values()) == {1}, "one stamp per invoice"
        return result


def _statements(server: PrivatePostgres, db: str, n: int) -> dict[str, Any]:
    with psycopg.connect(server.url(), autocommit=True) as admin:
        rows = admin.execute(
            "SELECT calls, total_exec_time, query FROM pg_stat_statements s "
            "JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = %s ORDER BY calls DESC",
            (db,),
        ).fetchall()
    calls = sum(r[0] for r in rows)
    exec_ms = sum(r[1] for r in rows)
    top = [(r[0] / n, " ".join(r[2].split())[:90]) for r in rows[:12]]
    return {"statements": calls / n, "exec_ms": exec_ms / n, "top": top}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--invoices", type=int, default=600)
    ap.add_argument("--latency", type=float, default=0.150)
    ap.add_argument("--workers", type=int, default=8, help="PAC requests in flight per instance")
    ap.add_argument("--instances", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--no-sqlite", action="store_true")
    ap.add_argument("--workdir", help="where the workspaces are made (default: the temp dir)")
    args = ap.parse_args()
    bd.WORKDIR = args.workdir
    n = args.invoices - args.invoices % PER_FILE
    print(f"python {platform.python_version()} {platform.machine()}, {os.cpu_count()} cores, "
          f"load {os.getloadavg()[0]:.1f}; {n} invoices, PAC {args.latency * 1000:.0f} ms, "
          f"{args.workers} workers per instance")  # fmt: skip
    server = PrivatePostgres(stat_statements=True, fsync=True)
    server.start()
    try:
        with psycopg.connect(server.url(), autocommit=True) as admin:
            admin.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        results: list[dict[str, Any]] = []
        for r in range(args.rounds):
            if not args.no_sqlite:
                results.append(case(n, 1, latency=args.latency, workers=args.workers,
                                    server=None, tag=f"r{r}s") | {"round": r})  # fmt: skip
                _show(results[-1], None)
            for k in args.instances:
                results.append(case(n, k, latency=args.latency, workers=args.workers,
                                    server=server, tag=f"r{r}k{k}") | {"round": r})  # fmt: skip
                one = next((x["rate"] for x in results if x["backend"] == "postgresql"
                            and x["k"] == 1), None)  # fmt: skip
                _show(results[-1], one)
        print("of linear (K instances / K × one instance, same round):")
        for r in range(args.rounds):
            mine = [x for x in results if x["round"] == r and x["backend"] == "postgresql"]
            one = next((x["rate"] for x in mine if x["k"] == 1), None)
            if one:
                print("  " + ", ".join(f"{x['k']}: {100 * x['rate'] / (x['k'] * one):.0f}%"
                                       for x in mine))  # fmt: skip
    finally:
        server.close()
        for folder in bd.SCRATCH:
            shutil.rmtree(folder, ignore_errors=True)


def _show(x: dict[str, Any], one: float | None) -> None:
    line = (f"{x['backend']:10} {x['k']} instance(s): {x['rate']:6.1f} invoices/s "
            f"({x['wall']:.1f} s), daemons' CPU {x['cpu_ms']:.2f} ms/invoice")  # fmt: skip
    if one:
        line += f", {100 * x['rate'] / (x['k'] * one):.0f}% of linear"
    if "server_ms" in x:
        line += (f"; PostgreSQL: server CPU {x['server_ms']:.2f} ms/invoice, "
                 f"{x['statements']:.1f} statements/invoice ({x['exec_ms']:.2f} ms executing)")  # fmt: skip
    print(line + f"  [load {os.getloadavg()[0]:.1f}]", flush=True)
    for per, q in x.get("top", [])[:12]:
        print(f"      {per:5.2f}/invoice  {q}")


if __name__ == "__main__":
    main()
