"""The daemon's figures for monitoring: Prometheus metrics (``prometheus_client``) and the
same figures for ``status --json``.

Names follow Prometheus's conventions: one prefix (``cfdi_connector_``), base units (seconds,
bytes), ``_total`` on counters, labels with bounded values only (source, PAC, operation,
result, stage, state, error code; never a UUID, folio or file name).

What the journal records is read from the journal at each scrape (``journal_figures``), so
``cfdi_connector_invoices_total`` always equals what ``status`` says; what only this process
sees (PAC round trips and their latency, stage durations) is counted where it happens.
"""

from __future__ import annotations

import fnmatch
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

PREFIX = "cfdi_connector"
STAGES = ("parse_map", "validate_seal", "pac_call", "write_back")
# states in which an invoice waits for this connector (not final, not yet stamped)
WAITING_STATES = ("received", "validated", "sealed", "sending", "retry_wait")
_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def journal_size(journal: Path) -> int:
    """Bytes of the journal with its WAL and shared-memory files."""
    total = 0
    for suffix in ("", "-wal", "-shm"):
        with suppress(OSError):
            total += os.stat(f"{journal}{suffix}").st_size
    return total


def inbox_backlog(scfg: Any, now: float | None = None) -> tuple[int, float]:
    """Files waiting in a source's inbox (its include/exclude patterns) and the age in seconds
    of the oldest (0 when none)."""
    now = time.time() if now is None else now
    count, oldest = 0, now
    if scfg.inbox is None:  # a table source: its backlog is in its database
        return 0, 0.0
    try:
        entries = list(os.scandir(scfg.inbox))
    except OSError:
        return 0, 0.0
    marker = (scfg.done_marker or "").lower()
    for entry in entries:
        low = entry.name.lower()
        if low.startswith(".") or (marker and low.endswith(marker)):
            continue
        if not any(fnmatch.fnmatchcase(low, p.lower()) for p in scfg.include):
            continue
        if any(fnmatch.fnmatchcase(low, p.lower()) for p in scfg.exclude):
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            mtime = entry.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        count += 1
        oldest = min(oldest, mtime)
    return count, (max(0.0, now - oldest) if count else 0.0)


def journal_figures(cfg: Any, journal: Any) -> dict[str, Any]:
    """What the journal and the folders say, per source: invoices stamped and failed (by
    code), waiting by state, retries waiting, inbox backlog; and the journal's size."""
    sources: dict[str, dict[str, Any]] = {}
    for s in cfg.sources:
        files, age = inbox_backlog(s)
        sources[s.name] = {
            "stamped": 0,
            "failed": 0,
            "failed_by_code": {},
            "waiting": dict.fromkeys(WAITING_STATES, 0),
            "inbox_files": files,
            "inbox_oldest_seconds": round(age, 3),
        }
    for source, state, code, n in journal.source_counts():
        fig = sources.setdefault(
            source,
            {"stamped": 0, "failed": 0, "failed_by_code": {},
             "waiting": dict.fromkeys(WAITING_STATES, 0), "inbox_files": 0,
             "inbox_oldest_seconds": 0.0},
        )  # fmt: skip
        if state in ("stamped", "delivered"):
            fig["stamped"] += n
        elif state == "failed":
            fig["failed"] += n
            key = code or "?"
            fig["failed_by_code"][key] = fig["failed_by_code"].get(key, 0) + n
        elif state in fig["waiting"]:
            fig["waiting"][state] += n
    return {"sources": sources, "journal_size_bytes": journal_size(cfg.daemon.journal)}


class _InstanceRegistry(CollectorRegistry):
    """A registry whose every sample carries ``connector_instance``: several connectors
    sharing one journal (issue 16) are told apart even behind one scrape address."""

    def __init__(self, instance: str) -> None:
        super().__init__()
        self.instance = instance

    def collect(self) -> Iterator[Any]:
        for metric in super().collect():  # fresh objects at every scrape
            metric.samples = [
                s._replace(labels={**s.labels, "connector_instance": self.instance})
                for s in metric.samples
            ]
            yield metric


