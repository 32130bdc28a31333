"""Issue 16: interleavings of instances sharing the journal that could lose, strand or
mis-report work (found by a review of the multi-instance core)."""

from __future__ import annotations

import threading
from pathlib import Path

from connector.journal import Admission, State
from connector.journal.postgres import Journal as PostgresJournal
from connector.membership import Membership
from tests.daemon.conftest import pg_schema_url
from tests.daemon.test_daemon_instances import KEY
from tests.daemon.test_daemon_instances import _journals as journals


def _journals(url: str, *names: str) -> list[PostgresJournal]:
    return journals(url, *names, lease=600.0)  # nobody's lease runs out unless a test says so


def test_other_content_under_a_key_a_live_instance_is_sending_is_a_conflict(
    pg_journal_db: str,
) -> None:
    """Single instance: a second export of F1 with other content while F1 is sealed/sent is
    CONN-FOLIO-USADO. Shared journal: admit answers ELSEWHERE before comparing the content,
    so b's unit waits and is then finished as if ITS invoice had been delivered (the
    file's report lists a's UUID; the other content is silently never stamped)."""
    a, b = _journals(pg_schema_url(pg_journal_db), "a", "b")
    try:
        _, e = a.admit(KEY, "h1", mode="stamp", source="s", source_file="f.dat", location="l")
        a.mark_sealed_sending(e.id, b"<sellado/>", "REF-1")
        adm, _ = b.admit(KEY, "h2", mode="stamp", source="s", source_file="g.dat",
                         location="l2")  # fmt: skip
        assert adm is Admission.CONFLICT
    finally:
        a.close()
        b.close()


def test_a_replayed_invoice_is_advanced_by_whoever_reads_its_file_again(
    pg_journal_db: str,
) -> None:
    """``replay`` (a command: no owner) resets a failed invoice to RECEIVED but leaves its
    owner; the instance that claims the replayed file is told ELSEWHERE while the owner is
    alive — and the owner never advances a RECEIVED row (``_dispatch_unfinished`` takes
    sealed/sending/stamped only; no unit of its own holds it): waits forever."""
    url = pg_schema_url(pg_journal_db)
    a, b = _journals(url, "a", "b")
    loose = PostgresJournal(url)  # ``cfdi-connector replay``
    try:
        _, e = a.admit(KEY, "h", mode="stamp", source="s", source_file="f.dat", location="l")
        a.mark_failed(e.id, "CFDI40102", "mal", origin="rules")
        loose.reset(e.id)
        assert loose.get_id(e.id).state is State.RECEIVED
        # nothing of a's would pick it up
        assert a.in_state(State.SEALED, State.SENDING, State.STAMPED) == []
        assert a.due_retries(now=2e9) == []
        adm, _ = b.admit(KEY, "h", mode="stamp", source="s", source_file="f.dat",
                         location="l")  # fmt: skip
        assert adm is not Admission.ELSEWHERE
    finally:
        for j in (a, b, loose):
            j.close()


def test_a_stopped_instances_claims_reach_their_new_owner_and_no_row_is_left_without_its_file(
    pg_journal_db: str, tmp_path: Path
) -> None:
    """A sweep only gives rows (one transaction, nothing moved inside it). A claim a row
    names is brought, with every entry of its claim (its done-marker), by the row's new owner
    into its folder (``find_claim``, when it resumes the file); a claim no row names (a kill
    between the rename and the row) is moved by one instance, outside any transaction. A
    second sweeper finds nothing to take or move."""
    from connector.adapters.work_folders import find_claim

    url = pg_schema_url(pg_journal_db)
    a, t, s = _journals(url, "a", "t", "s")
    base = tmp_path / "work"
    for n in "ats":
        (base / n).mkdir(parents=True)
    f = base / "a" / "20261208T010000-abcd1234--ventas.dat"
    f.write_bytes(b"datos")
    (base / "a" / (f.name + ".done")).write_bytes(b"")
    loose = base / "a" / "20261208T010001-ef567890--otra.dat"  # claimed, no row yet
    loose.write_bytes(b"otra")
    a.file_claimed("src", "ventas.dat", str(f))
    a.leave()
    wake = threading.Event()
    mt = Membership(t, "t", 600.0, lambda: [base / "t"], on_lost=lambda: None, wake=wake)
    ms = Membership(s, "s", 600.0, lambda: [base / "s"], on_lost=lambda: None, wake=wake)
    try:
        taken = t.sweep()
        assert taken["files"] == 1 and "a" in taken["gone"]
        assert f.exists()  # the sweep moved nothing
        assert mt._move_unknown(taken["gone"]) == 1  # the claim no row names
        assert (base / "t" / loose.name).exists() and f.exists()
        again = s.sweep()
        assert again["files"] == 0 and ms._move_unknown(again["gone"]) == 0
        (row,) = t.files()
        brought = find_claim(Path(row.work_path), base / "t")
        assert brought == base / "t" / f.name and brought.read_bytes() == b"datos"
        assert (base / "t" / (f.name + ".done")).exists()
        assert not list((base / "a").iterdir())
    finally:
        for j in (a, t, s):
            j.close()


