"""Review of issue 16's multi-instance core: interleavings that lose or strand work."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psycopg
import pytest

from connector.journal import Admission, State
from connector.journal.postgres import Journal as PostgresJournal
from connector.membership import Membership
from tests.daemon.conftest import pg_schema_url

KEY = ("EKU9003173C9", "F", "1")


def _journals(url: str, *names: str, lease: float = 600.0) -> list[PostgresJournal]:
    out = []
    for n, name in enumerate(names):
        j = PostgresJournal(url)
        j.join(name, lease_seconds=lease, host=f"host-{name}", pid=1000 + n)
        out.append(j)
    return out


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


def test_files_moved_by_a_sweep_that_did_not_commit_are_found_by_the_next_sweeper(
    pg_journal_db: str, tmp_path: Path
) -> None:
    """``sweep`` renames the stopped instance's files into the sweeper's folder BEFORE its
    transaction commits. When the commit fails (the journal's connection cut, or an
    OSError on a later entry in ``_move_files`` — only FileNotFoundError is caught), the
    files sit in t's folder while their rows still belong to the stopped one; the next
    sweep, by another instance s, takes the rows and finds nothing to move: s owns a row
    whose file is in t's folder (s's ``_relocated`` looks only in its own folder; t's
    ``resume`` runs only after a successful sweep or a restart, and then adopts the file
    as a NEW row whose invoices are s's — ELSEWHERE)."""
    url = pg_schema_url(pg_journal_db)
    a, t, s = _journals(url, "a", "t", "s")
    base = tmp_path / "work"
    for n in "ats":
        (base / n).mkdir(parents=True)
    f = base / "a" / "20261208T010000-abcd1234--ventas.dat"
    f.write_bytes(b"datos")
    a.file_claimed("src", "ventas.dat", str(f))
    a.leave()
    wake = threading.Event()
    mt = Membership(t, "t", 600.0, lambda: [base / "t"], on_lost=lambda: None, wake=wake)
    ms = Membership(s, "s", 600.0, lambda: [base / "s"], on_lost=lambda: None, wake=wake)

    def move_then_cut(gone: list[str]) -> int:
        n = mt._move_files(gone)
        pid = t._local.conn.info.backend_pid  # the sweep's own transaction
        with psycopg.connect(pg_journal_db, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        return n

    try:
        with pytest.raises(Exception):  # noqa: B017 - JournalAway / OperationalError
            t.sweep(move=move_then_cut)
        assert (base / "t" / f.name).exists()  # moved, though nothing was committed
        taken = s.sweep(move=ms._move_files)
        assert taken["files"] == 1
        (row,) = s.files()
        assert Path(row.work_path).exists() or (base / "s" / f.name).exists(), (
            row.work_path,
            sorted(str(p.relative_to(base)) for p in base.rglob("*") if p.is_file()),
        )
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
        taken = t.sweep(move=mt._move_files)
        assert "v" not in taken["instances"]  # v was alive when the dead were marked
        # ... so nothing of v's may have been taken
        assert v.heartbeat() is True  # v goes on as if nothing happened
        assert [r.work_path for r in v.files()] == [str(f)], (taken, t.files())
        assert f.exists(), sorted(str(p.relative_to(base)) for p in base.rglob("*"))
    finally:
        for j in (d, v, t):
            j.close()


def test_a_sweep_moving_files_longer_than_the_idle_timeout_strands_them(
    pg_journal_db: str, tmp_path: Path
) -> None:
    """The same, triggered by the product's own setting: the sweep's transaction is idle
    while ``_move_files`` renames (a dead instance's full work folder on a slow share); past
    ``idle_in_transaction_session_timeout`` (= the lease, at least 10 s) the server ends it,
    the renames stay done and nothing is committed. Here the timeout is 1 s and the move
    takes 1.5 s."""
    url = pg_schema_url(pg_journal_db)
    a, s = _journals(url, "a", "s")
    t = PostgresJournal(url, idle_seconds=1.0)
    t.join("t", lease_seconds=600.0, host="host-t", pid=2000)
    base = tmp_path / "work"
    for n in "ats":
        (base / n).mkdir(parents=True)
    f = base / "a" / "20261208T010000-abcd1234--ventas.dat"
    f.write_bytes(b"datos")
    a.file_claimed("src", "ventas.dat", str(f))
    a.leave()
    wake = threading.Event()
    mt = Membership(t, "t", 600.0, lambda: [base / "t"], on_lost=lambda: None, wake=wake)
    ms = Membership(s, "s", 600.0, lambda: [base / "s"], on_lost=lambda: None, wake=wake)

    def slow_move(gone: list[str]) -> int:
        n = mt._move_files(gone)
        time.sleep(1.5)  # many files on a slow share
        return n

    try:
        with pytest.raises(Exception):  # noqa: B017
            t.sweep(move=slow_move)
        assert (base / "t" / f.name).exists()
        s.sweep(move=ms._move_files)
        (row,) = s.files()
        assert Path(row.work_path).exists() or (base / "s" / f.name).exists(), row.work_path
    finally:
        for j in (a, t, s):
            j.close()


def test_two_instances_admitting_the_same_keys_in_other_orders_is_not_an_outage(
    pg_journal_db: str,
) -> None:
    """Two batches (a file at a, another export at b) admitting the same two keys in
    opposite orders: PostgreSQL ends one with a deadlock. ``journal_away`` calls that the
    journal's outage (psycopg's DeadlockDetected is an OperationalError): CONN-DIARIO-CAIDO
    is logged and ``note_away`` resets ``healthy_since`` — that instance sweeps no dead one
    for another whole lease — though the server is up."""
    from connector.journal import journal_away

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
    finally:
        a.close()
        b.close()
