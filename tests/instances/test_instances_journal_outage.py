"""The shared journal's PostgreSQL server stopped and started again while instances work (issue
16): they pause (none exits, nothing is lost nor stamped twice) and resume when it is back;
every invoice of the inbox and of the tables is finished, stamped once, delivered once. Stopped
cleanly (``fast``: every connection cut, as ``systemctl stop``) or crashed (``immediate``: the
server recovers from its WAL; commits made without waiting for the disk may be undone, which
the connectors' repeating repairs)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.tables.daemon_procs import log_text, stderr_text

from .harness import Cluster
from .private_pg import PrivatePostgres


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_the_journal_server_stopped_and_started_mid_run_pauses_and_resumes_every_instance(
    make_cluster: Any, journal_server: PrivatePostgres, mode: str
) -> None:
    # a lease shorter than the outage: back, neither may take the other for dead (neither
    # could beat while the server was down)
    cluster: Cluster = make_cluster(names=("i1", "i2"), instance_lease=3)
    conn = cluster.db.connect()
    for name in cluster.names:
        cluster.start(name)
    try:
        for name in cluster.names:
            assert cluster.started(name), cluster.logs()
        cluster.drop_files(list(range(1, 101)))
        cluster.insert_rows(conn, list(range(1, 101)), bad={40})
        # well into the run: some invoices delivered, most still to do
        assert _until(lambda: len(cluster.archived()) >= 3), cluster.progress(conn)
        journal_server.stop(mode=mode)
        time.sleep(5)  # down longer than the lease: every instance meets it
        assert sorted(cluster.alive()) == ["i1", "i2"], cluster.logs()
        # work arriving while the journal is down waits for it
        cluster.drop_files(list(range(101, 141)))
        cluster.insert_rows(conn, list(range(101, 141)))
        journal_server.start()
        cluster.wait_done(conn, 180)
        assert sorted(cluster.alive()) == ["i1", "i2"], cluster.logs()
        cluster.check_instances()
    finally:
        codes = cluster.stop_all()
    assert codes == {"i1": 0, "i2": 0}, cluster.logs()
    cluster.check(conn)
    conn.close()
    # a pause, not a failure: no traceback, nothing in English from psycopg's pool, and no
    # instance mistook another for dead when the journal came back
    for name, config in cluster.configs.items():
        log = log_text(config)
        assert '"exception"' not in log and '"takeover"' not in log, name
        assert "error connecting in" not in stderr_text(config), name


def test_an_instance_says_once_that_the_journal_is_away_and_when_it_is_back(
    journal_server: PrivatePostgres,
) -> None:
    """The heartbeat meets the journal's server stopped: one coded Spanish event
    (CONN-DIARIO-CAIDO) however long it lasts,
    ``journal_back`` when it answers again; no takeover while the others could not beat
    either."""
    import threading

    import structlog

    from connector.journal.postgres import Journal
    from connector.membership import Membership

    j = Journal(journal_server.create_database("sola"))
    m = Membership(j, "a", 3.0, list, on_lost=lambda: None, wake=threading.Event())
    try:
        j.join("a", lease_seconds=3.0, host="h", pid=1)
        m.healthy_since = 0.0  # healthy for long: a sweep would run at the next beat
        journal_server.stop()
        with structlog.testing.capture_logs() as logs:
            m.beat()
            m.beat()
            assert m.down_since is not None and m.healthy_since is None
            journal_server.start()
            m.beat()
        events = [(e["event"], e.get("code")) for e in logs]
        assert events == [("journal_unreachable", "CONN-DIARIO-CAIDO"), ("journal_back", None)]
        assert "no responde" in logs[0]["message"] and "nada se pierde" in logs[0]["message"]
        assert m.down_since is None and m.healthy_since is not None  # a lease before sweeping
    finally:
        j.close()


def _until(cond: Any, timeout: float = 120) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return False


def test_the_daemon_loop_outlives_a_journal_outage_longer_than_a_connection_wait(
    tmp_path: Any, sandbox: Any, journal_server: PrivatePostgres
) -> None:
    """The loop's own journal queries (what is due when) meet the server away — here longer
    than the pool waits for a connection — and the loop goes on: it ended with
    ``psycopg.OperationalError`` from ``_next_retry_in`` when the server crashed mid-run
    (tests above, ``immediate``), and the daemon exited."""
    import threading

    from tests.daemon.conftest import dat_file, start_pipeline, write_config

    config = write_config(
        tmp_path / "ws", timbrado_url=sandbox.fel_timbrado_url, remote_url=sandbox.fel_remote_url
    )
    url = journal_server.create_database("bucle")
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace('"var/journal.sqlite"', f'"{url}"'), encoding="utf-8")
    pipe = start_pipeline(config)
    # wait half a second for a pooled connection, not 30: the outage below outlasts it
    pipe.journal._pool.timeout = 0.5
    stop = threading.Event()
    loop = threading.Thread(target=pipe.run, args=(stop,), kwargs={"max_wait": 0.2})
    loop.start()
    try:
        journal_server.stop()
        time.sleep(3)  # several turns of the loop, each waiting in vain for a connection
        assert loop.is_alive()
        journal_server.start()
        (tmp_path / "ws" / "inbox" / "v.dat").write_bytes(dat_file("L", [1, 2]))
        xml = tmp_path / "ws" / "out" / "xml"
        assert _until(lambda: len(list(xml.glob("L*.xml"))) == 2, 120)
        assert loop.is_alive()
    finally:
        stop.set()
        loop.join(30)
        pipe.close()
