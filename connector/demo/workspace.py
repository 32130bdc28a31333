"""``cfdi-connector demo``: everything the connector does, on one machine, in one command.

Creates a workspace (default ``./demo-workspace``) with a configuration, SAT's test CSD, the
sample ERP exports (DAT, CSV, XML and one file with errors) in the inbox, starts the sandbox PAC
in-process on an ephemeral port of 127.0.0.1, runs the daemon until every file reached its
final place, and prints where the stamped XML, PDFs, acuses and error files are.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

DEMO_RFC = "EKU9003173C9"
CSD_BASE = "eku9003173c9_csd_2023_30001000000500003416"
CSD_PASSWORD = "12345678a"
FOLDERS = ("inbox", "out/xml", "out/pdf", "out/acuse", "out/errors", "archive", "failed", "var")


def _toml_str(p: Path | str) -> str:
    return '"' + str(p).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _write_private(path: Path, data: bytes) -> None:
    """A secret (password file, CSD key) readable by its owner only (0600), also when the file
    was there already with a wider mode."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0), 0o600)
    try:
        if os.name == "posix":
            os.fchmod(fd, 0o600)
        os.write(fd, data)
    finally:
        os.close(fd)


def build_workspace(
    base: Path,
    *,
    timbrado_url: str,
    remote_url: str,
    sat_cert_der: bytes | None = None,
    sat_status_url: str | None = None,
    table: tuple[str, str | None] | None = None,
) -> Path:
    """Folders, CSD, secrets, mappings and ``connector.toml`` under ``base``; returns the config.
    ``sat_cert_der``: the sandbox's certificate, so every stamp's SelloSAT is verified.
    ``table``: (ODBC connection, dialect): one table source on the default tables instead of
    the folder sources, in ``tablas.toml`` with its own journal."""
    from connector.demo import erp

    base.mkdir(parents=True, exist_ok=True)
    for d in FOLDERS:
        (base / d).mkdir(parents=True, exist_ok=True)
    csd_dir = base / "csd"
    csd_dir.mkdir(exist_ok=True)
    here = Path(__file__).resolve().parent / "csd"
    shutil.copyfile(here / f"{CSD_BASE}.cer", csd_dir / f"{CSD_BASE}.cer")  # public
    _write_private(csd_dir / f"{CSD_BASE}.key", (here / f"{CSD_BASE}.key").read_bytes())
    secrets_dir = base / "secrets"
    secrets_dir.mkdir(exist_ok=True)
    _write_private(secrets_dir / "csd.password", CSD_PASSWORD.encode())
    _write_private(secrets_dir / "pac.password", b"demo")
    sat_cert_line = ""
    if sat_cert_der is not None:
        (csd_dir / "sandbox-pac.cer").write_bytes(sat_cert_der)
        sat_cert_line = 'sat_cert = "csd/sandbox-pac.cer"   # verifica el SelloSAT de cada timbre'
    maps = base / "mappings"
    maps.mkdir(exist_ok=True)
    for f in (erp.CSV_MAPPING, erp.ARTICULOS, erp.CLIENTES):
        shutil.copyfile(f, maps / f.name)

    sources = []
    for kind, spec in ({} if table else erp.SOURCES).items():
        lines = [
            "[[sources]]",
            f'name = "erp-{kind}"',
            'inbox = "inbox"',
            f'adapter = "{spec["adapter"]}"',
            "include = [" + ", ".join(_toml_str(x) for x in spec["include"]) + "]",
            f'emisor = "{DEMO_RFC}"',
            'pac = "sandbox"',
            'mode = "stamp"',
            "stable_seconds = 0.5",
            'archive = "archive"',
            'failed = "failed"',
        ]
        if spec.get("mapping"):
            lines.append(f"mapping = {_toml_str('mappings/' + Path(spec['mapping']).name)}")
        opts = spec.get("options") or {}
        if opts:
            inner = ", ".join(f"{k} = {_toml_str(v)}" for k, v in opts.items())
            lines.append(f"options = {{ {inner} }}")
        lines += [
            "[sources.output]",
            'xml = "out/xml"',
            'pdf = "out/pdf"',
            'acuse = "out/acuse"',
            'errors = "out/errors"',
            "",
        ]
        sources.append("\n".join(lines))
    journal = "var/journal.sqlite"
    if table is not None:
        journal = "var/journal-tablas.sqlite"
        dialect = f"dialect = {_toml_str(table[1])}\n" if table[1] else ""
        sources.append(
            "[[sources]]\n"
            'name = "erp-tablas"\n'
            'kind = "table"   # filas de cfdi_factura / cfdi_concepto (docs/tables.md)\n'
            f'emisor = "{DEMO_RFC}"\n'
            'pac = "sandbox"\n'
            "[sources.table]\n"
            f"connection = {_toml_str(table[0])}\n{dialect}"
            "batch = 50\n"
            "[sources.output]   # opcional: también el XML y el PDF como archivos\n"
            'xml = "out/xml"\n'
            'pdf = "out/pdf"\n'
        )

    config = f"""# Configuración de la demostración de cfdi-connector (generada por `cfdi-connector demo`).
# El PAC es el sandbox local: su puerto cambia en cada ejecución de la demo.

[daemon]
journal = "{journal}"
workers = 16
poll_seconds = 1.0
log_level = "info"
log_format = "json"
log_file = "var/connector.log"
{f"sat_status_url = {_toml_str(sat_status_url)}   # el SAT del sandbox" if sat_status_url else ""}

[[emisores]]
rfc = "{DEMO_RFC}"
cer = "csd/{CSD_BASE}.cer"
key = "csd/{CSD_BASE}.key"
password_file = "secrets/csd.password"   # nunca la contraseña en este archivo
nombre = "ESCUELA KEMPER URGATE"   # lo que las tablas no traen (fuentes de tablas)
regimen_fiscal = "601"
lugar_expedicion = "42501"

[[pacs]]
name = "sandbox"
kind = "fel"
url = {_toml_str(timbrado_url)}
url_remote = {_toml_str(remote_url)}
usuario = "demo"
cuenta = "DEMO"
password_file = "secrets/pac.password"
timeout_seconds = 15
{sat_cert_line}

{chr(10).join(sources)}"""
    path = base / ("tablas.toml" if table else "connector.toml")
    path.write_text(config, encoding="utf-8")
    return path


