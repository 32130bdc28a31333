"""Connector instances sharing the PostgreSQL journal (issue 16): who is alive, and who carries
each piece of unfinished work.

Every instance has a row in ``instances``: its name (``[daemon] instance`` / ``run --instance``;
default host name + configuration hash), host, pid, a random token for this run, its lease and
its last heartbeat — all times the server's clock (``clock_timestamp()``), so the hosts' clocks
never matter. An instance is **alive** while its heartbeat is younger than its lease and it has
neither stopped nor been taken over.

The work it takes carries its name (``owner`` of ``invoices``, ``files``, ``cancel_requests``):
its queries of work to do read only its own rows (``SqliteBase._mine``) and no transition of an
invoice happens under another instance's name (``NotOwner``). ``sweep`` is the takeover: the
instances whose lease ran out are marked taken over, and every unfinished row that no live
instance carries (theirs, or nobody's: a ``cancel`` command's request, a migrated journal) becomes
the sweeper's, which then resumes it as it resumes its own after a restart: sealed bytes resent
as they are after asking the PAC by referencia, never sealed again. One sweep at a time
(a transaction advisory lock), so two sweepers never split a dead instance's work. An instance
whose heartbeat finds it was taken over (it was stalled longer than its lease) has lost its work
and must stop at once (``heartbeat`` returns False).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from typing import Any

from connector.journal.model import ACUSE_MISSING, CANCEL_OPEN, FileState, JournalError, State
from connector.journal.postgres.base import PostgresBase

_NOW = "EXTRACT(EPOCH FROM clock_timestamp())::DOUBLE PRECISION"
# the instances alive now (a subquery)
_LIVE = (
    "SELECT name FROM instances WHERE taken_over_by IS NULL AND stopped_at IS NULL "
    f"AND heartbeat_at + lease_seconds >= {_NOW}"
)
SWEEP_LOCK = 0x4346444953575050  # pg_try_advisory_xact_lock's key for a sweep ("CFDISWPP")
MOVE_LOCK = 0x434644494D4F5645  # pg_try_advisory_lock's key for moving files ("CFDIMOVE")

_OPEN_INVOICE = (
    f"(state NOT IN ('{State.DELIVERED}', '{State.FAILED}') "
    f"OR (state = '{State.DELIVERED}' AND error_code = '{ACUSE_MISSING}'))"
)
_OPEN_FILE = f"state IN ('{FileState.CLAIMED}', '{FileState.ARCHIVING}', '{FileState.FAILING}')"
_OPEN_REQUEST = (
    "(state IN (" + ", ".join(f"'{s}'" for s in CANCEL_OPEN) + ") OR error_code = 'CONN-FILE')"
)

# each table of work and what of it is unfinished
_OPEN = (("invoices", _OPEN_INVOICE), ("files", _OPEN_FILE), ("cancel_requests", _OPEN_REQUEST))


def _running(pid: int) -> bool:
    """Whether process ``pid`` runs on this host (POSIX; elsewhere the local lock decides)."""
    if os.name != "posix" or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's: it runs
        return True
    return True


class InstanceTaken(JournalError):
    """Another process runs under this instance's name on another host."""


