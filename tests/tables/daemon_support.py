"""A connector workspace whose only source is a table source on one of the test engines, with
the bundled sandbox PAC (real HTTP SOAP on 127.0.0.1)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .conftest import Db

REPO = Path(__file__).resolve().parents[2]
DEMO_CSD = REPO / "connector" / "demo" / "csd" / "eku9003173c9_csd_2023_30001000000500003416"
RFC = "EKU9003173C9"


def table_config(
    base: Path,
    db: Db,
    sandbox: Any,
    *,
    batch: int = 50,
    lease_seconds: int = 600,
    workers: int = 8,
    outputs: bool = False,
    journal: str = "var/journal.sqlite",
    extra: str = "",
    daemon_extra: str = "",
) -> Path:
    """The configuration file (and its folders and password files) under ``base``."""
    (base / "var").mkdir(parents=True, exist_ok=True)
    (base / "csd.pw").write_text("12345678a", encoding="utf-8")
    (base / "pac.pw").write_text("demo", encoding="utf-8")
    files = ""
    if outputs:
        for d in ("out/xml", "out/pdf", "out/acuse"):
            (base / d).mkdir(parents=True, exist_ok=True)
        files = '[sources.output]\nxml = "out/xml"\npdf = "out/pdf"\nacuse = "out/acuse"\n'
    conn = db.conn_str.replace("\\", "\\\\")
    text = f"""
[daemon]
journal = "{journal}"
workers = {workers}
poll_seconds = 0.1
log_format = "json"
log_file = "var/connector.log"
journal_synchronous = "NORMAL"
{daemon_extra}

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
url = "{sandbox.fel_timbrado_url}"
url_remote = "{sandbox.fel_remote_url}"
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
name = "erp"
kind = "table"
emisor = "{RFC}"
pac = "sandbox"
[sources.table]
connection = "{conn}"
dialect = "{db.dialect}"
batch = {batch}
lease_seconds = {lease_seconds}
timeout_seconds = 10
{files}{extra}"""
    path = base / "connector.toml"
    path.write_text(text, encoding="utf-8")
    return path


def rows(conn: Any, *columns: str) -> dict[int, tuple[Any, ...]]:
    """id → the columns asked for, of every invoice row."""
    got = conn.execute(f"SELECT id, {', '.join(columns)} FROM cfdi_factura ORDER BY id")
    return {int(r[0]): tuple(r[1:]) for r in got.fetchall()}


# a receptor SAT's test environment knows (the default HEADER's público en general would need
# InformacionGlobal)
RECEPTOR = {
    "receptor_rfc": "CACX7605101P8",
    "receptor_nombre": "XOCHILT CASAS CHAVEZ",
    "receptor_cp": "26015",
    "receptor_regimen": "612",
    "uso_cfdi": "G03",
}
