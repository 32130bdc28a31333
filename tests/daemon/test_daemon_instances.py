"""Several connector instances sharing the journal on PostgreSQL (issue 16): each carries the
work it took (``owner``), heartbeats, and takes over what a stopped or stalled one left — its
invoices (asking the PAC by referencia first, never sealing again), its claimed files (moved
from its work folder into the taker's), its cancellation requests — while the stalled one can
no longer advance what it lost. The local server: 127.0.0.1:5432, a database of the session's
own (``pg_journal_db``); the sandbox PAC over real HTTP."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import psycopg
import pytest

from connector.journal import Admission, CancelState, NotOwner, State
from connector.journal.postgres import InstanceTaken
from connector.journal.postgres import Journal as PostgresJournal
from tests.daemon.conftest import dat_file, pg_schema_url, stamps_by_key, until

KEY = ("EKU9003173C9", "F", "1")


def _journals(url: str, *names: str, lease: float = 2.0) -> list[PostgresJournal]:
    out = []
    for n, name in enumerate(names):
        j = PostgresJournal(url)
        j.join(name, lease_seconds=lease, host=f"host-{name}", pid=3_900_000 + n)
        out.append(j)
    return out


def _admit(j: PostgresJournal, key: tuple[str, str, str] = KEY) -> tuple[Admission, Any]:
    return j.admit(key, "h", mode="stamp", source="s", source_file="f.dat", location="l")


def _lease_out(j: PostgresJournal, name: str) -> None:
    """``name``'s last heartbeat put a lease in the past (the server's clock decides)."""
    j._db.execute(
        "UPDATE instances SET heartbeat_at = heartbeat_at - lease_seconds - 1 WHERE name=?",
        (name,),
    )


def test_an_invoice_carried_by_a_live_instance_is_never_advanced_by_another(
    pg_journal_db: str,
) -> None:
    a, b = _journals(pg_schema_url(pg_journal_db), "a", "b")
    try:
        adm, e = _admit(a)
        assert adm is Admission.NEW and e.owner == "a"
        e = a.mark_sealed_sending(e.id, b"<sellado/>", "REF-1")
        # the same invoice reaching b (another export, another folder) while a sends it
        adm, seen = _admit(b)
        assert adm is Admission.ELSEWHERE and seen.owner == "a"
        assert b.in_state(State.SENDING) == []  # b's work lists only its own
        assert [x.id for x in a.in_state(State.SENDING)] == [e.id]
        with pytest.raises(NotOwner):
            b.mark_stamped(e.id, "UUID-B", b"<b/>")
        assert b.sweep()["invoices"] == 0  # a is alive: nothing to take
        # a stops heartbeating: after its lease b takes its unfinished work over
        _lease_out(b, "a")
        taken = b.sweep()
        assert taken["instances"] == ["a"] and taken["invoices"] == 1
        assert [x.id for x in b.in_state(State.SENDING)] == [e.id]
        assert a.in_state(State.SENDING) == []
        # a comes back from its stall: it finds itself taken over, and may advance nothing
        assert a.heartbeat() is False
        with pytest.raises(NotOwner):
            a.mark_stamped(e.id, "UUID-A", b"<a/>")
        b.mark_stamped(e.id, "UUID-B", b"<b/>")  # b finishes it (its referencia, REF-1)
        assert b.get_id(e.id).referencia == "REF-1"
        (ia, ib) = b.instances()
        assert (ia["name"], ia["alive"], ia["taken_over_by"]) == ("a", False, "b")
        assert (ib["name"], ib["alive"], ib["open_invoices"]) == ("b", True, 1)
    finally:
        a.close()
        b.close()


def test_a_delivered_invoice_exported_again_is_delivered_by_whoever_reads_it(
    pg_journal_db: str,
) -> None:
    a, b = _journals(pg_schema_url(pg_journal_db), "a", "b")
    try:
        _, e = _admit(a)
        a.mark_sealed_sending(e.id, b"<sellado/>", "REF-1")
        a.mark_stamped(e.id, "UUID-1", b"<x/>")
        a.mark_delivered(e.id, {"xml": "x.xml"})
        adm, again = _admit(b)  # final: no instance needs to carry it; b delivers it again
        assert adm is Admission.DELIVERED and again.owner == "b"
    finally:
        a.close()
        b.close()


def test_a_clean_stop_hands_over_at_once_and_work_nobody_carries_is_taken(
    pg_journal_db: str,
) -> None:
    url = pg_schema_url(pg_journal_db)
    a, b = _journals(url, "a", "b", lease=600.0)
    loose = PostgresJournal(url)  # a command (``cancel``): no instance, no owner
    try:
        _, e = _admit(a)
        a.mark_sealed_sending(e.id, b"<sellado/>", "REF-1")
        rec = a.file_claimed("s", "f.dat", "/work/a/f.dat")
        loose.open_cancel_request("AAAA-UUID", "02", None, rfc_emisor="EKU9003173C9",
                                  rfc_receptor="XAXX010101000", total="1.16", origin="cli")  # fmt: skip
        assert loose.cancel_requests_due(now=2e9) != []  # a command sees every request
        assert b.cancel_requests_due(now=2e9) == []  # b's work: its own only
        a.leave()  # stopped cleanly: no lease to wait for
        taken = b.sweep()
        assert taken == {"instances": ["a"], "invoices": 1, "files": 1, "requests": 1,
                         "gone": ["a"]}  # fmt: skip
        assert [f.id for f in b.files()] == [rec.id]
        assert [r.uuid for r in b.cancel_requests_due(now=2e9)] == ["AAAA-UUID"]
        assert b.cancel_request("AAAA-UUID").state is CancelState.REQUESTED  # type: ignore[union-attr]
    finally:
        for j in (a, b, loose):
            j.close()


def test_an_instance_name_alive_on_another_host_is_refused(pg_journal_db: str) -> None:
    url = pg_schema_url(pg_journal_db)
    (a,) = _journals(url, "ventas")
    other = PostgresJournal(url)
    try:
        with pytest.raises(InstanceTaken) as err:
            other.join("ventas", lease_seconds=2.0, host="otro-servidor", pid=7)
        assert "ventas" in str(err.value) and "host-ventas" in str(err.value)
        # the same host, its process still running (another configuration naming the same
        # instance): refused too
        import os

        a._db.execute("UPDATE instances SET pid=? WHERE name='ventas'", (os.getpid(),))
        with pytest.raises(InstanceTaken) as err:
            other.join("ventas", lease_seconds=2.0, host="host-ventas", pid=8)
        assert f"pid {os.getpid()}" in str(err.value)
        # the same host, its process gone (a restart: the local lock says so) may
        a._db.execute("UPDATE instances SET pid=3999999 WHERE name='ventas'")
        other.join("ventas", lease_seconds=2.0, host="host-ventas", pid=8)
        assert a.heartbeat() is False  # the old run's token is no longer the instance's
    finally:
        a.close()
        other.close()


def test_one_sat_check_per_uuid_when_several_sweep(journal_at: Any) -> None:
    j1 = journal_at("j.sqlite")
    j2 = journal_at("j.sqlite")
    assert j1.claim_sat_check("abc", checked_before=100.0) is True
    assert j2.claim_sat_check("ABC", checked_before=100.0) is False  # checked just now
    assert j2.claim_sat_check("ABC", checked_before=4e9) is True  # due again


# --- two pipelines: a stalled instance's file and invoices finished by the other --------------


def _shared(workspace: Path, url: str, lease: float = 2.0) -> None:
    text = workspace.read_text(encoding="utf-8")
    workspace.write_text(
        text.replace(
            'journal = "var/journal.sqlite"',
            f'journal = "{url}"\ninstance_lease_seconds = {lease}',
        ),
        encoding="utf-8",
    )


def _pipeline(workspace: Path, instance: str) -> Any:
    from connector.config import check_config
    from connector.pipeline import Pipeline

    cfg, problems = check_config(workspace)
    assert cfg is not None, problems
    cfg = cfg.model_copy(update={"daemon": cfg.daemon.model_copy(update={"instance": instance})})
    pipe = Pipeline(cfg)
    pipe.start()
    return pipe


def _stall(pipe: Any) -> None:
    """The instance stops heartbeating (a frozen VM, a long pause): its threads go on."""
    m = pipe.membership
    m._stop.set()
    m._thread.join(10)


def test_a_stalled_instances_claimed_file_and_sends_are_finished_by_another_once(
    workspace: Path, sandbox: Any, pg_journal_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = pg_schema_url(pg_journal_db)
    _shared(workspace, url)
    ws = workspace.parent
    (ws / "inbox" / "ventas.dat").write_bytes(dat_file("P", [1, 2, 3]))
    sandbox.latency = 3.0  # a's requests are still at the PAC when it stalls
    a = _pipeline(workspace, "a")
    b = None
    try:
        assert until(lambda: a.poll_once() > 0 or a.in_flight() > 0, 30)
        assert until(lambda: a.in_flight() == 3, 30)
        work_a = ws / "work" / "ventas" / "a"
        assert [p.name for p in work_a.iterdir()][0].endswith("ventas.dat")
        _stall(a)
        b = _pipeline(workspace, "b")
        stop = threading.Event()
        loop = threading.Thread(target=b.run, args=(stop,), kwargs={"max_wait": 0.1})
        loop.start()
        try:
            done = until(lambda: any((ws / "archive").rglob("ventas.dat")), 90)
        finally:
            stop.set()
            loop.join(30)
        assert done, (b.journal.counts(), list((ws / "work").rglob("*")))
        assert until(lambda: a.in_flight() == 0, 30)  # a's late replies found it not theirs
        # every invoice stamped once at the PAC (b asked by referencia before any send),
        # delivered once, the file archived, nothing left in either work folder
        stamps = stamps_by_key(sandbox.store)
        assert {k: len(v) for k, v in stamps.items()} == {("P", "1"): 1, ("P", "2"): 1,
                                                           ("P", "3"): 1}  # fmt: skip
        xmls = sorted(p.name.split("_")[0] for p in (ws / "out" / "xml").iterdir())
        assert xmls == ["P1", "P2", "P3"]
        assert not [p for p in (ws / "work").rglob("*") if p.is_file()]
        delivered = b.journal.in_state(State.DELIVERED)
        assert {e.uuid for e in delivered} == {u for us in stamps.values() for u in us}
        assert {e.owner for e in delivered} == {"b"}
        (f,) = b.journal.files()
        assert f.state.value == "archived" and f.work_path.startswith(str(ws / "work/ventas/b"))
    finally:
        a.close()
        if b is not None:
            b.close()
    from connector.cli import main

    capsys.readouterr()
    assert main(["status", "--config", str(workspace), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    by_name = {i["name"]: i for i in doc["instances"]}
    assert by_name["a"]["taken_over_by"] == "b" and by_name["a"]["alive"] is False
    assert by_name["b"]["open_invoices"] == 0 and by_name["b"]["open_files"] == 0
    assert main(["status", "--config", str(workspace)]) == 0
    assert "relevada por b" in capsys.readouterr().out


def test_the_same_invoice_in_two_instances_reach_is_stamped_once(
    workspace: Path, sandbox: Any, pg_journal_db: str
) -> None:
    """Two exports of one invoice, each read by another instance at the same time: the one
    that admitted it first stamps it, the other's file waits for it and is archived with it."""
    url = pg_schema_url(pg_journal_db)
    _shared(workspace, url, lease=30.0)
    ws = workspace.parent
    sandbox.latency = 1.0
    a = _pipeline(workspace, "a")
    b = _pipeline(workspace, "b")
    b.redeliver_seconds = 0.2  # b looks at what a carries for it often
    try:
        (ws / "inbox" / "uno.dat").write_bytes(dat_file("Q", [7]))
        assert until(lambda: a.poll_once() > 0, 30)
        assert a.in_flight() == 1
        (ws / "inbox" / "dos.dat").write_bytes(dat_file("Q", [7]))
        assert until(lambda: b.poll_once() > 0, 30)
        assert b.in_flight() == 0  # waiting for a, not sending it too
        assert until(lambda: a.run_until_idle(1) and b.run_until_idle(1), 60)
    finally:
        a.close()
        b.close()
    assert {k: len(v) for k, v in stamps_by_key(sandbox.store).items()} == {("Q", "7"): 1}
    archived = sorted(p.name for p in (ws / "archive").rglob("*.dat"))
    assert archived == ["dos.dat", "uno.dat"]
    with psycopg.connect(url) as conn:
        (owner,) = conn.execute("SELECT owner FROM invoices").fetchone()  # type: ignore[misc]
    assert owner == "a"


