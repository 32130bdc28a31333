"""Issue 12, metrics: ``cfdi_connector_invoices_delivered_again_total`` (an export of an invoice
already stamped, same content, whose outputs are written again), read back with
prometheus_client's own parser from the exposition of a real pipeline's registry."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from connector.config import check_config
from connector.pipeline import Pipeline
from connector.service.metrics import Metrics

NAME = "cfdi_connector_invoices_delivered_again"


def _family(metrics: Metrics) -> dict[str, float]:
    text = generate_latest(metrics.registry).decode("utf-8")
    (fam,) = [f for f in text_string_to_metric_families(text) if f.name == NAME]
    assert fam.type == "counter"
    assert all(s.name == f"{NAME}_total" for s in fam.samples if not s.name.endswith("_created"))
    return {s.labels["source"]: s.value for s in fam.samples if s.name == f"{NAME}_total"}


def test_delivered_again_is_a_counter_per_source_present_from_the_start(workspace: Path) -> None:
    cfg, problems = check_config(workspace)
    assert cfg is not None, problems
    pipe = Pipeline(cfg)
    try:
        metrics = Metrics()
        pipe.metrics = metrics
        metrics.attach(pipe)
        pipe.start()
        names = [s.name for s in cfg.sources]
        assert _family(metrics) == dict.fromkeys(names, 0.0)  # each source's series at 0
        metrics.delivered_again(names[0])
        metrics.delivered_again(names[0])
        metrics.delivered_again("otra")  # a source added by a reload: its own series
        got = _family(metrics)
        assert got[names[0]] == 2.0 and got["otra"] == 1.0
        assert all(got[n] == 0.0 for n in names[1:])
    finally:
        pipe.close()


def test_an_invoice_exported_again_is_counted_as_delivered_again(workspace: Path) -> None:
    """The same invoice exported twice more (same content): stamped once, its outputs written
    again each time, and the counter says 2 for its source."""
    from conftest import dat_file

    cfg, problems = check_config(workspace)
    assert cfg is not None, problems
    pipe = Pipeline(cfg)
    try:
        metrics = Metrics()
        pipe.metrics = metrics
        metrics.attach(pipe)
        pipe.start()
        inbox = workspace.parent / "inbox"
        data = dat_file("M", [7])
        for name in ("uno.dat", "dos.dat", "tres.dat"):
            (inbox / name).write_bytes(data)
            assert pipe.run_until_idle(60)
        assert _family(metrics)["ventas"] == 2.0
    finally:
        pipe.close()
