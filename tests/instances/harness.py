"""Several connector instances as real processes (``python -m connector.cli run --config C
--instance iN``) on ONE shared journal on PostgreSQL, ONE inbox (a folder source of DAT files
of several invoices each) and ONE set of tables (the default ``cfdi_factura``/``cfdi_concepto``
on PostgreSQL over ODBC), against the sandbox PAC over real HTTP; and the checks that hold at
the end whatever happened on the way (issue 16):

- 0 lost: every input file archived exactly once (by content), the inbox and the work folders
  empty, every table row ``TIMBRADO`` or the coded ``ERROR`` it was meant to get;
- 0 duplicate UUIDs, every invoice stamped exactly once AT THE PAC (the sandbox's own store);
- 0 torn outputs: every XML parses and carries the UUID the PAC and the journal hold for its
  invoice, every PDF is whole, every acuse parses;
- every invoice delivered once: one XML (one PDF, one acuse) per invoice, the journal says
  ``delivered`` with the PAC's UUID.

Each instance has a folder of its own (``<base>/<name>/``: its configuration, log, lock and
status files), as each would on a server of its own; every configuration names the same
shared folders (``<base>/share/``), tables and journal.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from lxml import etree

from tests.daemon.conftest import dat_file, stamps_by_key
from tests.tables.conftest import Db, insert_invoice
from tests.tables.daemon_procs import log_text, start, status_json, stderr_text, until
from tests.tables.daemon_support import DEMO_CSD, RECEPTOR, RFC, rows

LATENCY = 0.150  # the PAC's answer time (issue 16: "150 ms PAC latency")
INBOX_SERIE = "F"  # invoices of the inbox; the table rows keep HEADER's serie "A"
TABLE_SERIE = "A"
TFD = "{http://www.sat.gob.mx/TimbreFiscalDigital}TimbreFiscalDigital"
SHARED_DIRS = ("inbox", "archive", "failed", "out/xml", "out/pdf", "out/acuse", "out/errors",
               "out-tables/xml")  # fmt: skip


@dataclass
class Cluster:
    """N instances' configurations under ``base``; their processes while they run."""

    base: Path
    journal_url: str
    db: Db  # the tables (fresh default tables)
    pac: Any  # SandboxPac, started
    names: tuple[str, ...] = ("i1", "i2", "i3")
    workers: int = 4
    batch: int = 10  # table rows claimed at a time
    instance_lease: int | None = None  # [daemon] instance_lease_seconds (None: the default)
    pdf: bool = True  # the inbox's invoices get a PDF (the table rows only an XML)
    one_config: bool = False  # every instance from one configuration file (one log file)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)  # input name → content
    inbox_folios: set[int] = field(default_factory=set)
    table_ids: set[int] = field(default_factory=set)
    bad_ids: set[int] = field(default_factory=set)  # rows SAT rejects (coded ERROR)
    starts: Counter[str] = field(default_factory=Counter)
    killed: set[int] = field(default_factory=set)  # pids the test SIGKILLed

    def __post_init__(self) -> None:
        self.share = self.base / "share"
        for d in SHARED_DIRS:
            (self.share / d).mkdir(parents=True, exist_ok=True)
        (self.base / "drop").mkdir(parents=True, exist_ok=True)
        if self.one_config:  # `run --config C --instance iN` of each, on one host
            one = self._write_config("one")
            self.configs = {name: one for name in self.names}
        else:  # one configuration per instance, as on servers of their own
            self.configs = {name: self._write_config(name) for name in self.names}

    # --- configuration ------------------------------------------------------------------------

    def _write_config(self, name: str) -> Path:
        d = self.base / name
        (d / "var").mkdir(parents=True, exist_ok=True)
        (d / "csd.pw").write_text("12345678a", encoding="utf-8")
        (d / "pac.pw").write_text("demo", encoding="utf-8")
        s = self.share.as_posix()
        conn = self.db.conn_str.replace("\\", "\\\\")
        lease = (
            f"instance_lease_seconds = {self.instance_lease}"
            if self.instance_lease is not None
            else ""
        )
        pdf = f'pdf = "{s}/out/pdf"' if self.pdf else ""
        text = f"""
[daemon]
journal = "{self.journal_url}"
workers = {self.workers}
pdf_processes = 0
poll_seconds = 0.2
log_format = "json"
log_file = "var/connector.log"
{lease}

[[emisores]]
rfc = "{RFC}"
cer = "{DEMO_CSD}.cer"
key = "{DEMO_CSD}.key"
password_file = "csd.pw"
nombre = "ESCUELA KEMPER URGATE"
regimen_fiscal = "601"
lugar_expedicion = "42501"

[[pacs]]
name = "sandbox"
kind = "fel"
url = "{self.pac.fel_timbrado_url}"
url_remote = "{self.pac.fel_remote_url}"
usuario = "demo"
cuenta = "DEMO"
password_file = "pac.pw"
timeout_seconds = 10
[pacs.retry]
attempts = 2
backoff_seconds = 0.05
backoff_max_seconds = 0.2
wait_seconds = 0.2
wait_max_seconds = 0.8
[pacs.breaker]
failure_threshold = 50
reset_seconds = 0.5

[[sources]]
name = "ventas"
inbox = "{s}/inbox"
adapter = "dat"
include = ["*.dat"]
emisor = "{RFC}"
pac = "sandbox"
stable_seconds = 0.2
archive = "{s}/archive"
failed = "{s}/failed"
[sources.output]
xml = "{s}/out/xml"
{pdf}
acuse = "{s}/out/acuse"
errors = "{s}/out/errors"

[[sources]]
name = "erp"
kind = "table"
emisor = "{RFC}"
pac = "sandbox"
[sources.table]
connection = "{conn}"
dialect = "{self.db.dialect}"
batch = {self.batch}
lease_seconds = 60
timeout_seconds = 10
[sources.output]
xml = "{s}/out-tables/xml"
"""
        path = d / "connector.toml"
        path.write_text(text, encoding="utf-8")
        return path

    # --- work arriving ------------------------------------------------------------------------

    def drop_files(self, folios: list[int], per_file: int = 10) -> None:
        """Inbox invoices ``folios`` in DAT files of ``per_file``, each written beside the
        inbox and renamed into it (as an ERP's export lands whole)."""
        for at in range(0, len(folios), per_file):
            chunk = folios[at : at + per_file]
            name = f"ventas-{chunk[0]:05d}.dat"
            data = dat_file(INBOX_SERIE, chunk)
            tmp = self.base / "drop" / name
            tmp.write_bytes(data)
            os.replace(tmp, self.share / "inbox" / name)
            self.files[name] = data
            self.inbox_folios.update(chunk)

    def insert_rows(
        self, conn: Any, ids: list[int], bad: frozenset[int] | set[int] = frozenset()
    ) -> None:
        """Table rows ``ids`` ready (``PENDIENTE``); those in ``bad`` carry a uso CFDI that
        SAT rejects (they must end ``ERROR``, coded)."""
        for i in ids:
            uso = "X99" if i in bad else RECEPTOR["uso_cfdi"]
            header: dict[str, Any] = {**RECEPTOR, "uso_cfdi": uso}
            insert_invoice(conn, self.db, i, **header)
            self.table_ids.add(i)
        self.bad_ids |= set(bad) & set(ids)

    # --- processes ----------------------------------------------------------------------------

    def start(self, name: str) -> subprocess.Popen[bytes]:
        assert name not in self.procs or self.procs[name].poll() is not None
        self.procs[name] = start(self.configs[name], "--instance", name)
        self.starts[name] += 1
        return self.procs[name]

    def started(self, name: str, timeout: float = 90) -> bool:
        """Whether the instance's latest start has its pipeline running (or it died)."""
        config, proc, n = self.configs[name], self.procs[name], self.starts[name]
        if self.one_config:  # one log for all: ask the journal (status) instead
            return until(lambda: self._joined(name) or proc.poll() is not None, timeout, 0.5) \
                and proc.poll() is None  # fmt: skip
        ok = until(
            lambda: log_text(config).count('"pipeline_started"') >= n or proc.poll() is not None,
            timeout,
            0.05,
        )
        return ok and proc.poll() is None

    def _joined(self, name: str) -> bool:
        try:
            i = self.instances().get(name)
        except (AssertionError, KeyError):  # no journal yet (status refuses), or no instances
            return False
        return i is not None and i["alive"] and i["pid"] == self.procs[name].pid

    def working(self, name: str) -> bool:
        """Whether the instance's latest start has its pipeline running (not starting)."""
        return (
            self.procs[name].poll() is None
            and log_text(self.configs[name]).count('"pipeline_started"') >= self.starts[name]
        )

    def alive(self) -> list[str]:
        return [n for n, p in self.procs.items() if p.poll() is None]

    def kill(self, name: str) -> None:
        proc = self.procs[name]
        self.killed.add(proc.pid)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(30) == -signal.SIGKILL

    def unexpected_exits(self) -> dict[str, int | None]:
        """Instances that exited on their own (not SIGKILLed by the test), with their code."""
        return {
            n: p.returncode
            for n, p in self.procs.items()
            if p.poll() is not None and p.pid not in self.killed
        }

    def held_files(self, name: str) -> list[Path]:
        """What instance ``name`` has claimed from the inbox and not finished: its work
        folder (``<work>/<instance>/``; ``work`` defaults to ``<inbox>/../work/<source>``)."""
        folder = self.share / "work" / "ventas" / name
        return [p for p in folder.iterdir() if p.is_file()] if folder.is_dir() else []

    def stop_all(self, timeout: float = 60) -> dict[str, int | None]:
        """SIGTERM to every running instance (at once), then their exit codes."""
        running = {n: p for n, p in self.procs.items() if p.poll() is None}
        for p in running.values():
            p.send_signal(signal.SIGTERM)
        codes: dict[str, int | None] = {}
        for n, p in running.items():
            try:
                codes[n] = p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)
                codes[n] = None
        return codes

    def kill_all(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.kill()
                p.wait(10)

    def logs(self, tail: int = 2500) -> str:
        """Every instance's stderr and log tail, for a failure's message."""
        parts = []
        for c in dict.fromkeys(self.configs.values()):
            n = c.parent.name
            parts.append(f"--- {n} stderr ---\n{stderr_text(c)[-tail:]}")
            parts.append(f"--- {n} log ---\n{log_text(c)[-tail:]}")
        return "\n".join(parts)

    def status(self, name: str | None = None) -> dict[str, Any]:
        return status_json(self.configs[name or self.names[0]])

    def instances(self) -> dict[str, dict[str, Any]]:
        """What ``status --json`` says of every instance the shared journal knows."""
        return {i["name"]: i for i in self.status()["instances"]}

    def check_instances(self, dead: frozenset[str] | set[str] = frozenset()) -> None:
        """``status``: the running instances alive under their pids, those in ``dead`` taken
        over by a running one; nobody holds open work (everything is done)."""
        found = self.instances()
        assert set(found) == set(self.names), found
        running = {n: p.pid for n, p in self.procs.items() if p.poll() is None}
        for name, i in found.items():
            assert (i["open_invoices"], i["open_files"]) == (0, 0), i
            if name in dead:
                assert not i["alive"] and i["taken_over_by"] in running, i
            else:
                assert i["alive"] and i["pid"] == running[name], i
                assert i["taken_over_by"] is None, i

    # --- the end ------------------------------------------------------------------------------

    def archived(self) -> list[Path]:
        return [p for p in (self.share / "archive").rglob("*") if p.is_file()]

    def all_done(self, conn: Any) -> bool:
        """Every input file archived or failed, every row final."""
        moved = len(self.archived()) + sum(
            1 for p in (self.share / "failed").rglob("*") if p.is_file()
        )
        if moved < len(self.files):
            return False
        got = rows(conn, "estado")
        return set(got) >= self.table_ids and all(
            got[i][0] in ("TIMBRADO", "ERROR") for i in self.table_ids
        )

    def wait_done(self, conn: Any, timeout: float) -> None:
        done = until(lambda: self.all_done(conn), timeout, 0.5)
        assert done, self.progress(conn) + "\n" + self.logs()

    def progress(self, conn: Any) -> str:
        states = Counter(v[0] for v in rows(conn, "estado").values())
        left = sorted(p.name for p in (self.share / "inbox").iterdir())
        work = sorted(str(p.relative_to(self.share.parent)) for p in self._work_files())
        return (
            f"archived {len(self.archived())}/{len(self.files)} files; rows {dict(states)}; "
            f"inbox {left[:20]}; work {work[:20]}; alive {self.alive()}"
        )

    def _work_files(self) -> list[Path]:
        work = self.share / "work"
        return [p for p in work.rglob("*") if p.is_file()] if work.exists() else []

    def journal_rows(self) -> dict[tuple[str, str], tuple[str, str | None]]:
        """(serie, folio) → (state, uuid) of every invoice in the shared journal."""
        with psycopg.connect(self.journal_url) as c:
            found = c.execute("SELECT serie, folio, state, uuid FROM invoices").fetchall()
        return {(s, f): (st, u) for s, f, st, u in found}

    def check(self, conn: Any) -> None:
        """The end checks of the module's docstring (assertions)."""
        # 0 lost: every input file archived exactly once (by content), nothing left behind
        archived = Counter(p.read_bytes() for p in self.archived())
        assert archived == Counter(self.files.values()), {
            n: archived.get(b, 0) for n, b in self.files.items() if archived.get(b, 0) != 1
        }
        failed = [p.name for p in (self.share / "failed").rglob("*") if p.is_file()]
        assert not failed
        assert not [p.name for p in (self.share / "inbox").iterdir()]
        assert not self._work_files()
        # the rows: TIMBRADO, or ERROR with SAT's code for the bad ones
        got = {i: v for i, v in rows(conn, "estado", "uuid", "error_codigo", "xml").items()}
        assert set(got) == self.table_ids
        wrong = {
            i: v[:3]
            for i, v in got.items()
            if (v[0], bool(v[1])) != (("ERROR", False) if i in self.bad_ids else ("TIMBRADO", True))
        }
        assert not wrong
        for i in self.bad_ids:
            assert got[i][2] and "CFDI40160" in got[i][2], got[i][:3]
        # 0 duplicate UUIDs; every invoice stamped exactly once at the PAC
        stamps = stamps_by_key(self.pac.store)
        twice = {k: v for k, v in stamps.items() if len(v) != 1}
        assert not twice
        expected = {(INBOX_SERIE, str(f)) for f in self.inbox_folios} | {
            (TABLE_SERIE, str(i)) for i in self.table_ids - self.bad_ids
        }
        assert set(stamps) == expected, expected ^ set(stamps)
        pac_uuid = {k: v[0] for k, v in stamps.items()}
        assert len(set(pac_uuid.values())) == len(pac_uuid)
        for i in self.table_ids - self.bad_ids:
            uuid = pac_uuid[(TABLE_SERIE, str(i))]
            assert got[i][1] == uuid and uuid in got[i][3]
        # the journal: every invoice delivered, with the PAC's UUID
        journal = self.journal_rows()
        not_delivered = {k: journal.get(k) for k in expected if journal.get(k) != (
            "delivered", pac_uuid[k])}  # fmt: skip
        assert not not_delivered
        # the outputs: one whole XML per invoice (one PDF, one acuse per inbox invoice)
        self._check_xmls(self.share / "out" / "xml", INBOX_SERIE, pac_uuid)
        self._check_xmls(self.share / "out-tables" / "xml", TABLE_SERIE, pac_uuid)
        self._check_whole(self.share / "out" / "acuse", len(self.inbox_folios), _parses)
        if self.pdf:
            self._check_whole(self.share / "out" / "pdf", len(self.inbox_folios), _whole_pdf)

    def _check_xmls(self, folder: Path, serie: str, pac_uuid: dict[tuple[str, str], str]) -> None:
        seen: Counter[tuple[str, str]] = Counter()
        for p in _finals(folder):
            root = etree.parse(str(p)).getroot()  # a torn XML does not parse
            key = (root.get("Serie") or "", root.get("Folio") or "")
            tfd = root.find(f".//{TFD}")
            assert tfd is not None and tfd.get("UUID") == pac_uuid[key], p.name
            assert tfd.get("UUID", "") in p.name
            seen[key] += 1
        want = {k for k in pac_uuid if k[0] == serie}
        assert set(seen) == want and set(seen.values()) == {1}, {
            k: n for k, n in seen.items() if n != 1
        }

    @staticmethod
    def _check_whole(folder: Path, n: int, whole: Any) -> None:
        found = _finals(folder)
        assert len(found) == n, (len(found), n)
        torn = [p.name for p in found if not whole(p.read_bytes())]
        assert not torn


def _finals(folder: Path) -> list[Path]:
    """The files under their final names (a temporary file of a killed writer is hidden)."""
    return [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]


def _parses(data: bytes) -> bool:
    with contextlib.suppress(etree.XMLSyntaxError):
        etree.fromstring(data)
        return True
    return False


def _whole_pdf(data: bytes) -> bool:
    return data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