def test_a_daemon_frozen_past_its_lease_is_taken_over_and_exits_when_it_wakes(
    workspace: Path, sandbox: Any, pg_journal_db: str
) -> None:
    """Real processes: ``run --instance a`` frozen (SIGSTOP) longer than its lease while its
    file waits in its work folder; ``run --instance b`` takes its work over and finishes the
    file; ``a``, woken, finds at its next heartbeat that it was taken over and exits at once
    (75) without touching anything more."""
    import signal

    from connector.daemon.run import EXIT_TAKEN_OVER
    from tests.tables.daemon_procs import start, stderr_text, stop

    url = pg_schema_url(pg_journal_db)
    _shared(workspace, url)
    ws = workspace.parent
    sandbox.latency = 2.0

    def instance(name: str) -> dict[str, Any]:
        try:
            with psycopg.connect(url) as conn:
                row = conn.execute(
                    "SELECT taken_over_by, pid FROM instances WHERE name=%s", (name,)
                ).fetchone()
        except psycopg.errors.UndefinedTable:  # the daemon has not created its tables yet
            return {}
        return {} if row is None else {"taken_over_by": row[0], "pid": row[1]}

    a = start(workspace, "--instance", "a")
    b = None
    try:
        assert until(lambda: instance("a").get("pid") == a.pid, 60), stderr_text(workspace)
        (ws / "inbox" / "ventas.dat").write_bytes(dat_file("S", [1, 2]))
        work_a = ws / "work" / "ventas" / "a"
        assert until(lambda: work_a.is_dir() and any(work_a.iterdir()), 60)
        a.send_signal(signal.SIGSTOP)  # frozen with its sends at the PAC
        b = start(workspace, "--instance", "b")
        assert until(lambda: instance("a").get("taken_over_by") == "b", 60), stderr_text(workspace)
        assert until(lambda: any((ws / "archive").rglob("ventas.dat")), 90), stderr_text(workspace)
        a.send_signal(signal.SIGCONT)
        assert a.wait(60) == EXIT_TAKEN_OVER
        log = (ws / "var" / "connector.log").read_text("utf-8")
        assert "CONN-INSTANCIA-RELEVADA" in log
        # one log file for both: every line says which instance wrote it
        lines = [json.loads(x) for x in log.splitlines() if x.startswith("{")]
        started = [x["instance"] for x in lines if x["event"] == "pipeline_started"]
        assert sorted(started) == ["a", "b"] and all("instance" in x for x in lines)
        assert stop(b) == 0
    finally:
        for p in (a, b):
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGCONT)
                p.kill()
                p.wait(10)
    stamps = stamps_by_key(sandbox.store)
    assert {k: len(v) for k, v in stamps.items()} == {("S", "1"): 1, ("S", "2"): 1}
    assert sorted(p.name.split("_")[0] for p in (ws / "out" / "xml").iterdir()) == ["S1", "S2"]
    assert not [p for p in (ws / "work").rglob("*") if p.is_file()]


