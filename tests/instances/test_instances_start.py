"""Two connector instances started at the same moment from one configuration file on an empty
journal database (issue 16): the schema is created once (each migration applied once, the server logged no error of two
creating it), both run and share the work: one inbox and one set of tables, every invoice
stamped once, delivered once."""

from __future__ import annotations

import re
import threading
from collections import Counter
from typing import Any

import psycopg

from connector.journal.postgres.schema import MIGRATIONS
from tests.tables.daemon_support import rows

from .harness import Cluster
from .private_pg import PrivatePostgres


def test_two_instances_started_at_once_on_an_empty_database_create_the_schema_once(
    make_cluster: Any, journal_server: PrivatePostgres
) -> None:
    # both from one configuration file on this host (`run --config C --instance iN`)
    cluster: Cluster = make_cluster(names=("i1", "i2"), one_config=True)
    conn = cluster.db.connect()
    # the work is there before they start: whichever comes first must not take it all at once
    cluster.drop_files(list(range(1, 61)))
    cluster.insert_rows(conn, list(range(1, 121)), bad={17})
    go = threading.Barrier(2)

    def launch(name: str) -> None:
        go.wait()
        cluster.start(name)

    threads = [threading.Thread(target=launch, args=(n,)) for n in cluster.names]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    try:
        for name in cluster.names:
            assert cluster.started(name), cluster.logs()
        cluster.wait_done(conn, 180)
        cluster.check_instances()  # status: both alive under their pids, nothing open
    finally:
        codes = cluster.stop_all()
    assert codes == {"i1": 0, "i2": 0}, cluster.logs()
    cluster.check(conn)
    with psycopg.connect(cluster.journal_url) as c:
        applied = [r[0] for r in c.execute("SELECT version FROM journal_migrations").fetchall()]
    assert Counter(applied) == Counter(m[0] for m in MIGRATIONS)
    # neither tripped over the other creating the tables (the server logs such a failure)
    errors = [ln for ln in journal_server.log().splitlines() if re.search(r"ERROR|FATAL", ln)]
    assert not [ln for ln in errors if "already exists" in ln or "duplicate key" in ln], errors
    # both took part: each claimed table rows
    claimers = Counter(v[0] for v in rows(conn, "reclamado_por").values())
    assert set(claimers) == {"i1", "i2"}, claimers
    conn.close()
