"""Delivery after the stamp: the stamp is in the journal before the acuse round trip starts;
an acuse the PAC cannot give does not hold the invoice back and is fetched later; outputs that cannot be written
leave the invoice stamped with the reason shown by `status`, and it is delivered once the
folder is back."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from connector.cli import main
from connector.journal import State
from tests.daemon.conftest import dat_file, start_pipeline

KEY = ("EKU9003173C9", "A", "1")


def test_stamp_is_in_the_journal_before_the_acuse_is_asked_for(workspace: Path, sandbox) -> None:
    ws = workspace.parent
    sandbox.faults.add("latency", times=None, seconds=1.5, operations="ObtenerAcuseEnvio")
    pipe = start_pipeline(workspace)
    seen: list[State] = []
    try:
        (ws / "inbox" / "v.dat").write_bytes(dat_file("A", [1]))
        done = threading.Event()
        runner = threading.Thread(target=lambda: (pipe.run_until_idle(60), done.set()))
        runner.start()
        for _ in range(200):  # while the acuse call is held by the PAC
            e = pipe.journal.get(KEY)
            if e is not None and e.uuid:
                seen.append(e.state)
                break
            time.sleep(0.05)
        runner.join(60)
        assert done.is_set()
        e = pipe.journal.get(KEY)
    finally:
        pipe.close()
    assert seen == [State.STAMPED]  # the UUID was recorded before the acuse came back
    assert e is not None and e.state is State.DELIVERED and e.acuse
    [acuse] = (ws / "out" / "acuse").glob("A1_*_acuse.xml")
    assert acuse.read_bytes() == e.acuse and e.uuid in acuse.name


def test_acuse_the_pac_cannot_give_does_not_hold_the_invoice_and_comes_later(
    workspace: Path, sandbox, capsys: pytest.CaptureFixture
) -> None:
    ws = workspace.parent
    sandbox.faults.add("http500", times=None, operations="ObtenerAcuseEnvio")
    pipe = start_pipeline(workspace)
    pipe.redeliver_seconds = 0.2
    try:
        (ws / "inbox" / "v.dat").write_bytes(dat_file("A", [1]))
        assert pipe.run_until_idle(60)
        e = pipe.journal.get(KEY)
        assert e is not None and e.state is State.DELIVERED and e.acuse is None
        assert e.error_code == "CONN-ACUSE" and e.uuid and e.uuid in (e.error_message or "")
        assert [p.name for p in (ws / "out" / "xml").glob("A1_*.xml")] == [f"A1_{e.uuid}.xml"]
        assert not list((ws / "out" / "acuse").iterdir())
        assert [p.name for p in (ws / "archive").rglob("*.dat")] == ["v.dat"]
        assert main(["status", "--config", str(workspace)]) == 0
        out = capsys.readouterr().out
        assert "CONN-ACUSE" in out and e.uuid in out
        asked = len(sandbox.store.requests(operation="ObtenerAcuseEnvio"))
        submitter = next(iter(pipe.sources.values())).pac.submitter
        callers: list[threading.Thread] = []
        fetch = submitter.acuse_envio
        submitter.acuse_envio = lambda uuid: (callers.append(threading.current_thread()),
                                              fetch(uuid))[1]  # fmt: skip
        pipe.run_until_idle(5, settle=1.0)  # ticks ask again; the PAC still fails
        assert len(sandbox.store.requests(operation="ObtenerAcuseEnvio")) > asked
        assert [d for _, _, d in pipe.journal.events(e.id) if d == "CONN-ACUSE"] == [
            "CONN-ACUSE"
        ]  # one event, not one per attempt
        assert callers and threading.main_thread() not in callers  # never the scanner's
        acuse_dir = ws / "out" / "acuse"
        acuse_dir.rmdir()
        acuse_dir.write_text("no es una carpeta")  # fetched next, but cannot be written
        sandbox.faults.clear()  # the PAC gives it now
        for _ in range(200):
            pipe.poll_once()
            e = pipe.journal.get(KEY)
            if e is not None and e.acuse:
                break
            time.sleep(0.05)
        assert e is not None and e.acuse and e.error_code == "CONN-ACUSE"
        assert "no se pudo escribir" in (e.error_message or "")
        asked = len(sandbox.store.requests(operation="ObtenerAcuseEnvio"))
        acuse_dir.unlink()
        acuse_dir.mkdir()  # the folder is back: the kept acuse is written, not asked again
        for _ in range(200):
            pipe.poll_once()
            e = pipe.journal.get(KEY)
            if e is not None and e.error_code is None:
                break
            time.sleep(0.05)
    finally:
        pipe.close()
    assert e is not None and e.state is State.DELIVERED and e.error_code is None and e.acuse
    [acuse] = (ws / "out" / "acuse").iterdir()
    assert acuse.name == f"A1_{e.uuid}_acuse.xml" and acuse.read_bytes() == e.acuse
    assert e.outputs["acuse"] == str(acuse) and e.outputs["xml"].endswith(f"A1_{e.uuid}.xml")
    assert len(sandbox.store.requests(operation="ObtenerAcuseEnvio")) == asked


def test_missing_acuses_are_asked_for_per_configured_source(journal_at) -> None:
    """Rows of a source no longer configured, or of another source, never hide a source's
    own missing acuses (on both journal backends)."""
    j = journal_at()
    for n, source in enumerate(["renamed-away"] * 3 + ["ventas"], start=1):
        _, e = j.admit(("EKU9003173C9", "A", str(n)), "h", mode="stamp", source=source,
                       source_file="f", location="l")  # fmt: skip
        j.mark_sealed_sending(e.id, b"<s/>", f"R{n}")
        j.mark_stamped(e.id, f"U{n}", b"<t/>")
        j.mark_delivered(e.id, {"xml": "x"}, acuse_missing=("CONN-ACUSE", "falta el acuse"))
    assert [e.folio for e in j.acuses_pending(["ventas"], limit=2)] == ["4"]
    assert [e.folio for e in j.acuses_pending(["renamed-away"], limit=2)] == ["1", "2"]


def test_outputs_that_cannot_be_written_show_in_status_and_are_delivered_later(
    workspace: Path, sandbox, capsys: pytest.CaptureFixture
) -> None:
    ws = workspace.parent
    xml_dir = ws / "out" / "xml"
    pipe = start_pipeline(workspace)
    pipe.redeliver_seconds = 0.2
    try:
        xml_dir.rmdir()
        xml_dir.write_text("no es una carpeta (recurso compartido caído)")
        (ws / "inbox" / "v.dat").write_bytes(dat_file("A", [1]))
        for _ in range(600):
            pipe.poll_once()
            e = pipe.journal.get(KEY)
            if e is not None and e.error_code and not pipe._inflight:
                break
            time.sleep(0.05)
        assert e is not None and e.state is State.STAMPED and e.error_code == "CONN-ENTREGA"
        assert e.uuid and e.uuid in (e.error_message or "") and "out/xml" in e.error_message
        assert e.acuse  # fetched once and kept while the folder is missing
        pipe.run_until_idle(1.0)  # ticks retry the delivery and fail again
        events = [d for _, _, d in pipe.journal.events(e.id) if d == "CONN-ENTREGA"]
        assert len(events) == 1  # one event for the error, not one per retry
        # `status` (the shallow view: it runs while the folder is missing) tells why
        assert main(["status", "--config", str(workspace)]) == 0
        out = capsys.readouterr().out
        assert "CONN-ENTREGA" in out and e.uuid in out
        xml_dir.unlink()
        xml_dir.mkdir()  # the share is back: the periodic tick delivers it
        assert pipe.run_until_idle(30)
        e = pipe.journal.get(KEY)
    finally:
        pipe.close()
    assert e is not None and e.state is State.DELIVERED and e.error_code is None
    assert [p.name for p in xml_dir.iterdir()] == [f"A1_{e.uuid}.xml"]
    assert len(sandbox.store.requests(operation="ObtenerAcuseEnvio")) == 1
    assert [p.read_bytes() for p in (ws / "out" / "acuse").iterdir()] == [e.acuse]
    assert [p.name for p in (ws / "archive").rglob("*.dat")] == ["v.dat"]


def test_acuse_failures_do_not_open_the_circuit_that_guards_stamping(
    workspace: Path, sandbox
) -> None:
    ws = workspace.parent
    text = workspace.read_text(encoding="utf-8").replace(
        "failure_threshold = 50", "failure_threshold = 2"
    )
    workspace.write_text(text, encoding="utf-8")
    sandbox.faults.add("http500", times=None, operations="ObtenerAcuseEnvio")
    pipe = start_pipeline(workspace)
    try:
        (ws / "inbox" / "v.dat").write_bytes(dat_file("A", [1, 2, 3, 4, 5, 6]))
        assert pipe.run_until_idle(60)
        states = {f: pipe.journal.get(("EKU9003173C9", "A", str(f))).state for f in range(1, 7)}
        breaker = pipe.pacs["sandbox"].state()
    finally:
        pipe.close()
    assert set(states.values()) == {State.DELIVERED}  # no stamp waited for a closed circuit
    assert breaker["state"] == "closed" and breaker["opened_count"] == 0
    assert len(list((ws / "out" / "xml").glob("A*.xml"))) == 6


def test_document_refused_on_its_first_send_is_sealed_anew_after_replay(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """The PAC refuses the first send (402: the emisor is not registered in the account) and
    nothing earlier can have been stamped: origin pac-documento (a replay may seal it anew, see
    test_daemon_journal_sent); once the account is fixed, the replay is stamped once, under the
    same referencia."""
    from connector.pac.sandbox import SandboxPac
    from connector.pac.sandbox.stamping import SandboxAccount
    from tests.daemon.conftest import stamps_by_key, write_config

    pac = SandboxPac(tmp_path / "pac.db", accounts=[
        SandboxAccount(usuario="demo", password="demo", cuenta="DEMO", creditos=100)])  # fmt: skip
    pac.start()
    try:
        config = write_config(tmp_path / "ws", timbrado_url=pac.fel_timbrado_url)
        ws = config.parent
        (ws / "inbox" / "v.dat").write_bytes(dat_file("A", [1]))
        pipe = start_pipeline(config)
        try:
            assert pipe.run_until_idle(60)
            first = pipe.journal.get(KEY)
        finally:
            pipe.close()
        assert first is not None and first.state is State.FAILED and first.error_code == "402"
        assert first.error_origin == "pac-documento" and first.attempts == 1
        demo = SandboxPac.demo(tmp_path / "unused.db")  # the demo account, with the CSD
        pac.add_account(demo.engine.accounts["demo"])
        assert main(["replay", "--config", str(config), "--file", "v.dat"]) == 0
        pipe = start_pipeline(config)
        try:
            assert pipe.run_until_idle(60)
            e = pipe.journal.get(KEY)
        finally:
            pipe.close()
        assert e is not None and e.state is State.DELIVERED and e.referencia == first.referencia
        assert {k: len(v) for k, v in stamps_by_key(pac.store).items()} == {("A", "1"): 1}
    finally:
        pac.close()


def test_acuse_is_not_asked_for_while_the_circuit_is_open(workspace: Path, sandbox) -> None:
    from connector.pac.errors import PacCircuitOpen

    pipe = start_pipeline(workspace)
    try:
        pac = pipe.pacs["sandbox"]
        breaker = pac.submitter.breaker
        for _ in range(breaker.failure_threshold):
            breaker.record_failure(None)
        assert breaker.state == "open"
        with pytest.raises(PacCircuitOpen):
            pac.submitter.acuse_envio("00000000-0000-0000-0000-000000000000")
        assert sandbox.store.requests(operation="ObtenerAcuseEnvio") == []
    finally:
        pipe.close()
