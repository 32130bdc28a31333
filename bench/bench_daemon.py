"""Daemon end to end: throughput, connector-side CPU per invoice, pickup latency, backlog RSS.

Run from the repository root:

    python bench/bench_daemon.py                       # every case, default sizes
    python bench/bench_daemon.py --case throughput --invoices 1000 --latency 0 0.15
    python bench/bench_daemon.py --case backlog --files 10000

The sandbox PAC runs as a SEPARATE process (``SandboxPac.demo`` on 127.0.0.1), so the CPU time
of this process is the connector's own: parse, map, validate, seal, journal, SOAP client, write
outputs (and the PDF when ``--pdf``). Cases:

- ``throughput``: N invoices in files of 10 dropped in the inbox; the pipeline runs until every
  file is archived. Wall time → invoices/s; process CPU / N → connector CPU per invoice. Run for
  each PAC latency given (default 0 and 0.150 s), with outputs xml (+ acuse, + pdf if asked).
- ``pickup``: the daemon loop runs with file-system events (watchdog); one file at a time is
  dropped (atomic rename) and we time drop → claimed (pickup) and drop → stamped XML written.
- ``backlog``: F one-invoice files waiting in the inbox; the pipeline drains them for a while;
  peak RSS (``ru_maxrss``) is reported, with the time of the first full scan.

Every run checks its result: each invoice stamped exactly once in the sandbox's store.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from connector.config import check_config  # noqa: E402
from connector.daemon import configure_logging  # noqa: E402
from connector.pipeline import Pipeline  # noqa: E402

CSD = REPO / "connector" / "demo" / "csd" / "eku9003173c9_csd_2023_30001000000500003416"
RFC = "EKU9003173C9"

SANDBOX = """
import sys
from connector.pac.sandbox import SandboxPac
pac = SandboxPac.demo(sys.argv[1], latency=float(sys.argv[2])).start()
print(pac.fel_timbrado_url, flush=True)
sys.stdin.read()
import sqlite3
pac.close()
"""


def fecha() -> str:
    return (datetime.now() - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S")


def invoice(serie: str, folio: int, when: str) -> str:
    return (
        f"COMPROBANTE|4.0|{serie}|{folio}|{when}|03||CONTADO|||MXN|||I|01|PUE|42501||\n"
        f"EMISOR|{RFC}|ESCUELA KEMPER URGATE|601||\n"
        "RECEPTOR|CACX7605101P8|XOCHILT CASAS CHAVEZ|26015|||612|G03|\n"
        "\tCONCEPTO|43201800|USB32|2|H87|Pieza|Memoria USB 32 GB|100.00|||02|\n"
        "\t\tTRASLADOCONCEPTO||002|Tasa|0.160000||\n"
        "\tCONCEPTO|43211706|MOUSE|1|H87|Pieza|Mouse óptico|150.00|||02|\n"
        "\t\tTRASLADOCONCEPTO||002|Tasa|0.160000||\n"
    )


class Sandbox:
    """The sandbox PAC in its own process."""

    def __init__(self, base: Path, latency: float) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SANDBOX, str(base / "pac.db"), str(latency)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()
        self.db = base / "pac.db"

    def stamps(self) -> dict[tuple[str, str], int]:
        from lxml import etree

        from connector.pac.sandbox.store import SandboxStore

        store = SandboxStore(self.db)
        try:
            out: dict[tuple[str, str], int] = {}
            for rec in store.stamps():
                root = etree.fromstring(rec.xml)
                key = (root.get("Serie") or "", root.get("Folio") or "")
                out[key] = out.get(key, 0) + 1
            return out
        finally:
            store.close()

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(30)


SYNC = "FULL"
WORKDIR: str | None = None  # where workspaces are made (default: the system temp dir)
SCRATCH: list[Path] = []
KEEP = False


@contextlib.contextmanager
def scratch() -> Iterator[str]:
    """A workspace folder, removed only when the whole bench ends.

    Deleting thousands of files makes every file creation for the next minutes slower on an
    ext4 without journal (the allocator skips recently deleted inodes; see BENCHMARKS.md), so
    one case's cleanup must not run before the next case is measured.
    """
    path = Path(tempfile.mkdtemp(prefix="bench-daemon-", dir=WORKDIR))
    SCRATCH.append(path)
    yield str(path)


def workspace(
    base: Path,
    url: str,
    *,
    pdf: bool,
    acuse: bool,
    workers: int,
    stable: float,
    pdf_processes: int | None = None,
) -> Path:
    for d in ("inbox", "out/xml", "out/pdf", "out/acuse", "archive", "failed", "var"):
        (base / d).mkdir(parents=True, exist_ok=True)
    (base / "csd.pw").write_text("12345678a")
    (base / "pac.pw").write_text("demo")
    outputs = 'xml = "out/xml"\n'
    if pdf:
        outputs += 'pdf = "out/pdf"\n'
    if acuse:
        outputs += 'acuse = "out/acuse"\n'
    cfg = f"""
