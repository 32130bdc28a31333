"""End to end: real folders, the sandbox PAC over HTTP on 127.0.0.1, the real pipeline."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from lxml import etree

from connector.cfdi.model import Comprobante
from connector.cfdi.xmlio import to_xml
from connector.journal import State
from tests.daemon.conftest import dat_file, dat_invoice, stamps_by_key, start_pipeline

NS = {"cfdi": "http://www.sat.gob.mx/cfd/4", "tfd": "http://www.sat.gob.mx/TimbreFiscalDigital"}


def outputs(ws: Path, kind: str) -> list[Path]:
    return sorted(p for p in (ws / "out" / kind).iterdir() if not p.name.startswith("."))


def archived(ws: Path) -> list[str]:
    return sorted(p.name for p in (ws / "archive").rglob("*") if p.is_file())


def test_dat_and_xml_drops_become_stamped_xml_pdf_acuse(workspace: Path, sandbox) -> None:
    ws = workspace.parent
    (ws / "inbox" / "ventas.dat").write_bytes(dat_file("A", [1, 2]))
    # an unsealed CFDI XML written by an ERP: the connector seals it, then stamps it
    from connector.adapters.base import load_invoices

    (inv,) = load_invoices(dat_file("X", [7]), "x.dat", adapter="dat", mapping=None)
    from connector.cfdi.amounts import complete

    (ws / "inbox" / "factura-x7.xml").write_bytes(to_xml(complete(inv.comprobante)))
    pipe = start_pipeline(workspace)
    try:
        assert pipe.run_until_idle(60)
    finally:
        pipe.close()
    xmls = outputs(ws, "xml")
    assert [p.name.split("_")[0] for p in xmls] == ["A1", "A2", "X7"]
    for p in xmls:
        root = etree.fromstring(p.read_bytes())
        tfd = root.find(".//tfd:TimbreFiscalDigital", NS)
        assert (
            tfd is not None
            and p.name == f"{root.get('Serie')}{root.get('Folio')}_{tfd.get('UUID')}.xml"
        )
        assert root.get("Sello") and root.get("NoCertificado") == "30001000000500003416"
    pdfs = outputs(ws, "pdf")
    assert [p.stem for p in pdfs] == [p.stem for p in xmls]
    assert all(p.read_bytes().startswith(b"%PDF") for p in pdfs)
    acuses = outputs(ws, "acuse")
    assert len(acuses) == 3
    for a in acuses:
        etree.fromstring(a.read_bytes())  # whole XML
    assert archived(ws) == ["factura-x7.xml", "ventas.dat"]
    assert list((ws / "inbox").iterdir()) == [] and list((ws / "failed").iterdir()) == []
    keys = stamps_by_key(sandbox.store)
    assert {k: len(v) for k, v in keys.items()} == {("A", "1"): 1, ("A", "2"): 1, ("X", "7"): 1}


def test_bad_invoices_get_error_files_while_good_ones_flow(workspace: Path, sandbox) -> None:
    ws = workspace.parent
    good = dat_invoice("B", "1")
    bad_tipo = dat_invoice("B", "2", tipo="Z")  # not a TipoDeComprobante
    other_rfc = dat_invoice("B", "3", rfc_emisor="AAA010101AAA")  # not this source's emisor
    (ws / "inbox" / "mixto.dat").write_bytes((good + bad_tipo + other_rfc).encode())
    (ws / "inbox" / "basura.xml").write_bytes(b"<no es un cfdi")
    (ws / "inbox" / "buena.dat").write_bytes(dat_file("C", [1]))
    pipe = start_pipeline(workspace)
    try:
        assert pipe.run_until_idle(60)
        j = pipe.journal
        assert j.get(("EKU9003173C9", "B", "1")).state is State.DELIVERED
        failed_b2 = j.get(("EKU9003173C9", "B", "2"))
        assert failed_b2.state is State.FAILED and failed_b2.error_origin == "rules"
    finally:
        pipe.close()
    assert [p.name.split("_")[0] for p in outputs(ws, "xml")] == ["B1", "C1"]
    assert archived(ws) == ["buena.dat"]
    failed = sorted(p.name for p in (ws / "failed").iterdir())
    assert failed == [
        "basura.xml",
        "basura.xml.error.json",
        "basura.xml.error.txt",
        "mixto.dat",
        "mixto.dat.error.json",
        "mixto.dat.error.txt",
    ]
    doc = json.loads((ws / "failed" / "mixto.dat.error.json").read_text(encoding="utf-8"))
    assert doc["delivered"] == ["B1"]
    by_invoice = {}
    for e in doc["errors"]:
        by_invoice.setdefault(e["invoice"] or e["location"], []).append(e["code"])
    assert any(c.startswith("CFDI40") for c in by_invoice["B2"])
    assert "CONN-EMISOR" in by_invoice["B3"]
    assert any(e["location"] == "mixto.dat:12:Rfc" for e in doc["errors"])  # the EMISOR line
    assert all(e["message"] and e["location"].startswith("mixto.dat") for e in doc["errors"])
    text = (ws / "failed" / "mixto.dat.error.txt").read_text(encoding="utf-8")
    assert "factura B2" in text and "mixto.dat:6" in text
    # the errors folder gets the same report
    assert (ws / "out" / "errors" / "mixto.dat.error.txt").read_text(encoding="utf-8") == text
    basura = json.loads((ws / "failed" / "basura.xml.error.json").read_text(encoding="utf-8"))
    assert basura["errors"] and basura["errors"][0]["location"].startswith("basura.xml")
    assert set(stamps_by_key(sandbox.store)) == {("B", "1"), ("C", "1")}


def test_same_export_twice_one_uuid_and_edited_reexport_is_folio_usado(
    workspace: Path, sandbox
) -> None:
    ws = workspace.parent
    export = dat_file("D", [1, 2])
    (ws / "inbox" / "d.dat").write_bytes(export)
    pipe = start_pipeline(workspace)
    try:
        assert pipe.run_until_idle(60)
        first = sorted(p.name for p in outputs(ws, "xml"))
        (ws / "inbox" / "d.dat").write_bytes(export)  # dropped again, same content
        assert pipe.run_until_idle(60)
        assert sorted(p.name for p in outputs(ws, "xml")) == first  # delivered again, same UUID
        edited = dat_invoice("D", "1", precio="999.00") + dat_invoice("D", "3")
        (ws / "inbox" / "d-corregido.dat").write_bytes(edited.encode())
        assert pipe.run_until_idle(60)
        uuid_d1 = pipe.journal.get(("EKU9003173C9", "D", "1")).uuid
    finally:
        pipe.close()
    keys = stamps_by_key(sandbox.store)
    assert {k: len(v) for k, v in keys.items()} == {("D", "1"): 1, ("D", "2"): 1, ("D", "3"): 1}
    assert sorted(archived(ws)) == ["d-1.dat", "d.dat"] or sorted(archived(ws)) == [
        "d.dat",
        "d-1.dat",
    ]
    doc = json.loads((ws / "failed" / "d-corregido.dat.error.json").read_text(encoding="utf-8"))
    (err,) = doc["errors"]
    assert err["code"] == "CONN-FOLIO-USADO"
    assert "'D'" in err["message"] and "'1'" in err["message"] and uuid_d1 in err["message"]
    assert doc["delivered"] == ["D3"]


def test_file_dropped_while_down_is_taken_at_start_and_slow_writes_wait(
    tmp_path: Path, sandbox
) -> None:
    from tests.daemon.conftest import write_config

    config = write_config(
        tmp_path / "ws2",
        timbrado_url=sandbox.fel_timbrado_url,
        stable_seconds=0.6,
        poll=0.05,
    )
    ws = config.parent
    (ws / "inbox" / "antes.dat").write_bytes(dat_file("E", [1]))  # daemon not running yet
    pipe = start_pipeline(config)
    stop = threading.Event()
    runner = threading.Thread(target=pipe.run, args=(stop,))
    runner.start()
    try:
        # a file written slowly, in chunks, must never be taken half-written
        content = dat_file("F", list(range(1, 11)))
        chunks = [content[i : i + 97] for i in range(0, len(content), 97)]
        target = ws / "inbox" / "lento.dat"
        with open(target, "wb") as fh:
            for chunk in chunks:
                fh.write(chunk)
                fh.flush()
                stop.wait(0.15)
        for _ in range(400):
            if len(pipe.finished) >= 2:
                break
            stop.wait(0.05)
    finally:
        stop.set()
        runner.join(30)
        pipe.close()
    assert sorted(o.name for o in pipe.finished) == ["antes.dat", "lento.dat"]
    assert all(not o.errors for o in pipe.finished)
    keys = stamps_by_key(sandbox.store)
    assert sorted(keys) == [("E", "1")] + [("F", str(i)) for i in sorted(range(1, 11), key=str)]
    assert all(len(v) == 1 for v in keys.values())


def test_transient_and_ambiguous_pac_failures_end_with_one_uuid(workspace: Path, sandbox) -> None:
    ws = workspace.parent
    sandbox.faults.add("http500", times=3, operations={"TimbrarCFDI"})
    sandbox.faults.add("reply_lost", times=2, operations={"TimbrarCFDI"})
    sandbox.faults.add("drop", times=2, operations={"TimbrarCFDI"})
    (ws / "inbox" / "g.dat").write_bytes(dat_file("G", [1, 2, 3, 4]))
    pipe = start_pipeline(workspace)
    try:
        assert pipe.run_until_idle(90)
        states = {e.folio: e.state for e in pipe.journal.in_state(*State)}
    finally:
        pipe.close()
    assert states == {str(i): State.DELIVERED for i in range(1, 5)}
    keys = stamps_by_key(sandbox.store)
    assert {k: len(v) for k, v in keys.items()} == {("G", str(i)): 1 for i in range(1, 5)}
    assert sandbox.faults.fired["reply_lost"] == 2
    assert archived(ws) == ["g.dat"]


def test_remote_mode_pac_builds_and_stamps(tmp_path: Path, sandbox) -> None:
    from tests.daemon.conftest import write_config

    extra = """