def test_every_metric_of_an_instance_sharing_the_journal_carries_its_name(
    workspace: Path, pg_journal_db: str
) -> None:
    from prometheus_client import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from connector.service.metrics import Metrics

    _shared(workspace, pg_schema_url(pg_journal_db))
    pipe = _pipeline(workspace, "norte")
    try:
        metrics = Metrics(pipe.instance)
        metrics.attach(pipe)
        metrics.delivered_again("ventas")
        text = generate_latest(metrics.registry).decode("utf-8")
    finally:
        pipe.close()
    samples = [s for f in text_string_to_metric_families(text) for s in f.samples]
    assert len(samples) > 10  # the pipeline's figures, the stages, the journal's counts
    assert {s.labels.get("connector_instance") for s in samples} == {"norte"}


def test_an_instance_name_that_cannot_name_a_folder_is_a_configuration_error(
    workspace: Path,
) -> None:
    from connector.config import check_config

    text = workspace.read_text(encoding="utf-8")
    workspace.write_text(text.replace("[daemon]\n", '[daemon]\ninstance = "../otra"\n'), "utf-8")
    cfg, problems = check_config(workspace)
    assert cfg is None
    (p,) = [p for p in problems if p.severity == "error"]
    assert p.code == "CONN-CFG-VALOR" and "daemon.instance" in (p.location or p.path)
    assert "nombre de instancia '../otra'" in p.message and "carpeta de trabajo" in p.message
    # the same from the command line: nothing starts
    from connector.cli import main

    workspace.write_text(text, "utf-8")
    assert main(["run", "--config", str(workspace), "--instance", "a/b", "--once"]) == 2