def test_a_lease_running_out_during_a_sweep_never_splits_a_live_instance(
    pg_journal_db: str, tmp_path: Path
) -> None:
    """``sweep`` reads the clock (``clock_timestamp()``) anew in each statement: an instance
    whose lease runs out between the first statement (marking the dead: v not yet) and the
    later ones (taking rows, listing the folders to empty: v now) loses its files' rows and
    its work folder's files to the sweeper, yet is never marked taken over — its next
    heartbeat says it is alive and it goes on with work that is no longer where it thinks.
    (The pause between the statements is made here by a trigger; in life it is any delay:
    a busy server, the sweeper's own scheduling.)"""
    url = pg_schema_url(pg_journal_db)
    d, v, t = _journals(url, "d", "v", "t")
    base = tmp_path / "work"
    for n in "dvt":
        (base / n).mkdir(parents=True)
    f = base / "v" / "20261208T010000-abcd1234--ventas.dat"
    f.write_bytes(b"datos")
    v.file_claimed("src", "ventas.dat", str(f))
    _, e = d.admit(KEY, "h", mode="stamp", source="s", source_file="f.dat", location="l")
    d.leave()  # d stopped: the sweep updates its invoice (the trigger's pause)
    t._db.execute(
        "CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN PERFORM pg_sleep(0.5); RETURN NEW; END $$"
    )
    t._db.execute("CREATE TRIGGER slow BEFORE UPDATE OF owner ON invoices "
                  "FOR EACH ROW EXECUTE FUNCTION slow()")  # fmt: skip
    # v's lease runs out 0.2 s from now (its last heartbeat was lease - 0.2 s ago)
    t._db.execute(
        "UPDATE instances SET heartbeat_at = EXTRACT(EPOCH FROM clock_timestamp()) "
        "- lease_seconds + 0.2 WHERE name='v'"
    )
    mt = Membership(t, "t", 600.0, lambda: [base / "t"], on_lost=lambda: None,
                    wake=threading.Event())  # fmt: skip
    try:
        taken = t.sweep()
        mt._move_unknown(taken["gone"])
        assert "v" not in taken["instances"] and "v" not in taken["gone"]  # v was alive when the dead were marked
        # ... so nothing of v's may have been taken
        assert v.heartbeat() is True  # v goes on as if nothing happened
        assert [r.work_path for r in v.files()] == [str(f)], (taken, t.files())
        assert f.exists(), sorted(str(p.relative_to(base)) for p in base.rglob("*"))
    finally:
        for j in (d, v, t):
            j.close()


def test_two_instances_admitting_the_same_keys_in_other_orders_is_not_an_outage(
    pg_journal_db: str,
) -> None:
    """Two batches (a file at a, another export at b) admitting the same two keys in
    opposite orders: PostgreSQL ends one with a deadlock. ``journal_away`` calls that the
    journal's outage (psycopg's DeadlockDetected is an OperationalError): CONN-DIARIO-CAIDO
    is logged and ``note_away`` resets ``healthy_since`` — that instance sweeps no dead one
    for another whole lease — though the server is up."""
    from connector.journal import journal_away, journal_retry

    a, b = _journals(pg_schema_url(pg_journal_db), "a", "b")
    k1, k2 = KEY, ("EKU9003173C9", "F", "2")
    both = threading.Barrier(2, timeout=30)
    errors: list[BaseException] = []

    def run(j: PostgresJournal, first: tuple[str, str, str], second: tuple[str, str, str]) -> None:
        try:
            with j.batch():
                j.admit(first, "h", mode="stamp", source="s", source_file="f", location="l")
                both.wait()
                j.admit(second, "h", mode="stamp", source="s", source_file="f", location="l")
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    try:
        threads = [threading.Thread(target=run, args=(a, k1, k2)),
                   threading.Thread(target=run, args=(b, k2, k1))]  # fmt: skip
        for th in threads:
            th.start()
        for th in threads:
            th.join(60)
        assert len(errors) == 1, errors
        assert not journal_away(errors[0]), repr(errors[0])
        assert journal_retry(errors[0])  # the unit is simply done again
    finally:
        a.close()
        b.close()