[[sources]]
name = "remoto"
inbox = "inbox-remoto"
adapter = "dat"
include = ["*.txt"]
emisor = "EKU9003173C9"
pac = "sandbox"
mode = "remote"
stable_seconds = 0
archive = "archive"
failed = "failed"
[sources.output]
xml = "out/xml"
"""
    config = write_config(
        tmp_path / "ws3",
        timbrado_url=sandbox.fel_timbrado_url,
        remote_url=sandbox.fel_remote_url,
        extra_sources=extra,
    )
    ws = config.parent
    (ws / "inbox-remoto").mkdir()
    (ws / "inbox-remoto" / "r.txt").write_bytes(dat_file("R", [1]))
    pipe = start_pipeline(config)
    try:
        assert pipe.run_until_idle(60)
        e = pipe.journal.get(("EKU9003173C9", "R", "1"))
    finally:
        pipe.close()
    assert e.state is State.DELIVERED and e.mode == "remote"
    c = Comprobante.model_validate_json(e.payload)  # the data sent, not a sealed XML
    assert c.Folio == "1"
    (out,) = outputs(ws, "xml")
    assert e.uuid in out.name
    assert {k: len(v) for k, v in stamps_by_key(sandbox.store).items()} == {("R", "1"): 1}


def test_finkok_pac_kind_stamps_too(tmp_path: Path, sandbox) -> None:
    from tests.daemon.conftest import write_config

    extra = f"""
