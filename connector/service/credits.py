"""The PAC's remaining credits (timbres), polled on a slow tick.

``CreditsWatch.tick()`` is called by the daemon's main loop; every ``every`` seconds it asks
each watched PAC (``driver.credits()``: FEL's ConsultarCreditos, the sandbox likewise) on a
thread of its own, so a slow PAC never holds the loop (nor the watchdog). Under a PAC's
``credits_warning`` the connector logs ``credits_low`` once per crossing and says so in
``status``, ``/readyz`` (degraded, still 200) and systemd's ``STATUS=``. At zero the PAC itself
refuses to stamp (FEL 905): a coded account error that pauses the PAC, and the invoices wait
resumable (``connector.pipeline``), so nothing here has to stop anything.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import structlog

log = structlog.get_logger("connector.service")


class CreditsWatch:
    def __init__(
        self,
        pipe: Any,
        every: float,
        *,
        on_level: Callable[[str, int], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pipe = pipe
        self.every = every
        self.on_level = on_level  # e.g. the metrics' gauge
        self._clock = clock
        self._next = clock()  # the first poll at the first tick
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.levels: dict[str, int] = {}
        self._low: set[str] = set()
        self._unsupported: set[str] = set()

    def tick(self) -> None:
        now = self._clock()
        if now < self._next or (self._thread is not None and self._thread.is_alive()):
            return
        self._next = now + self.every
        self._thread = threading.Thread(target=self.poll, name="credits", daemon=True)
        self._thread.start()

    def poll(self) -> None:
        """Ask every PAC once (the tick's thread; tests call it directly)."""
        from connector.pac.errors import PacUnsupported

        for name, rt in list(self.pipe.pacs.items()):
            if name in self._unsupported:
                continue
            try:
                credits = rt.driver.credits()
            except PacUnsupported:
                self._unsupported.add(name)
                continue
            except Exception as exc:  # the next tick asks again
                log.info("credits_unavailable", pac=name, error=str(exc))
                continue
            if credits.restantes is None:
                continue
            self._record(name, int(credits.restantes), rt.cfg.credits_warning)

    def _record(self, pac: str, left: int, threshold: int | None) -> None:
        with self._lock:
            self.levels[pac] = left
            low = threshold is not None and left < threshold
            crossed = low and pac not in self._low
            if low:
                self._low.add(pac)
            else:
                self._low.discard(pac)
        if self.on_level is not None:
            self.on_level(pac, left)
        if crossed:
            log.warning("credits_low", pac=pac, credits=left, threshold=threshold,
                        message=self.warning(pac))  # fmt: skip
        log.debug("credits", pac=pac, credits=left)

    def warning(self, pac: str) -> str:
        rt = self.pipe.pacs[pac]
        return (
            f"Al PAC {pac} le quedan {self.levels[pac]} timbres (aviso por debajo de "
            f"{rt.cfg.credits_warning}): compre más antes de que se acaben; sin timbres el PAC "
            "deja de timbrar y las facturas esperan."
        )

    def warnings(self) -> list[str]:
        with self._lock:
            low = sorted(self._low)
        return [self.warning(p) for p in low]

    def snapshot(self) -> dict[str, Any]:
        """For the daemon's status file (``status`` shows it)."""
        with self._lock:
            return {
                pac: {"restantes": n, "aviso": self.pipe.pacs[pac].cfg.credits_warning,
                      "bajo": pac in self._low}
                for pac, n in self.levels.items()
            }  # fmt: skip
