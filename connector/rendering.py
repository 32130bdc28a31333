"""The representación impresa (PDF) for the daemon's outputs, rendered in worker processes.

Rendering a PDF costs ~15–50 ms of CPU, ten times everything else the daemon does for an
invoice; in the daemon's threads it would hold the GIL and cap throughput at one core.
``PdfRenderer(processes=N)`` renders in N worker processes (``spawn``: no fork of a process
that has threads, SQLite connections and sockets open) and the calling thread only waits;
``processes=0`` renders in the calling thread. A worker that dies (killed, out of memory) is
replaced: that PDF is rendered again in the calling thread and the pool is made anew for the
next one. Workers that cannot even start (a broken installation: two pools in a row break
before rendering anything) turn the pool off for good
(``pdf_workers_unavailable``, logged once): PDFs are then rendered in the calling thread.

A rendering failure is logged (``pdf_failed``) and gives ``None``: the stamped XML and the
acuse are still delivered (the PDF is a view of the XML and can be made again).
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import structlog

from connector.config import EmisorConfig

log = structlog.get_logger("connector.rendering")

StyleKey = tuple[str | None, str, str]  # (logo path, primary colour, text colour): picklable


def style_key(emisor: EmisorConfig) -> StyleKey:
    p = emisor.pdf
    return (str(p.logo) if p.logo is not None else None, p.primary_color, p.text_color)


_styles: dict[StyleKey, Any] = {}


def render(stamped_xml: bytes, style: StyleKey, cancelled: bool) -> bytes | None:
    """The PDF bytes (raises on a rendering error); None when the PDF module is not installed.
    Runs in a worker process or in the caller's thread."""
    try:
        from connector.cfdi import pdf as pdf_mod
        from connector.cfdi.xmlio import from_xml
    except ImportError:
        return None
    pdf_style = _styles.get(style)
    if pdf_style is None:
        logo, primary, text = style
        pdf_style = pdf_mod.PdfStyle(
            logo_path=Path(logo) if logo else None, primary_color=primary, text_color=text
        )
        _styles[style] = pdf_style
    return pdf_mod.render_pdf(from_xml(stamped_xml), style=pdf_style, cancelled=cancelled)


def render_pdf_bytes(
    stamped_xml: bytes, emisor: EmisorConfig, *, cancelled: bool = False
) -> bytes | None:
    """The PDF in this thread; a failure is logged and gives None."""
    try:
        return render(stamped_xml, style_key(emisor), cancelled)
    except Exception as exc:
        log.error("pdf_failed", error=str(exc))
        return None


def _exit_with_parent() -> None:
    """Worker initializer: end this worker when the daemon ends, even by SIGKILL (a worker
    waiting for work would otherwise wait forever)."""

    def watch() -> None:
        parent = multiprocessing.parent_process()
        if parent is not None:
            parent.join()
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def default_processes() -> int:
    """Worker processes when the configuration does not say: one per core, at most 4."""
    return max(1, min(4, os.cpu_count() or 1))


class PdfRenderer:
    """Renders PDFs in ``processes`` worker processes (started at the first PDF)."""

    def __init__(self, processes: int) -> None:
        self.processes = processes
        self._pool: ProcessPoolExecutor | None = None
        self._pool_worked = False  # the current pool has rendered at least one PDF
        self._dead_pools = 0  # pools in a row that broke before rendering anything
        self._lock = threading.Lock()

    def render(
        self, stamped_xml: bytes, emisor: EmisorConfig, *, cancelled: bool = False
    ) -> bytes | None:
        if self.processes <= 0:
            return render_pdf_bytes(stamped_xml, emisor, cancelled=cancelled)
        pool = self._get_pool()
        if pool is None:
            return render_pdf_bytes(stamped_xml, emisor, cancelled=cancelled)
        try:
            pdf = pool.submit(render, stamped_xml, style_key(emisor), cancelled).result()
        except BrokenProcessPool:
            self._lost(pool)
            return render_pdf_bytes(stamped_xml, emisor, cancelled=cancelled)
        except Exception as exc:
            log.error("pdf_failed", error=str(exc))
            return None
        self._pool_worked = True
        return pdf

    def _lost(self, pool: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is not pool:
                return  # another thread already dealt with it
            self._pool = None
            self._dead_pools = 0 if self._pool_worked else self._dead_pools + 1
            if self._dead_pools < 2:  # a worker died: a new pool for the next PDF
                log.warning("pdf_worker_lost")
            else:  # twice the workers never rendered anything (cannot start): stop trying
                self.processes = 0
                log.error("pdf_workers_unavailable", rendering="in the daemon's threads")
        pool.shutdown(wait=False, cancel_futures=True)

    def _get_pool(self) -> ProcessPoolExecutor | None:
        with self._lock:
            if self._pool is None and self.processes > 0:
                self._pool_worked = False
                self._pool = ProcessPoolExecutor(
                    max_workers=self.processes,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_exit_with_parent,
                )
            return self._pool

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