[[pacs]]
name = "finkok"
kind = "finkok"
url = "{sandbox.finkok_stamp_url}"
usuario = "demo"
password_file = "pac.pw"

[[sources]]
name = "fk"
inbox = "inbox-fk"
adapter = "dat"
include = ["*.dat"]
emisor = "EKU9003173C9"
pac = "finkok"
stable_seconds = 0
archive = "archive"
failed = "failed"
[sources.output]
xml = "out/xml"
"""
    config = write_config(
        tmp_path / "ws4", timbrado_url=sandbox.fel_timbrado_url, extra_sources=extra
    )
    ws = config.parent
    (ws / "inbox-fk").mkdir()
    (ws / "inbox-fk" / "fk.dat").write_bytes(dat_file("FK", [1, 2]))
    pipe = start_pipeline(config)
    try:
        assert pipe.run_until_idle(60)
    finally:
        pipe.close()
    assert [p.name.split("_")[0] for p in outputs(ws, "xml")] == ["FK1", "FK2"]
    assert {k: len(v) for k, v in stamps_by_key(sandbox.store).items()} == {
        ("FK", "1"): 1,
        ("FK", "2"): 1,
    }


def test_done_marker_source_waits_for_the_marker_and_archives_it(tmp_path: Path, sandbox) -> None:
    from tests.daemon.conftest import write_config

    extra = """