def test_an_instance_is_ready_on_its_shared_journal_and_not_while_it_is_away(
    workspace: Path, sandbox: Any, pg_journal_db: str
) -> None:
    """/readyz of an instance on a PostgreSQL journal: ready (no local journal file to find),
    503 with CONN-DIARIO-CAIDO once the journal is found away, ready again when it answers."""
    import time

    from connector.service.http import HealthServer

    _shared(workspace, pg_schema_url(pg_journal_db))
    pipe = _pipeline(workspace, "norte")
    try:
        server = HealthServer("127.0.0.1:0", pipe, None, last_tick=time.monotonic,
                              alive_within=10.0)  # fmt: skip
        code, body = server.readiness()
        assert code == 200, body
        pipe.journal_away(psycopg.OperationalError("server closed the connection unexpectedly"))
        code, body = server.readiness()
        assert code == 503 and "CONN-DIARIO-CAIDO" in json.loads(body)["reasons"][0]
        pipe.membership.beat()  # the journal answers: back
        assert server.readiness()[0] == 200
    finally:
        pipe.close()


def test_an_instance_whose_heartbeats_do_not_go_through_takes_no_new_work(
    workspace: Path, sandbox: Any, pg_journal_db: str
) -> None:
    """Two thirds of a lease without a heartbeat that went through (a half-open connection,
    a stall): the others may take this one over soon, so it claims nothing and sends nothing
    until a heartbeat goes through again."""
    import time

    _shared(workspace, pg_schema_url(pg_journal_db))
    ws = workspace.parent
    pipe = _pipeline(workspace, "norte")
    try:
        _stall(pipe)  # its heartbeats are driven by the test from here
        pipe.membership.last_beat = time.monotonic() - 10.0  # the lease is 2 s
        (ws / "inbox" / "ventas.dat").write_bytes(dat_file("N", [1]))
        assert not until(lambda: pipe.poll_once() > 0, 3)
        assert (ws / "inbox" / "ventas.dat").exists() and pipe.in_flight() == 0
        pipe.membership.beat()  # goes through
        assert until(lambda: pipe.poll_once() > 0, 30)
        assert pipe.run_until_idle(60)
    finally:
        pipe.close()
    assert [p.name.split("_")[0] for p in (ws / "out" / "xml").iterdir()] == ["N1"]