class Instances(PostgresBase):
    """``instances``: joining, heartbeats, leaving, the takeover sweep and the list ``status``
    shows."""

    shared = True
    _token: str | None = None
    _lease: float | None = None

    def join(self, name: str, *, lease_seconds: float, host: str, pid: int) -> None:
        """Register this run as instance ``name`` and take its name for the rows it takes.
        The same name alive on another host, or in another process still running on this
        one (two configurations naming the same instance), is refused (``InstanceTaken``);
        a previous run of this configuration is gone (the local lock says so)."""
        token = secrets.token_hex(8)
        with self._tx() as db:
            row = db.execute(
                f"SELECT host, heartbeat_at + lease_seconds >= {_NOW} AND stopped_at IS NULL "
                "AND taken_over_by IS NULL, pid FROM instances WHERE name=? FOR UPDATE",
                (name,),
            ).fetchone()
            if row is not None and row[1] and (
                row[0] != host or (row[2] != pid and _running(int(row[2])))
            ):
                where = row[0] if row[0] != host else f"este equipo (pid {row[2]})"
                raise InstanceTaken(
                    f"La instancia {name!r} ya está en marcha en {where}: cada instancia "
                    "necesita su propio nombre (run --instance NOMBRE)."
                )
            db.execute(
                "INSERT INTO instances (name, host, pid, token, started_at, heartbeat_at, "
                f"lease_seconds) VALUES (?, ?, ?, ?, {_NOW}, {_NOW}, ?) "
                "ON CONFLICT (name) DO UPDATE SET host=excluded.host, pid=excluded.pid, "
                "token=excluded.token, started_at=excluded.started_at, "
                "heartbeat_at=excluded.heartbeat_at, lease_seconds=excluded.lease_seconds, "
                "stopped_at=NULL, taken_over_by=NULL, taken_over_at=NULL",
                (name, host, pid, token, lease_seconds),
            )
            # the work nobody carries (a journal migrated from SQLite, a command's request)
            # needs no lease to run out: it is this instance's at once
            for table, open_ in _OPEN:
                db.execute(f"UPDATE {table} SET owner=? WHERE owner IS NULL AND {open_}", (name,))
        self.owner, self._token, self._lease = name, token, lease_seconds

    def heartbeat(self) -> bool:
        """This instance is alive; False when another one took its work over (it must stop
        at once: what it holds is another's now). A journal that does not answer within a
        third of the lease raises (``connector.journal.journal_away`` says which errors)."""
        assert self._lease is not None, "join() first"
        with self._tx(flush=False, timeout=max(1.0, self._lease / 3.0)) as db:
            cur = db.execute(
                f"UPDATE instances SET heartbeat_at={_NOW} WHERE name=? AND token=? "
                "AND taken_over_by IS NULL",
                (self.owner, self._token),
            )
            return bool(cur.rowcount)

    def leave(self) -> None:
        """A clean stop: the others may take over what is left at once."""
        with self._tx() as db:
            db.execute(
                f"UPDATE instances SET stopped_at={_NOW} WHERE name=? AND token=?",
                (self.owner, self._token),
            )

    def sweep(self) -> dict[str, Any]:
        """Take over the unfinished work no live instance carries, in one transaction; what
        was taken: ``{"instances": [newly marked], "invoices": n, "files": n, "requests": n,
        "gone": [every instance not alive]}`` (nothing when another sweep runs now). The files
        in the work folders of the ``gone`` are moved afterwards (``moving``), never inside
        this transaction."""
        me = self.owner
        assert me is not None, "join() first"
        with self._tx() as db:
            got = db.execute("SELECT pg_try_advisory_xact_lock(?)", (SWEEP_LOCK,)).fetchone()
            if not got or not got[0]:
                return {"instances": [], "invoices": 0, "files": 0, "requests": 0, "gone": []}
            # one instant for the whole sweep: a lease running out between two of its
            # statements would give away a live instance's rows or files (never marked)
            (now,) = db.execute(f"SELECT {_NOW}").fetchone()
            live = (
                "SELECT name FROM instances WHERE taken_over_by IS NULL AND stopped_at IS NULL "
                "AND heartbeat_at + lease_seconds >= ?"
            )
            dead = db.execute(
                "UPDATE instances SET taken_over_by=?, taken_over_at=? "
                "WHERE name<>? AND taken_over_by IS NULL "
                "AND (stopped_at IS NOT NULL OR heartbeat_at + lease_seconds < ?) "
                "RETURNING name",
                (me, now, me, now),
            ).fetchall()
            taken: dict[str, Any] = {"instances": sorted(r[0] for r in dead)}
            for (table, open_), key in zip(_OPEN, ("invoices", "files", "requests"), strict=True):
                cur = db.execute(
                    f"UPDATE {table} SET owner=? WHERE {open_} "
                    f"AND (owner IS NULL OR owner NOT IN ({live}))",
                    (me, now),
                )
                taken[key] = cur.rowcount
            taken["gone"] = [
                r[0]
                for r in db.execute(f"SELECT name FROM instances WHERE name NOT IN ({live})", (now,))
            ]
        return taken

    @contextlib.contextmanager
    def moving(self) -> Iterator[bool]:
        """Whether this instance may move the files nobody's journal row names out of the
        work folders of instances not alive (True: it holds the session lock for that, on a
        connection of its own outside any transaction, until the block ends; False: another
        instance is moving them now)."""
        with self._pool.connection() as conn:
            got = conn.execute("SELECT pg_try_advisory_lock(%s)", (MOVE_LOCK,)).fetchone()
            try:
                yield bool(got and got[0])
            finally:
                if got and got[0]:
                    conn.execute("SELECT pg_advisory_unlock(%s)", (MOVE_LOCK,))

    def open_work_paths(self) -> set[str]:
        """The work paths of every unfinished file, whoever carries it."""
        rows = self._db.execute(f"SELECT work_path FROM files WHERE {_OPEN_FILE}").fetchall()
        return {r[0] for r in rows}

    def _alive(self, db: Any, name: str) -> bool:
        return (
            db.execute(
                f"SELECT 1 FROM instances WHERE name IN ({_LIVE}) AND name=?", (name,)
            ).fetchone()
            is not None
        )

    def instances(self) -> list[dict[str, Any]]:
        """Every instance the journal knows, with its open work (``status``)."""
        rows = self._db.execute(
            f"SELECT i.name, i.host, i.pid, i.started_at, i.heartbeat_at, i.lease_seconds, "
            f"i.stopped_at, i.taken_over_by, {_NOW}, "
            f"(SELECT COUNT(*) FROM invoices WHERE owner=i.name AND {_OPEN_INVOICE}), "
            f"(SELECT COUNT(*) FROM files WHERE owner=i.name AND {_OPEN_FILE}) "
            "FROM instances i ORDER BY i.name"
        ).fetchall()
        out = []
        for name, host, pid, started, beat, lease, stopped, taken_by, now, inv, files in rows:
            alive = stopped is None and taken_by is None and beat + lease >= now
            out.append(
                {
                    "name": name,
                    "host": host,
                    "pid": pid,
                    "alive": alive,
                    "started_at": started,
                    "heartbeat_age_seconds": round(now - beat, 1),
                    "lease_seconds": lease,
                    "stopped": stopped is not None,
                    "taken_over_by": taken_by,
                    "open_invoices": inv,
                    "open_files": files,
                }
            )
        return out
