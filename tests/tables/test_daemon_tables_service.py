"""Issue 12 for table sources: /metrics counts the rows waiting in a table source, and /readyz
says not ready while a table source's database does not answer (its source paused)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from connector.config import check_config, load_config
from connector.pipeline import Pipeline
from connector.service.http import HealthServer
from connector.service.metrics import Metrics

from .conftest import Db, insert_invoice
from .daemon_support import RECEPTOR, table_config


def _samples(metrics: Metrics, name: str) -> dict[str, float]:
    text = generate_latest(metrics.registry).decode("utf-8")
    fams = [f for f in text_string_to_metric_families(text) if f.name == name]
    return {s.labels["source"]: s.value for f in fams for s in f.samples}


def test_metrics_count_the_rows_waiting_in_a_table_source(
    sqlite_db: Db, sandbox, tmp_path: Path
) -> None:
    db = sqlite_db
    conn = db.connect()
    for i in range(1, 6):
        insert_invoice(conn, db, i, **RECEPTOR)
    insert_invoice(conn, db, 6, estado=None, **RECEPTOR)  # not ready: not counted
    conn.close()
    cfg, problems = check_config(table_config(tmp_path, db, sandbox, batch=2))
    assert cfg is not None, problems
    pipe = Pipeline(cfg)
    metrics = Metrics()
    pipe.metrics = metrics
    metrics.attach(pipe)
    pipe.start()
    try:
        pipe.poll_once()  # counted before its first batch is claimed
        assert _samples(metrics, "cfdi_connector_table_rows_waiting") == {"erp": 5.0}
        assert _samples(metrics, "cfdi_connector_table_rows_oldest_age_seconds")["erp"] >= 0
        assert pipe.run_until_idle(120)
    finally:
        pipe.close()


def test_readyz_is_503_while_a_table_sources_database_does_not_answer(
    sqlite_db: Db, sandbox, tmp_path: Path
) -> None:
    config = table_config(tmp_path, sqlite_db, sandbox)
    text = config.read_text(encoding="utf-8")
    dead = 'connection = "DRIVER={PostgreSQL Unicode};SERVER=127.0.0.1;PORT=1;UID=postgres"'
    start = text.index("connection = ")
    text = text[:start] + dead + text[text.index("\n", start):]
    text = text.replace('dialect = "sqlite"', 'dialect = "postgresql"')
    config.write_text(text, encoding="utf-8")
    cfg = load_config(config)  # check-config would refuse it: the daemon meets it at run time
    pipe = Pipeline(cfg)
    pipe.start()  # taking back its rows fails: the source is paused, the daemon runs
    server = HealthServer("127.0.0.1:0", pipe, None, last_tick=time.monotonic, alive_within=5)
    try:
        assert [name for name, _ in pipe.tables.paused()] == ["erp"]
        code, body = server.readiness()
        doc = json.loads(body)
        assert code == 503 and any("erp" in r and "CONN-BD" in r for r in doc["reasons"]), doc
    finally:
        pipe.close()