def test_a_files_end_the_journals_crash_undid_is_done_again_as_soon_as_it_is_back(
    workspace: Path, sandbox: Any, pg_journal_db: str
) -> None:
    """A journal server that crashed may undo what was committed without waiting for its
    disk — a file's end, after the file was moved to the archive: its row is back in
    ``archiving``. When the journal answers again the instance repeats the periodic second
    chance at once (the move found done, the file finished), not ``redeliver_seconds``
    later."""
    url = pg_schema_url(pg_journal_db)
    _shared(workspace, url)
    ws = workspace.parent
    (ws / "inbox" / "ventas.dat").write_bytes(dat_file("Q", [1, 2]))
    pipe = _pipeline(workspace, "norte")
    pipe.redeliver_seconds = 3600.0
    try:
        assert pipe.run_until_idle(60)
        (rec,) = pipe.journal.files()
        assert rec.state.value == "archived"
        with psycopg.connect(url, autocommit=True) as conn:  # what the crash undid
            conn.execute(
                "UPDATE files SET state='archiving', finished_at=NULL WHERE id=%s", (rec.id,)
            )
        pipe.poll_once()
        assert pipe.journal.get_file(rec.id).state.value == "archiving"  # not due yet
        pipe.journal_away(psycopg.OperationalError("server closed the connection unexpectedly"))
        pipe.poll_once()
        assert pipe.journal.get_file(rec.id).state.value == "archiving"  # still away
        pipe.membership.beat()  # the journal answers: back
        pipe.poll_once()
        assert pipe.journal.get_file(rec.id).state.value == "archived"
        assert [p.name for p in (ws / "archive").rglob("*.dat")] == ["ventas.dat"]
    finally:
        pipe.close()
