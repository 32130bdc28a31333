"""Fixtures of the daemon tests: a sandbox PAC over real HTTP, workspaces, ERP exports."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEMO_CSD = REPO / "connector" / "demo" / "csd" / "eku9003173c9_csd_2023_30001000000500003416"
RFC = "EKU9003173C9"


def fecha(minutes_ago: int = 5) -> str:
    return (datetime.now() - timedelta(minutes=minutes_ago)).strftime("%Y-%m-%dT%H:%M:%S")


def dat_invoice(
    serie: str,
    folio: str,
    *,
    precio: str = "100.00",
    tipo: str = "I",
    rfc_emisor: str = RFC,
    when: str | None = None,
) -> str:
    """One invoice in the default DAT layout (derived amounts left to amounts.complete)."""
    return (
        f"COMPROBANTE|4.0|{serie}|{folio}|{when or fecha()}|03||CONTADO|||MXN|||{tipo}|01|PUE|42501||\n"
        f"EMISOR|{rfc_emisor}|ESCUELA KEMPER URGATE|601||\n"
        "RECEPTOR|CACX7605101P8|XOCHILT CASAS CHAVEZ|26015|||612|G03|\n"
        f"\tCONCEPTO|43201800|USB32|1|H87|Pieza|Memoria USB|{precio}|||02|\n"
        f"\t\tTRASLADOCONCEPTO||002|Tasa|0.160000||\n"
    )


def dat_file(serie: str, folios: list[int], **kw: str) -> bytes:
    return "".join(dat_invoice(serie, str(f), **kw) for f in folios).encode()


def write_config(
    base: Path,
    *,
    timbrado_url: str,
    remote_url: str = "",
    stable_seconds: float = 0.2,
    workers: int = 8,
    poll: float = 0.1,
    extra_sources: str = "",
    retry_wait: float = 0.2,
    sat_cert_der: bytes | None = None,
    sat_status_url: str = "",
) -> Path:
    """A complete workspace under ``base`` (folders, password files, config) for the sandbox."""
    for d in ("inbox", "out/xml", "out/pdf", "out/acuse", "out/errors", "archive", "failed", "var"):
        (base / d).mkdir(parents=True, exist_ok=True)
    (base / "csd.pw").write_text("12345678a", encoding="utf-8")
    (base / "pac.pw").write_text("demo", encoding="utf-8")
    sat_cert = ""
    if sat_cert_der is not None:  # every stamp's SelloSAT is verified with it
        (base / "sandbox-pac.cer").write_bytes(sat_cert_der)
        sat_cert = 'sat_cert = "sandbox-pac.cer"'
    cfg = f"""
[daemon]
journal = "var/journal.sqlite"
workers = {workers}
poll_seconds = {poll}
log_format = "json"
log_file = "var/connector.log"
journal_synchronous = "NORMAL"
{f'sat_status_url = "{sat_status_url}"' if sat_status_url else ""}

[[emisores]]
rfc = "{RFC}"
cer = "{DEMO_CSD}.cer"
key = "{DEMO_CSD}.key"
password_file = "csd.pw"

[[pacs]]
name = "sandbox"
kind = "fel"
url = "{timbrado_url}"
{f'url_remote = "{remote_url}"' if remote_url else ""}
usuario = "demo"
cuenta = "DEMO"
password_file = "pac.pw"
timeout_seconds = 10
{sat_cert}
[pacs.retry]
attempts = 2
backoff_seconds = 0.05
backoff_max_seconds = 0.2
wait_seconds = {retry_wait}
wait_max_seconds = {retry_wait * 4}
[pacs.breaker]
failure_threshold = 50
reset_seconds = 0.5