[[sources]]
name = "marcado"
inbox = "inbox-m"
adapter = "dat"
include = ["*.dat"]
emisor = "EKU9003173C9"
pac = "sandbox"
done_marker = ".listo"
archive = "archive"
failed = "failed"
[sources.output]
xml = "out/xml"
"""
    config = write_config(
        tmp_path / "ws5", timbrado_url=sandbox.fel_timbrado_url, extra_sources=extra
    )
    ws = config.parent
    inbox = ws / "inbox-m"
    inbox.mkdir()
    (inbox / "m.dat").write_bytes(dat_file("M", [1]))
    pipe = start_pipeline(config)
    try:
        for _ in range(5):
            assert pipe.poll_once() == 0  # no marker yet: never taken, however stable
        assert (inbox / "m.dat").exists()
        (inbox / "m.dat.listo").write_bytes(b"")
        assert pipe.poll_once() == 1
        for _ in range(600):
            if pipe.finished:
                break
            pipe.poll_once()
            pipe.wake.wait(0.05)
    finally:
        pipe.close()
    assert sorted(p.name for p in (ws / "archive").rglob("*") if p.is_file()) == [
        "m.dat",
        "m.dat.listo",
    ]
    assert list(inbox.iterdir()) == []
    assert [p.name.split("_")[0] for p in outputs(ws, "xml")] == ["M1"]


def test_sealed_xml_drop_is_sent_as_is_and_series_are_enforced(workspace: Path, sandbox) -> None:
    from connector.adapters.base import load_invoices
    from connector.cfdi.amounts import complete
    from connector.cfdi.csd import Csd
    from connector.cfdi.seal import seal_xml
    from tests.daemon.conftest import DEMO_CSD

    ws = workspace.parent
    text = workspace.read_text(encoding="utf-8").replace(
        'password_file = "csd.pw"', 'password_file = "csd.pw"\nseries = ["S", "A"]', 1
    )
    workspace.write_text(text, encoding="utf-8")
    csd = Csd.from_files(f"{DEMO_CSD}.cer", f"{DEMO_CSD}.key", "12345678a")
    (inv,) = load_invoices(dat_file("S", [5]), "s.dat", adapter="dat", mapping=None)
    sealed = seal_xml(to_xml(complete(inv.comprobante)), csd)
    (ws / "inbox" / "sellada.xml").write_bytes(sealed)
    (ws / "inbox" / "otra-serie.dat").write_bytes(dat_file("Q", [1]))
    pipe = start_pipeline(workspace)
    try:
        assert pipe.run_until_idle(60)
        e = pipe.journal.get(("EKU9003173C9", "S", "5"))
    finally:
        pipe.close()
    assert e.state is State.DELIVERED and e.payload == sealed  # never re-sealed
    (out,) = outputs(ws, "xml")
    assert etree.fromstring(out.read_bytes()).get("Sello") == etree.fromstring(sealed).get("Sello")
    doc = json.loads((ws / "failed" / "otra-serie.dat.error.json").read_text(encoding="utf-8"))
    assert [x["code"] for x in doc["errors"]] == ["CONN-SERIE"]


def test_pac_down_invoices_wait_in_work_then_finish_when_it_is_back(
    workspace: Path, sandbox
) -> None:
    ws = workspace.parent
    sandbox.faults.add("http500", times=None, operations={"TimbrarCFDI"})
    (ws / "inbox" / "caida.dat").write_bytes(dat_file("W", [1, 2]))
    pipe = start_pipeline(workspace)
    try:
        for _ in range(400):
            pipe.poll_once()
            waiting = pipe.journal.in_state(State.RETRY_WAIT)
            if len(waiting) == 2:
                break
            pipe.wake.wait(0.05)
        assert {e.error_code for e in waiting} and all(e.attempts >= 1 for e in waiting)
        assert [p.name.split("--")[1] for p in (ws / "work" / "ventas").iterdir()] == ["caida.dat"]
        assert not list((ws / "archive").rglob("caida.dat")) and sandbox.store.count() == 0
        assert sandbox.faults.fired["http500"] >= 2
        sandbox.faults.clear()  # the PAC is back
        assert pipe.run_until_idle(60)
    finally:
        pipe.close()
    assert list((ws / "archive").rglob("caida.dat"))
    assert {k: len(v) for k, v in stamps_by_key(sandbox.store).items()} == {
        ("W", "1"): 1,
        ("W", "2"): 1,
    }


def test_missing_output_folder_delays_delivery_never_loses_the_stamp(
    workspace: Path, sandbox, monkeypatch
) -> None:
    import shutil

    import connector.pipeline as pipeline_mod

    monkeypatch.setattr(pipeline_mod, "_REDELIVER_SECONDS", 0.1)
    ws = workspace.parent
    pipe = start_pipeline(workspace)
    shutil.rmtree(ws / "out" / "acuse")  # someone removed a share while the daemon runs
    (ws / "inbox" / "v.dat").write_bytes(dat_file("V", [1]))
    try:
        for _ in range(400):
            pipe.poll_once()
            e = pipe.journal.get(("EKU9003173C9", "V", "1"))
            if e is not None and e.state is State.STAMPED and not pipe._inflight:
                break
            pipe.wake.wait(0.05)
        assert e.state is State.STAMPED and e.uuid  # stamped once, not delivered yet
        assert list((ws / "work" / "ventas").iterdir())
        (ws / "out" / "acuse").mkdir()  # the folder is back
        assert pipe.run_until_idle(60)
        assert pipe.journal.get(("EKU9003173C9", "V", "1")).state is State.DELIVERED
    finally:
        pipe.close()
    assert [p.name for p in outputs(ws, "acuse")] == [f"V1_{e.uuid}_acuse.xml"]
    assert {k: len(v) for k, v in stamps_by_key(sandbox.store).items()} == {("V", "1"): 1}


def test_circuit_breaker_opens_while_the_pac_fails_and_closes_after(
    workspace: Path, sandbox
) -> None:
    ws = workspace.parent
    text = workspace.read_text(encoding="utf-8").replace(
        "failure_threshold = 50", "failure_threshold = 2"
    )
    workspace.write_text(text, encoding="utf-8")
    sandbox.faults.add("http500", times=None, operations={"TimbrarCFDI"})
    (ws / "inbox" / "cb.dat").write_bytes(dat_file("CB", [1, 2, 3]))
    pipe = start_pipeline(workspace)
    try:
        for _ in range(400):
            pipe.poll_once()
            if pipe.pacs["sandbox"].state()["state"] == "open":
                break
            pipe.wake.wait(0.02)
        assert pipe.pacs["sandbox"].state()["state"] == "open"
        pipe.write_status()
        status = json.loads(pipe.status_path().read_text(encoding="utf-8"))
        assert status["pacs"]["sandbox"]["state"] == "open"
        sandbox.faults.clear()
        assert pipe.run_until_idle(60)
        assert pipe.pacs["sandbox"].state()["state"] == "closed"
    finally:
        pipe.close()
    assert {k: len(v) for k, v in stamps_by_key(sandbox.store).items()} == {
        ("CB", "1"): 1,
        ("CB", "2"): 1,
        ("CB", "3"): 1,
    }


def test_back_pressure_waits_for_room_and_everything_finishes(workspace: Path, sandbox) -> None:
    """With at most one invoice in flight the scanner waits (woken by the worker that ends,
    not by polling) before taking the next file; every file still ends stamped once."""
    from connector.config import check_config
    from connector.pipeline import Pipeline

    ws = workspace.parent
    sandbox.latency = 0.05
    for n in range(1, 7):
        (ws / "inbox" / f"v{n}.dat").write_bytes(dat_file("B", [n]))
    cfg, problems = check_config(workspace)
    assert cfg is not None, problems
    pipe = Pipeline(cfg, max_inflight=1)
    pipe.start()
    seen: list[int] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            seen.append(len(pipe._inflight))
            done.wait(0.002)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        assert pipe.run_until_idle(60)
    finally:
        done.set()
        sampler.join()
        pipe.close()
    assert max(seen) == 1  # one file of one invoice at a time
    assert {k: len(v) for k, v in stamps_by_key(sandbox.store).items()} == {
        ("B", str(n)): 1 for n in range(1, 7)
    }
    assert archived(ws) == [f"v{n}.dat" for n in range(1, 7)]


def test_both_copies_of_an_error_report_carry_the_same_time(
    workspace: Path, sandbox, monkeypatch
) -> None:
    """failed/ and the errors folder get one report: the same bytes, even across a second."""
    import datetime as dt

    import connector.adapters.files.finishing
    import connector.sinks

    class Ticking(dt.datetime):
        ticks = 0

        @classmethod
        def now(cls, tz=None):  # type: ignore[no-untyped-def, override]
            cls.ticks += 1  # every call is a second later
            return dt.datetime(2026, 12, 7, 10, 0, 0) + dt.timedelta(seconds=cls.ticks)

    monkeypatch.setattr(connector.sinks, "datetime", Ticking)
    monkeypatch.setattr(connector.adapters.files.finishing, "datetime", Ticking)
    ws = workspace.parent
    (ws / "inbox" / "mala.dat").write_bytes(dat_file("M", [1], precio="-5.00"))
    pipe = start_pipeline(workspace)
    try:
        assert pipe.run_until_idle(60)
    finally:
        pipe.close()
    kept = (ws / "failed" / "mala.dat.error.txt").read_bytes()
    assert b"Fecha: 2026-12-07T10:00:" in kept
    assert (ws / "out" / "errors" / "mala.dat.error.txt").read_bytes() == kept
