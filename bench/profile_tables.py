"""Where the table path's CPU goes: ``bench_tables.case_tables`` with the CPU time of its main
steps measured per thread (``time.thread_time``, user + kernel of the calling thread) around
each call, summed and divided by the invoices; nested steps are included in their parents.

Run from the repository root (PostgreSQL and psqlODBC as for ``bench_tables.py``):

    python bench/profile_tables.py --invoices 1000 --latency 0.15

"main" steps run on the daemon's loop (claim, read, map, admission: rules, seal, journal),
"w:" steps on the 32 workers (the PAC's two calls, the reply's checks, the write-back); the
sum of ``main loop`` and ``workers`` is close to the process CPU printed first.
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_tables as bt  # noqa: E402

acc: dict[str, float] = collections.defaultdict(float)
calls: collections.Counter[str] = collections.Counter()


def _timed(owner: Any, name: str, label: str) -> None:
    f = getattr(owner, name)

    def timed(*a: Any, **k: Any) -> Any:
        t = time.thread_time()
        try:
            return f(*a, **k)
        finally:
            acc[label] += time.thread_time() - t
            calls[label] += 1

    setattr(owner, name, timed)


def _instrument() -> None:
    import requests
    import urllib3

    import connector.cfdi.amounts as amounts
    import connector.cfdi.rules as rules
    import connector.cfdi.xmlio as xmlio
    import connector.flow.admission as admission
    from connector.adapters.table.access import TableAccess
    from connector.adapters.table.runner import TableUnits
    from connector.adapters.table.source import TableSource
    from connector.cfdi.csd import Csd
    from connector.flow.sending import InvoiceFlow
    from connector.journal.sqlite import Journal
    from connector.pac import soap
    from connector.pac.resilience import ResilientPac
    from connector.pipeline import Pipeline

    for owner, name, label in [
        (Pipeline, "run_until_idle", "main loop"),
        (TableSource, "claim_batch", "main: claim + read rows"),
        (TableSource, "load", "main: map rows"),
        (InvoiceFlow, "admit", "main: admission"),
        (admission, "_rule_problems", "main:   rules + XSD limits"),
        (rules, "validate", "main:     rules.validate"),
        (xmlio, "validate_limits", "main:     validate_limits"),
        (admission, "payload", "main:   seal"),
        (Csd, "sign", "main:     RSA sign"),
        (amounts, "complete", "main:   amounts.complete"),
        (admission, "content_hash", "main:   content_hash"),
        (Journal, "admit", "main:   journal.admit"),
        (Journal, "mark_sealed_sending", "main:   journal.mark_sealed_sending"),
        (InvoiceFlow, "_work", "workers"),
        (InvoiceFlow, "_call", "w: PAC stamp call"),
        (ResilientPac, "acuse_envio", "w: PAC acuse call"),
        (soap._QuietTransport, "post", "w:   transport.post (requests)"),
        (requests.Session, "send", "w:     Session.send"),
        (urllib3.connectionpool.HTTPConnectionPool, "urlopen", "w:       urllib3 urlopen"),
        (InvoiceFlow, "_check_reply", "w: reply checks (verify_stamped)"),
        (Journal, "get_id", "w: journal.get_id"),
        (Journal, "mark_stamped", "w: journal.mark_stamped"),
        (Journal, "mark_delivered", "w: journal.mark_delivered"),
        (TableUnits, "deliver", "w: write-back (group commit)"),
        (TableAccess, "_write_rows", "w:   _write_rows"),
        (TableSource, "write_back_many", "w:     the UPDATE + commit (one worker per group)"),
        (Pipeline, "_after_invoice", "w: after_invoice"),
    ]:
        _timed(owner, name, label)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--invoices", type=int, default=1000)
    ap.add_argument("--latency", type=float, default=0.15)
    ap.add_argument("--workers", type=int, default=32)
    a = ap.parse_args()
    _instrument()
    t = bt.case_tables(a.invoices, a.latency, workers=a.workers)
    print(f"latency={a.latency * 1000:.0f}ms invoices={a.invoices}: {t['rate']:.1f}/s, process "
          f"CPU {t['cpu_ms']:.2f} ms/invoice, {t['round_trips']:.2f} round trips/invoice")  # fmt: skip
    n = a.invoices
    for label in acc:
        print(f"{label:52s} {1000 * acc[label] / n:6.3f} ms/invoice  ({calls[label]} calls)")


if __name__ == "__main__":
    main()
