"""The shared journal's PostgreSQL server stopped and started again while instances work (issue
16): they pause (none exits, nothing is lost nor stamped twice) and resume when it is back;
every invoice of the inbox and of the tables is finished, stamped once, delivered once."""

from __future__ import annotations

import time
from typing import Any

from .harness import Cluster
from .private_pg import PrivatePostgres


def test_the_journal_server_stopped_and_started_mid_run_pauses_and_resumes_every_instance(
    make_cluster: Any, journal_server: PrivatePostgres
) -> None:
    cluster: Cluster = make_cluster(names=("i1", "i2"))
    conn = cluster.db.connect()
    for name in cluster.names:
        cluster.start(name)
    try:
        for name in cluster.names:
            assert cluster.started(name), cluster.logs()
        cluster.drop_files(list(range(1, 151)))
        cluster.insert_rows(conn, list(range(1, 151)), bad={40, 120})
        # well into the run: some invoices delivered, most still to do
        assert _until(lambda: len(cluster.archived()) >= 3), cluster.progress(conn)
        journal_server.stop()
        time.sleep(4)  # down for a while: every instance meets it (polls, deliveries, claims)
        assert sorted(cluster.alive()) == ["i1", "i2"], cluster.logs()
        # work arriving while the journal is down waits for it
        cluster.drop_files(list(range(151, 201)))
        cluster.insert_rows(conn, list(range(151, 201)))
        journal_server.start()
        cluster.wait_done(conn, 180)
        assert sorted(cluster.alive()) == ["i1", "i2"], cluster.logs()
    finally:
        codes = cluster.stop_all()
    assert codes == {"i1": 0, "i2": 0}, cluster.logs()
    cluster.check(conn)
    conn.close()


def _until(cond: Any, timeout: float = 120) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return False