def _run_prefix(base: Path) -> str:
    """Folios get a prefix on re-runs so a second demo stamps new invoices."""
    journal = base / "var" / "journal.sqlite"
    return datetime.now().strftime("R%H%M%S") if journal.exists() else ""


def run_demo(base: Path, *, keep_running: bool = False, out: Any = None) -> int:
    from connector.demo.erp import write_demo_exports
    from connector.pac.sandbox import SandboxPac

    out = out or sys.stdout
    base = base.resolve()
    base.mkdir(parents=True, exist_ok=True)
    (base / "var").mkdir(exist_ok=True)
    run = _run_prefix(base)
    sandbox = SandboxPac.demo(base / "var" / "sandbox-pac.db")
    sandbox.start()
    try:
        config = build_workspace(
            base,
            timbrado_url=sandbox.fel_timbrado_url,
            remote_url=sandbox.fel_remote_url,
            sat_cert_der=sandbox.certificate_der,
            sat_status_url=sandbox.sat_status_url,
        )
        written = write_demo_exports(base / "inbox", datetime.now(), run=run)
        print(f"Exportaciones del ERP en {base / 'inbox'}:", file=out)
        for w in written:
            print(f"  {w.name}", file=out)
        pipe = demo_pipeline(config, sandbox, out, watch=keep_running)
        if pipe is None:
            return 2
        try:
            done = pipe.run_until_idle(timeout=300)
            _report(pipe, base, out)
            if not done:
                print("La demo no terminó a tiempo; revise var/connector.log.", file=out)
                return 1
            if keep_running:
                print(
                    f"\nSigo vigilando {base / 'inbox'} (Ctrl-C para salir)...",
                    file=out,
                    flush=True,
                )
                stop = threading.Event()

                def _stop(*_: Any) -> None:
                    stop.set()
                    pipe.wake.set()

                signal.signal(signal.SIGINT, _stop)
                signal.signal(signal.SIGTERM, _stop)
                pipe.run(stop)
        finally:
            pipe.close()
    finally:
        sandbox.close()
    return 0


def demo_pipeline(config: Path, sandbox: Any, out: Any, *, watch: bool = False) -> Any | None:
    """The demo's configuration checked and its pipeline started (logging to its var/);
    None after printing every problem."""
    from connector.config import check_config
    from connector.daemon import configure_logging
    from connector.pipeline import Pipeline, PipelineError

    cfg, problems = check_config(config)
    if cfg is None:
        for p in problems:
            print(f"{p.code} [{p.location}] {p.message}", file=out)
        return None
    configure_logging("info", "json", cfg.daemon.log_file)
    print(f"PAC de pruebas (sandbox) en {sandbox.base_url}", file=out)
    pipe = Pipeline(cfg)
    try:
        pipe.start(watch=watch)
    except PipelineError as exc:
        for p in exc.problems:
            print(f"{p.code} [{p.path}] {p.message}", file=out)
        return None
    return pipe


def _report(pipe: Any, base: Path, out: Any) -> None:
    delivered = [d for o in pipe.finished for d in o.delivered]
    print(f"\nFacturas timbradas: {len(delivered)}", file=out)
    for d in delivered:
        print(f"  {d['invoice']:14} UUID {d['uuid']}", file=out)
    print(f"  XML timbrados: {base / 'out' / 'xml'}", file=out)
    print(f"  PDF:           {base / 'out' / 'pdf'}", file=out)
    print(f"  Acuses:        {base / 'out' / 'acuse'}", file=out)
    failed = [o for o in pipe.finished if o.errors]
    if failed:
        print("\nArchivos con errores (en failed/, con su archivo de errores):", file=out)
        for o in failed:
            print(f"  {o.final_path}", file=out)
            print(f"    {o.final_path}.error.txt", file=out)
            for e in o.errors:
                who = f"{e.invoice} " if e.invoice else ""
                print(f"    {who}{e.code} [{e.location}] {e.message}", file=out)
    archived = [o for o in pipe.finished if not o.errors]
    if archived:
        print(f"\nOriginales archivados en {base / 'archive'}", file=out)
    print(f"Configuración: {base / 'connector.toml'}   Bitácora: {base / 'var'}", file=out)