class Metrics:
    """The registry one daemon exposes; ``attach(pipe)`` adds what is read at each scrape.
    ``instance``: this connector's name when several share a journal (every sample is
    labelled with it)."""

    def __init__(self, instance: str | None = None) -> None:
        self.registry = CollectorRegistry() if instance is None else _InstanceRegistry(instance)
        self.stage_seconds = Histogram(
            f"{PREFIX}_stage_duration_seconds",
            "Time spent per stage: parse_map, validate_seal, pac_call, write_back.",
            ["stage"],
            registry=self.registry,
            buckets=_LATENCY_BUCKETS,
        )
        self.pac_requests = Counter(
            f"{PREFIX}_pac_requests",
            "Requests to the PAC by operation and result.",
            ["pac", "operation", "result"],
            registry=self.registry,
        )
        self.pac_seconds = Histogram(
            f"{PREFIX}_pac_request_duration_seconds",
            "Latency of the PAC's operations (retries inside one call included).",
            ["pac", "operation"],
            registry=self.registry,
            buckets=_LATENCY_BUCKETS,
        )
        self.invoices_delivered_again = Counter(
            f"{PREFIX}_invoices_delivered_again",
            "Exports of an invoice already stamped (same content) whose outputs were written "
            "again, by source; counted by this process since it started.",
            ["source"],
            registry=self.registry,
        )
        self.credits: dict[str, int] = {}  # pac → credits remaining, when polled

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.stage_seconds.labels(name).observe(time.perf_counter() - start)

    def delivered_again(self, source: str) -> None:
        """The ERP exported again an invoice the journal has stamped with the same content:
        it is not stamped twice, its outputs are written again (the pipeline's
        ``duplicate_delivered_again``)."""
        self.invoices_delivered_again.labels(source).inc()

    def wrap_pac(self, pac: str, submitter: Any) -> Any:
        return MeteredPac(self, pac, submitter)

    def attach(self, pipe: Any, last_tick: Callable[[], float] | None = None) -> None:
        for s in pipe.cfg.sources:  # each source's series present (0) before its first one
            self.invoices_delivered_again.labels(s.name)
        self.registry.register(_PipelineCollector(self, pipe, last_tick))


_OPERATIONS = {
    "submit": "stamp",
    "submit_generate": "stamp_remote",
    "recover": "recover",
    "acuse_envio": "acuse",
    "credits": "credits",
    "cancel": "cancel",
}


def _result(exc: BaseException) -> str:
    from connector.pac.errors import PacAccount, PacCircuitOpen, PacInvalid

    if isinstance(exc, PacAccount):
        return "account_error"
    if isinstance(exc, PacCircuitOpen):
        return "circuit_open"
    if isinstance(exc, PacInvalid):
        return "rejected"
    return "error"


