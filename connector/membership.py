"""This connector among the others sharing a PostgreSQL journal (issue 16): its heartbeat and
the takeover of a stopped instance's work.

``Membership`` runs one thread. Every third of the lease (``[daemon] instance_lease_seconds``)
it writes the heartbeat (``journal.heartbeat``); once its own heartbeats have gone through for a
whole lease — so after an outage of the database it never mistakes the others, whose
heartbeats could not go through either, for dead — it sweeps (``journal.sweep``, one
transaction): the rows of instances whose lease ran out (and rows nobody carries) become this
instance's. Their files stay in the dead instance's work folder (``<work>/<instance>/``: a
folder source's claims, one folder per instance) until the row's new owner brings each claim
into its own (``adapters.work_folders``, when it resumes the file); the entries no row
names (a kill between a claim's rename and its row) are moved by one instance at a time,
outside any transaction (``_move_unknown``). The pipeline then resumes what it got as after
its own restart (``take_pending``). While its heartbeats do not go through for two thirds of
the lease it takes no new work and sends nothing (``fenced``).

A heartbeat that finds this instance taken over (it stalled longer than its lease: the others
took its work) calls ``on_lost``: the daemon exits at once, as after a crash, and its service
manager starts it again with nothing of its own.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from connector.adapters.work_folders import claim_group
from connector.config import safe_name
from connector.journal import journal_away

log = structlog.get_logger("connector.membership")


def per_instance_work(cfg: Any, instance: str) -> Any:
    """With a shared journal each instance claims a folder source's files into its own
    ``<work>/<instance>/``: a restart resumes only its own, and a takeover knows whose
    they were. A SQLite journal keeps ``<work>/`` (one connector)."""
    if cfg.daemon.journal_url is None:
        return cfg
    sources = [
        s.model_copy(update={"work": s.work / safe_name(instance)})
        if s.kind == "folder" and s.work is not None
        else s
        for s in cfg.sources
    ]
    return cfg.model_copy(update={"sources": sources})


class Membership:
    """``start()`` (joins, then beats on its thread), ``take_pending()`` from the loop,
    ``stop()`` (a clean stop: the others may take over what is left at once)."""

    def __init__(
        self,
        journal: Any,
        name: str,
        lease_seconds: float,
        work_folders: Callable[[], list[Path]],
        *,
        on_lost: Callable[[], None],
        wake: threading.Event,
    ) -> None:
        self.journal = journal
        self.name = name
        self.lease = lease_seconds
        self.work_folders = work_folders  # this instance's work folder of each folder source
        self.on_lost = on_lost
        self.wake = wake
        self._stop = threading.Event()
        self._poke = threading.Event()  # beat now (stop, or the journal found away)
        self._pending = threading.Event()
        self._back = threading.Event()  # the journal answered again after an outage
        self._thread: threading.Thread | None = None
        self.healthy_since: float | None = None  # heartbeats going through since
        self.down_since: float | None = None  # the journal unreachable since (monotonic)
        self.last_beat = time.monotonic()  # the last heartbeat that went through
        self.last_taken: dict[str, Any] = {}

    def start(self) -> None:
        self.journal.join(
            self.name, lease_seconds=self.lease, host=socket.gethostname(), pid=os.getpid()
        )
        self.healthy_since = self.last_beat = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="cfdi-membership", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._poke.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        try:
            self.journal.leave()
        except Exception:  # the database away: the lease runs out instead
            log.warning("instance_leave_failed", instance=self.name, exc_info=True)

    @staticmethod
    def _taken(flag: threading.Event) -> bool:
        if flag.is_set():
            flag.clear()
            return True
        return False

    def take_pending(self) -> bool:
        """Whether a sweep gave this instance work since the last call (the loop resumes it)."""
        return self._taken(self._pending)

    def take_back(self) -> bool:
        """Whether the journal came back from an outage since the last call."""
        return self._taken(self._back)

    def note_away(self, exc: BaseException) -> None:
        """The journal could not be reached (here, or by the loop or a worker): said once,
        coded; heartbeats every second until it answers again (``journal_back``)."""
        self.healthy_since = None
        if self.down_since is not None:
            return
        self.down_since = time.monotonic()
        log.error(
            "journal_unreachable",
            instance=self.name,
            code="CONN-DIARIO-CAIDO",
            message=(
                "El diario compartido en PostgreSQL no responde: el trabajo que lo necesita "
                "espera y se reanuda solo cuando vuelva (nada se pierde). "
                f"Detalle: {str(exc).strip() or type(exc).__name__}"
            ),
        )
        self._poke.set()

    def pend(self) -> None:
        """What a sweep gave is to be resumed again (the last resume failed)."""
        self._pending.set()

    def _run(self) -> None:
        every = self.lease / 3.0
        while True:
            self._poke.wait(every if self.down_since is None else min(every, 1.0))
            self._poke.clear()
            if self._stop.is_set():
                return
            self.beat()

    def beat(self) -> None:
        """One heartbeat, and a sweep when this instance has seen the others for a lease."""
        try:
            alive = self.journal.heartbeat()
        except Exception as exc:  # the database away: the others cannot beat either
            self.note_away(exc)
            return
        self.last_beat = time.monotonic()
        if self.down_since is not None:
            log.warning("journal_back", instance=self.name,
                        seconds=round(time.monotonic() - self.down_since, 1))  # fmt: skip
            self.down_since = None
            self._back.set()
        if not alive:
            log.error(
                "instance_taken_over",
                instance=self.name,
                code="CONN-INSTANCIA-RELEVADA",
                message=(
                    f"Otra instancia tomó el trabajo de {self.name} porque dejó de dar señales "
                    f"de vida más de {self.lease:g} s; esta se detiene sin tocar nada más."
                ),
            )
            self._stop.set()
            self.on_lost()
            return
        now = time.monotonic()
        if self.healthy_since is None:
            self.healthy_since = now
        if now - self.healthy_since < self.lease:
            return
        try:
            taken = self.journal.sweep()
            moved = self._move_unknown(taken.pop("gone"))
        except Exception as exc:
            if journal_away(exc):
                self.note_away(exc)
            else:
                log.exception("takeover_failed", instance=self.name)
            return
        if taken["instances"] or taken["invoices"] or taken["files"] or taken["requests"] \
                or moved:  # fmt: skip
            self.last_taken = {**taken, "moved": moved}
            log.warning("takeover", instance=self.name, **self.last_taken)
            self._pending.set()
            self.wake.set()

    def fenced(self) -> bool:
        """Whether this instance should take no new work nor send: its last heartbeat that
        went through is older than two thirds of its lease (the others may take it over
        soon: a half-open connection, a stall)."""
        return time.monotonic() - self.last_beat > self.lease * 2.0 / 3.0

    def _move_unknown(self, gone: list[str]) -> int:
        """The claims in the work folders of instances not alive (``gone``, and ``<work>/``
        itself: claimed while the journal was a single connector's) that no journal row
        names — a kill between the rename and its row, a pair or set half claimed — moved
        into this one's folder, to be taken up as after its own restart; returns how many
        entries. Those a row names are brought by the row's owner (``bring_claim``). One
        instance moves at a time, outside any transaction (``journal.moving``)."""
        found = [
            (folder / entry, mine / entry)
            for mine in self.work_folders()
            for folder in [mine.parent / safe_name(n) for n in gone] + [mine.parent]
            if folder != mine and folder.is_dir()
            for entry in sorted(os.listdir(folder))
            if folder != mine.parent or (folder / entry).is_file()  # not an instance's folder
        ]
        if not found:
            return 0
        with self.journal.moving() as ours:
            if not ours:
                return 0
            named = {claim_group(Path(p).name) for p in self.journal.open_work_paths()}
            # a claim a row names is brought by that row's owner
            return sum(self._move(e, t) for e, t in found if claim_group(e.name) not in named)

    def _move(self, entry: Path, target: Path) -> int:
        if target.exists():
            log.error("takeover_name_taken", file=str(entry), target=str(target))
            return 0
        try:
            os.rename(entry, target)
        except FileNotFoundError:  # finished meanwhile
            return 0
        except OSError as exc:  # held by another program (antivirus), permissions: next sweep
            log.warning("takeover_move_failed", file=str(entry), error=str(exc))
            return 0
        return 1


class SharedJournal:
    """The pipeline's side of a shared journal (mixed into ``connector.pipeline.Pipeline``):
    joining the instances, the journal's outage, the fence, being taken over, and resuming
    what a sweep gave."""

    cfg: Any
    journal: Any
    instance: str
    membership: Membership | None
    wake: threading.Event
    stopping: threading.Event
    files: Any
    on_lost: Callable[[], None]

    if TYPE_CHECKING:  # the pipeline's and the invoice flow's (never defined here: the
        # mixin comes first in the pipeline's bases)

        def close(self, *, wait: bool = True) -> None: ...

        def _dispatch_unfinished(self) -> None: ...

    def _join(self) -> None:
        """Join the instances sharing the journal (its rows carry this one's name from now)."""
        from connector.cfdi.errors import Problem
        from connector.flow.runtime import PipelineError
        from connector.journal.postgres import InstanceTaken

        assert self.journal is not None
        d = self.cfg.daemon
        self.membership = Membership(
            self.journal,
            self.instance,
            d.instance_lease_seconds,
            lambda: [s.work for s in self.cfg.sources if s.kind == "folder" and s.work],
            on_lost=lambda: self.on_lost(),
            wake=self.wake,
        )
        try:
            self.membership.start()
        except InstanceTaken as exc:
            self.membership = None
            self.close()
            raise PipelineError([Problem("CONN-INSTANCIA", "daemon.instance", str(exc))]) from exc
        except Exception as exc:
            self.membership = None
            self.close()
            raise PipelineError(
                [Problem("CONN-DIARIO", "daemon.journal", f"No se puede usar el diario: {exc}")]
            ) from exc

    def journal_away(self, exc: BaseException) -> None:
        """The shared journal's server could not be reached: the work waits for it (said
        once, with ``CONN-DIARIO-CAIDO``, by the membership); or it rolled a transaction back
        for another's (a deadlock between two instances): the unit is done again."""
        if not journal_away(exc):
            log.warning("journal_retry", error=str(exc).strip().splitlines()[0])
        elif self.membership is not None:
            self.membership.note_away(exc)
        else:
            log.warning("journal_unreachable", code="CONN-DIARIO-CAIDO", error=str(exc).strip())

    def fenced(self) -> bool:
        """Whether this instance must take no new work nor send now (its heartbeats have not
        gone through for two thirds of its lease: the others may take it over soon)."""
        return self.membership is not None and self.membership.fenced()

    def _lost(self) -> None:
        """Taken over (see ``connector.membership``): nothing more is taken or advanced."""
        self.stopping.set()
        self.wake.set()

    def _take_over(self) -> None:
        """What a sweep made this instance's: files moved into its work folder, invoices,
        cancellation requests — resumed as after a restart of its own."""
        log.info("resume_taken_over", instance=self.instance)
        self.files.resume()
        self._dispatch_unfinished()
        self.wake.set()