{source_toml("ventas", "inbox", "dat", stable_seconds)}
{source_toml("xml", "inbox", "xml", stable_seconds)}
{extra_sources}
"""
    path = base / "connector.toml"
    path.write_text(cfg, encoding="utf-8")
    return path


@pytest.fixture
def workspace(tmp_path: Path, sandbox: object) -> Path:
    return write_config(
        tmp_path / "ws",
        timbrado_url=sandbox.fel_timbrado_url,  # type: ignore[attr-defined]
        remote_url=sandbox.fel_remote_url,  # type: ignore[attr-defined]
        sat_cert_der=sandbox.certificate_der,  # type: ignore[attr-defined]
        sat_status_url=sandbox.sat_status_url,  # type: ignore[attr-defined]
    )


def stamps_by_key(store: object) -> dict[tuple[str, str], list[str]]:
    """(serie, folio) → UUIDs the sandbox stamped (read from the stamped XML it stored)."""
    from lxml import etree

    out: dict[tuple[str, str], list[str]] = {}
    for rec in store.stamps():  # type: ignore[attr-defined]
        root = etree.fromstring(rec.xml)
        key = (root.get("Serie") or "", root.get("Folio") or "")
        out.setdefault(key, []).append(rec.uuid)
    return out


def start_pipeline(config: Path):  # type: ignore[no-untyped-def]
    from connector.config import check_config
    from connector.pipeline import Pipeline

    cfg, problems = check_config(config)
    assert cfg is not None, problems
    pipe = Pipeline(cfg)
    pipe.start()
    return pipe


def until(cond: Callable[[], bool], timeout: float) -> bool:
    """Wait (in real time, polling every 0.1 s) until ``cond()``; whether it came true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return False


def run_once(config: Path) -> None:
    """A pipeline on ``config`` until nothing is left to do, then closed."""
    pipe = start_pipeline(config)
    try:
        assert pipe.run_until_idle(60)
    finally:
        pipe.close()


def source_toml(
    name: str, inbox: str, adapter: str, stable_seconds: float = 0.2, mapping: Path | None = None
) -> str:
    """One ``[[sources]]`` of the sandbox emisor (outputs under ``out/``)."""
    ext = "dat" if adapter == "dat" else adapter
    line = f'mapping = "{mapping.as_posix()}"\n' if mapping is not None else ""
    return f"""
[[sources]]
name = "{name}"
inbox = "{inbox}"
adapter = "{adapter}"
include = ["*.{ext}"]
{line}emisor = "{RFC}"
pac = "sandbox"
stable_seconds = {stable_seconds}
archive = "archive"
failed = "failed"
[sources.output]
xml = "out/xml"
pdf = "out/pdf"
acuse = "out/acuse"
errors = "out/errors"
"""


def csv_workspace(base: Path, sandbox: object, mapping: Path, name: str) -> Path:
    """A workspace (``write_config``) with one more source: CSV files dropped in
    ``inbox-csv`` mapped by ``mapping``; returns the config path."""
    config = write_config(
        base,
        timbrado_url=sandbox.fel_timbrado_url,  # type: ignore[attr-defined]
        remote_url=sandbox.fel_remote_url,  # type: ignore[attr-defined]
        sat_cert_der=sandbox.certificate_der,  # type: ignore[attr-defined]
        extra_sources=source_toml(name, "inbox-csv", "csv", mapping=mapping),
    )
    (config.parent / "inbox-csv").mkdir()
    return config


# --- the journal on both backends (issue 16) --------------------------------------------------

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(scope="session")
def pg_journal_db() -> Iterator[str]:
    """A PostgreSQL database of this test session's own on the local server (127.0.0.1:5432,
    user postgres; other sessions may run at the same time), dropped at the end; its address."""
    import os
    import secrets

    import psycopg

    name = f"cfdi_journal_{os.getpid()}_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def pg_schema_url(db_url: str) -> str:
    """The address of a journal of its own (a new, empty schema) in the session's database."""
    import secrets

    import psycopg

    # a random name: this module is loaded twice (as conftest and by the tests importing it)
    schema = f"j_{secrets.token_hex(6)}"
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    return f"{db_url}?options=-csearch_path%3D{schema}"


@pytest.fixture(params=["sqlite", "postgresql"])
def journal_at(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., object]]:
    """``journal_at(name="j.sqlite", **kw)``: the journal called ``name`` in this test (the
    same name opens the same journal again, as after a restart) on the backend of the
    parameter: a SQLite file in tmp_path, or its own schema in the session's PostgreSQL
    database. Every journal opened is closed at the end."""
    from connector.journal import Journal

    opened: list[Journal] = []
    urls: dict[str, str] = {}

    def make(name: str = "j.sqlite", **kw: object) -> Journal:
        if request.param == "sqlite":
            j = Journal(tmp_path / name, **kw)  # type: ignore[arg-type]
        else:
            from connector.journal.postgres import Journal as PostgresJournal

            if name not in urls:
                urls[name] = pg_schema_url(request.getfixturevalue("pg_journal_db"))
            j = PostgresJournal(urls[name], **kw)  # type: ignore[arg-type]
        opened.append(j)
        return j

    yield make
    for j in opened:
        j.close()