class MeteredPac:
    """The PAC's client as the pipeline sees it, each public operation counted and timed."""

    def __init__(self, metrics: Metrics, pac: str, inner: Any) -> None:
        self._metrics, self._pac, self._inner = metrics, pac, inner

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        op = _OPERATIONS.get(name)
        if op is None or not callable(attr):
            return attr
        m, pac = self._metrics, self._pac

        def call(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                result = attr(*args, **kwargs)
            except Exception as exc:
                m.pac_requests.labels(pac, op, _result(exc)).inc()
                raise
            finally:
                m.pac_seconds.labels(pac, op).observe(time.perf_counter() - start)
            m.pac_requests.labels(pac, op, "ok").inc()
            return result

        return call


class _PipelineCollector(Collector):
    def __init__(self, metrics: Metrics, pipe: Any, last_tick: Callable[[], float] | None) -> None:
        self.metrics, self.pipe, self.last_tick = metrics, pipe, last_tick

    def collect(self) -> Iterator[Any]:
        pipe = self.pipe
        journal = pipe.journal
        if journal is not None:
            try:
                figs = journal_figures(pipe.cfg, journal)
            except Exception:  # the journal closing: this scrape goes without them
                figs = None
            if figs is not None:
                yield from _journal_families(figs)
        tables = getattr(pipe, "tables", None)
        if tables is not None and tables.backlog:
            rows = GaugeMetricFamily(
                f"{PREFIX}_table_rows_waiting",
                "Invoice rows waiting to be claimed in a table source (counted every 15 s).",
                labels=["source"],
            )
            age = GaugeMetricFamily(
                f"{PREFIX}_table_rows_oldest_age_seconds",
                "Age of the oldest invoice row waiting in a table source (by its fecha).",
                labels=["source"],
            )
            for name, (n, seconds) in sorted(tables.backlog.items()):
                rows.add_metric([name], n)
                age.add_metric([name], seconds)
            yield from (rows, age)
        inflight = GaugeMetricFamily(
            f"{PREFIX}_pac_requests_in_flight", "PAC round trips queued or running."
        )
        inflight.add_metric([], pipe.in_flight())
        yield inflight
        circuit = GaugeMetricFamily(
            f"{PREFIX}_pac_circuit_state",
            "Circuit breaker state per PAC (1 for the current state).",
            labels=["pac", "state"],
        )
        paused = GaugeMetricFamily(
            f"{PREFIX}_pac_paused",
            "1 while the PAC refused the account (wrong password, no credits): invoices wait.",
            labels=["pac"],
        )
        for name, rt in list(pipe.pacs.items()):
            snap = rt.state()
            for state in ("closed", "open", "half_open"):
                circuit.add_metric([name, state], 1.0 if snap.get("state") == state else 0.0)
            paused.add_metric([name], 1.0 if snap.get("paused") else 0.0)
        yield circuit
        yield paused
        credits = GaugeMetricFamily(
            f"{PREFIX}_pac_credits", "Credits (timbres) left at the PAC's account.", labels=["pac"]
        )
        for name, n in sorted(self.metrics.credits.items()):
            credits.add_metric([name], n)
        yield credits
        if self.last_tick is not None:
            tick = GaugeMetricFamily(
                f"{PREFIX}_main_loop_last_tick_age_seconds",
                "Seconds since the main loop last turned.",
            )
            tick.add_metric([], max(0.0, time.monotonic() - self.last_tick()))
            yield tick


def _journal_families(figs: dict[str, Any]) -> Iterator[Any]:
    invoices = CounterMetricFamily(
        f"{PREFIX}_invoices",
        "Invoices by source and outcome, as the journal records them.",
        labels=["source", "outcome"],
    )
    failed = CounterMetricFamily(
        f"{PREFIX}_invoices_failed",
        "Invoices failed by source and error code (SAT's CFDI40xxx, the PAC's or CONN-*).",
        labels=["source", "code"],
    )
    waiting = GaugeMetricFamily(
        f"{PREFIX}_invoices_waiting",
        "Invoices not finished yet by source and state.",
        labels=["source", "state"],
    )
    retries = GaugeMetricFamily(
        f"{PREFIX}_retries_waiting", "Invoices waiting for a retry, by source.", labels=["source"]
    )
    backlog = GaugeMetricFamily(
        f"{PREFIX}_inbox_files", "Files waiting in the source's inbox.", labels=["source"]
    )
    oldest = GaugeMetricFamily(
        f"{PREFIX}_inbox_oldest_age_seconds",
        "Age of the oldest file waiting in the source's inbox.",
        labels=["source"],
    )
    for name, fig in sorted(figs["sources"].items()):
        invoices.add_metric([name, "stamped"], fig["stamped"])
        invoices.add_metric([name, "failed"], fig["failed"])
        for code, n in sorted(fig["failed_by_code"].items()):
            failed.add_metric([name, code], n)
        for state, n in fig["waiting"].items():
            waiting.add_metric([name, state], n)
        retries.add_metric([name], fig["waiting"]["retry_wait"])
        backlog.add_metric([name], fig["inbox_files"])
        oldest.add_metric([name], fig["inbox_oldest_seconds"])
    size = GaugeMetricFamily(f"{PREFIX}_journal_size_bytes", "Size of the journal on disk.")
    size.add_metric([], figs["journal_size_bytes"])
    yield from (invoices, failed, waiting, retries, backlog, oldest, size)