[daemon]
journal = "var/journal.sqlite"
workers = {workers}
{"" if pdf_processes is None else f"pdf_processes = {pdf_processes}"}
poll_seconds = 0.2
log_level = "warning"
log_file = "var/connector.log"
journal_synchronous = "{SYNC}"

[[emisores]]
rfc = "{RFC}"
cer = "{CSD}.cer"
key = "{CSD}.key"
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
inbox = "inbox"
adapter = "dat"
include = ["*.dat"]
emisor = "{RFC}"
pac = "sandbox"
stable_seconds = {stable}
archive = "archive"
failed = "failed"
[sources.output]
{outputs}"""
    path = base / "connector.toml"
    path.write_text(cfg, encoding="utf-8")
    return path


def drop(inbox: Path, name: str, text: str) -> None:
    tmp = inbox / f".{name}.part"
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, inbox / name)


def pipeline(config: Path) -> Pipeline:
    cfg, problems = check_config(config)
    assert cfg is not None, problems
    configure_logging("warning", "json", cfg.daemon.log_file)
    p = Pipeline(cfg)
    p.start()
    return p


def case_throughput(
    n: int, latency: float, *, pdf: bool, acuse: bool, workers: int, pdf_processes: int | None
) -> dict[str, float]:
    with scratch() as tmp:
        base = Path(tmp)
        sb = Sandbox(base, latency)
        try:
            config = workspace(
                base / "ws",
                sb.url,
                pdf=pdf,
                acuse=acuse,
                workers=workers,
                stable=0,
                pdf_processes=pdf_processes,
            )
            when = fecha()
            per_file = 10
            for f in range(n // per_file):
                text = "".join(invoice(f"T{f}", i, when) for i in range(1, per_file + 1))
                drop(base / "ws" / "inbox", f"lote{f:05d}.dat", text)
            pipe = pipeline(config)
            cpu0, t0 = os.times(), time.perf_counter()
            assert pipe.run_until_idle(3600)
            wall, cpu1 = time.perf_counter() - t0, os.times()
            pipe.close()  # waits for the PDF worker processes: their CPU time is counted now
            cpu2 = os.times()
            stamps = sb.stamps()
            assert len(stamps) == n and set(stamps.values()) == {1}, "one UUID per invoice"
        finally:
            sb.close()
    user, system = cpu1.user - cpu0.user, cpu1.system - cpu0.system
    workers_cpu = (
        cpu2.children_user + cpu2.children_system - cpu0.children_user - cpu0.children_system
    )
    return {
        "wall": wall,
        "rate": n / wall,
        "cpu_ms": 1000 * (user + system) / n,
        "pdf_workers_ms": 1000 * workers_cpu / n,
        "user_ms": 1000 * user / n,
        "sys_ms": 1000 * system / n,
    }


def case_pickup(rounds: int, stable: float) -> list[tuple[float, float]]:
    with scratch() as tmp:
        base = Path(tmp)
        sb = Sandbox(base, 0.0)
        try:
            config = workspace(
                base / "ws", sb.url, pdf=False, acuse=False, workers=4, stable=stable
            )
            cfg, _ = check_config(config)
            assert cfg is not None
            configure_logging("warning", "json", cfg.daemon.log_file)
            pipe = Pipeline(cfg)
            pipe.start(watch=True)
            stop = threading.Event()
            runner = threading.Thread(target=pipe.run, args=(stop,))
            runner.start()
            out = []
            work = base / "ws" / "work" / "ventas"
            xml_dir = base / "ws" / "out" / "xml"
            try:
                time.sleep(1.0)
                for r in range(rounds):
                    t0 = time.perf_counter()
                    drop(base / "ws" / "inbox", f"p{r}.dat", invoice("P", r + 1, fecha()))
                    claimed = stamped = None
                    while stamped is None:
                        now = time.perf_counter()
                        if claimed is None and (
                            any(work.glob(f"*--p{r}.dat")) or any(xml_dir.glob(f"P{r + 1}_*"))
                        ):
                            claimed = now - t0
                        if any(xml_dir.glob(f"P{r + 1}_*")):
                            stamped = now - t0
                        time.sleep(0.002)
                    out.append((claimed or stamped, stamped))
                    time.sleep(0.3)
            finally:
                stop.set()
                pipe.wake.set()
                runner.join(60)
                pipe.close()
        finally:
            sb.close()
    return out


def case_backlog(files: int, seconds: float) -> dict[str, float]:
    with scratch() as tmp:
        base = Path(tmp)
        sb = Sandbox(base, 0.0)
        try:
            config = workspace(base / "ws", sb.url, pdf=False, acuse=True, workers=16, stable=0)
            when = fecha()
            for f in range(files):
                drop(base / "ws" / "inbox", f"b{f:06d}.dat", invoice("B", f + 1, when))
            rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            pipe = pipeline(config)
            t0 = time.perf_counter()
            src = next(iter(pipe.sources.values()))
            scan_t = time.perf_counter()
            src.folder.scan()
            scan = time.perf_counter() - scan_t
            stop = threading.Event()
            runner = threading.Thread(target=pipe.run, args=(stop,))
            runner.start()
            time.sleep(seconds)
            stop.set()
            pipe.wake.set()
            runner.join(120)
            done = len(pipe.finished)
            wall = time.perf_counter() - t0
            pipe.close()
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        finally:
            sb.close()
    return {"rss_mb": rss, "rss_before_mb": rss0, "scan_s": scan, "done": done, "wall": wall}


def case_breakdown(n: int) -> dict[str, float]:
    """CPU ms per invoice of each stage, one thread, sandbox in its own process."""
    from connector.adapters.base import load_invoices
    from connector.cfdi import amounts, rules, seal
    from connector.cfdi.csd import Csd
    from connector.journal import Journal
    from connector.pac import create_driver
    from connector.sinks import atomic_write

    out: dict[str, float] = {}
    when = fecha()
    data = "".join(invoice("Z", i, when) for i in range(1, n + 1)).encode()
    csd = Csd.from_files(f"{CSD}.cer", f"{CSD}.key", "12345678a")

    def clock(name: str, fn):  # type: ignore[no-untyped-def]
        t = time.process_time()
        r = fn()
        out[name] = 1000 * (time.process_time() - t) / n
        return r

    warm = list(load_invoices(invoice("W", 1, when).encode(), "w.dat", adapter="dat",
                              mapping=None))  # fmt: skip
    seal.seal_invoice(amounts.complete(warm[0].comprobante), csd)  # first-call costs out
    invs = clock("parse+map (adapter, mapping)", lambda: list(load_invoices(
        data, "z.dat", adapter="dat", mapping=None)))  # fmt: skip
    cs = clock("amounts.complete", lambda: [amounts.complete(i.comprobante) for i in invs])
    clock("rules.validate", lambda: [rules.validate(c, now=datetime.now()) for c in cs])
    sealed = clock(
        "seal_invoice (XML, cadena, RSA)", lambda: [seal.seal_invoice(c, csd) for c in cs]
    )
    with scratch() as tmp:
        base = Path(tmp)
        j = Journal(base / "j.sqlite", synchronous=SYNC)

        def journal_steps() -> None:  # what the pipeline does, 10 invoices per file
            for start in range(0, len(cs), 10):
                ids = []
                with j.batch():
                    for i in range(start, min(start + 10, len(cs))):
                        _, e = j.admit(cs[i].business_key, str(i), mode="stamp", source="s",
                                       source_file="z.dat", location="z.dat:1")  # fmt: skip
                        ids.append(j.mark_sealed_sending(e.id, sealed[i], f"R{i}").id)
                for n, iid in enumerate(ids):
                    j.get_id(iid)
                    j.mark_stamped(iid, f"U{iid}", sealed[start + n])
                    j.cancellation(f"U{iid}")
                    j.mark_delivered(iid, {"xml": "x"}, b"<acuse/>")

        clock(f"journal, as the pipeline (synchronous={SYNC})", journal_steps)
        (base / "o").mkdir()
        clock("atomic_write x2 (xml, acuse)", lambda: [
            (atomic_write(base / "o" / f"{i}.xml", x), atomic_write(base / "o" / f"{i}.a", x))
            for i, x in enumerate(sealed)])  # fmt: skip
        sb = Sandbox(base, 0.0)
        try:
            drv = create_driver("fel", sb.url, usuario="demo", password="demo", cuenta="DEMO")
            res = clock("PAC stamp call (client side)", lambda: [
                drv.stamp(x, f"R{i}") for i, x in enumerate(sealed)])  # fmt: skip
            clock("PAC acuse_envio call (client side)", lambda: [
                drv.acuse_envio(r.uuid) for r in res])  # fmt: skip
            drv.close()
        finally:
            sb.close()
    return out


def yardstick() -> float:
    """CPU ms of one RSA-2048 signature with the demo CSD: the same work on every run, so
    figures from runs at different moments (the VM's host is shared) can be compared."""
    from connector.cfdi.csd import Csd

    csd = Csd.from_files(f"{CSD}.cer", f"{CSD}.key", "12345678a")
    csd.sign(b"warm-up")
    t = time.process_time()
    for i in range(300):
        csd.sign(b"||4.0|yardstick|%d||" % i)
    return 1000 * (time.process_time() - t) / 300


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--case", choices=["throughput", "breakdown", "pickup", "backlog", "all"], default="all"
    )
    ap.add_argument("--invoices", type=int, default=1000)
    ap.add_argument("--latency", type=float, nargs="+", default=[0.0, 0.15])
    ap.add_argument("--workers", type=int, default=32)
    ap.add_argument("--pdf", action="store_true", help="also render the PDF of every invoice")
    ap.add_argument("--no-acuse", action="store_true", help="do not fetch the acuse")
    ap.add_argument(
        "--pdf-processes", type=int, help="daemon.pdf_processes (default: one per core, max 4)"
    )
    ap.add_argument("--sync", choices=["FULL", "NORMAL"], default="FULL")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--stable", type=float, default=0.5)
    ap.add_argument("--files", type=int, default=10000)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--workdir", help="make the workspaces in this folder (default: system temp)")
    ap.add_argument(
        "--keep",
        action="store_true",
        help="leave the workspaces (so that runs one after another do not slow each other's "
        "file creation; delete them yourself, then wait ~6 minutes before measuring again)",
    )
    a = ap.parse_args()
    global SYNC, WORKDIR, KEEP
    SYNC, WORKDIR, KEEP = a.sync, a.workdir, a.keep
    print(f"# {platform.python_version()} {platform.machine()} cpus={os.cpu_count()}")
    print(f"# machine yardstick: RSA-2048 signature {yardstick():.3f} ms CPU (host speed varies)")
    if a.case in ("throughput", "all"):
        for lat in a.latency:
            r = case_throughput(
                a.invoices,
                lat,
                pdf=a.pdf,
                acuse=not a.no_acuse,
                workers=a.workers,
                pdf_processes=a.pdf_processes,
            )
            print(
                f"throughput latency={lat * 1000:.0f}ms invoices={a.invoices} pdf={a.pdf} "
                f"acuse={not a.no_acuse} workers={a.workers} sync={a.sync} "
                f"pdf_processes={a.pdf_processes}: {r['rate']:.1f} invoices/s "
                f"(wall {r['wall']:.1f} s), connector CPU {r['cpu_ms']:.2f} ms/invoice "
                f"(user {r['user_ms']:.2f}, kernel {r['sys_ms']:.2f})"
                + (f" + PDF worker processes {r['pdf_workers_ms']:.2f}" if a.pdf else "")
            )
    if a.case in ("breakdown", "all"):
        parts = case_breakdown(min(a.invoices, 300))
        for name, ms in parts.items():
            print(f"breakdown {name}: {ms:.2f} ms CPU/invoice")
        print(f"breakdown total: {sum(parts.values()):.2f} ms CPU/invoice")
    if a.case in ("pickup", "all"):
        res = case_pickup(a.rounds, a.stable)
        picks = sorted(x[0] for x in res)
        ends = sorted(x[1] for x in res)
        print(
            f"pickup stable_seconds={a.stable}: claim median {picks[len(picks) // 2] * 1000:.0f} ms "
            f"(max {picks[-1] * 1000:.0f}), stamped XML written median "
            f"{ends[len(ends) // 2] * 1000:.0f} ms (max {ends[-1] * 1000:.0f})"
        )
    if a.case in ("backlog", "all"):
        r = case_backlog(a.files, a.seconds)
        print(
            f"backlog files={a.files}: peak RSS {r['rss_mb']:.0f} MB (before start "
            f"{r['rss_before_mb']:.0f} MB), full scan {r['scan_s']:.2f} s, "
            f"{r['done']} files finished in {r['wall']:.0f} s"
        )


if __name__ == "__main__":
    try:
        main()
    finally:
        for folder in SCRATCH:
            if KEEP:
                print(f"# kept {folder}")
            else:
                shutil.rmtree(folder, ignore_errors=True)
