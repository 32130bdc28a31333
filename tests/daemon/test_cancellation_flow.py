"""Issue 13, cancellation tracked to the end: ``cancel --config FILE UUID --motivo`` reads the
RFCs and total from the journal, checks the request locally (coded Spanish errors, nothing sent),
records it before sending, and the daemon follows it at SAT's consulta service until a final
state, writing the result beside the invoice's outputs. End to end over HTTP: the sandbox PAC
and its SAT status service; the daemon's own loop (in a thread, and as a process killed with
SIGKILL)."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pypdf
import pytest
from lxml import etree

from connector.cancellations import CancelRefused, cancel_deadline, check_request
from connector.cli import main
from connector.journal import Journal
from tests.daemon.conftest import dat_file, start_pipeline

NS = {"cfdi": "http://www.sat.gob.mx/cfd/4", "tfd": "http://www.sat.gob.mx/TimbreFiscalDigital"}


def _text(pdf: Path) -> str:
    return "".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(pdf.read_bytes())).pages)


def _fast_follow_up(config: Path, seconds: float = 0.2) -> None:
    """SAT is asked every ``seconds`` (the documented ``[daemon] cancel_poll_*`` settings)."""
    text = config.read_text(encoding="utf-8").replace(
        'journal_synchronous = "NORMAL"',
        f'journal_synchronous = "NORMAL"\ncancel_poll_seconds = {seconds}\n'
        f"cancel_poll_max_seconds = {seconds}",
        1,
    )
    config.write_text(text, encoding="utf-8")


def _stamp(workspace: Path, serie: str, n: int) -> dict[str, Path]:
    """``n`` invoices stamped and delivered: folio → stamped XML."""
    ws = workspace.parent
    (ws / "inbox" / f"{serie}.dat").write_bytes(dat_file(serie, list(range(1, n + 1))))
    pipe = start_pipeline(workspace)
    try:
        assert pipe.run_until_idle(90)
    finally:
        pipe.close()
    out = {}
    for p in (ws / "out" / "xml").glob(f"{serie}*.xml"):
        out[p.name[len(serie) :].split("_", 1)[0]] = p
    assert len(out) == n
    return out


def _uuid(xml: Path) -> str:
    root = etree.fromstring(xml.read_bytes())
    return root.find(".//tfd:TimbreFiscalDigital", NS).get("UUID").upper()


def _cancel_calls(sandbox: Any, uuid: str | None = None) -> int:
    """Cancellation requests the sandbox PAC received (any of its services)."""
    return sum(
        r.operation.lower().startswith("cancel")
        and (uuid is None or (r.uuid or "").upper() == uuid)
        for r in sandbox.store.requests_log
    )


def _request(journal: Path, uuid: str) -> Any:
    with Journal(journal) as j:
        return j.cancel_request(uuid)


def _wait(cond: Callable[[], bool], timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return cond()


def test_every_local_check_refuses_before_the_pac_is_called(
    workspace: Path, sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = workspace.parent
    xmls = _stamp(workspace, "L", 2)
    u1, u2 = _uuid(xmls["1"]), _uuid(xmls["2"])
    cfg = ["--config", str(workspace)]
    capsys.readouterr()

    def refused(args: list[str], code: str) -> str:
        assert main(["cancel", *args, *cfg]) == 2
        err = capsys.readouterr().err
        assert code in err, err
        return err

    unknown = "11111111-2222-3333-4444-555555555555"
    assert "no está en el diario" in refused([unknown, "--motivo", "02"], "CONN-CLI")
    err = refused([u1, "--motivo", "05"], "CONN-CANCEL-MOTIVO")
    assert "01, 02, 03 o 04" in err
    assert "requiere --folio-sustitucion" in refused(
        [u1, "--motivo", "01"], "CONN-CANCEL-SUSTITUCION"
    )
    err = refused([u1, "--motivo", "01", "--folio-sustitucion", unknown], "CONN-CANCEL-SUSTITUCION")
    assert unknown in err and "no es un CFDI que el emisor" in err
    err = refused([u1, "--motivo", "01", "--folio-sustitucion", u1], "CONN-CANCEL-SUSTITUCION")
    assert "mismo UUID" in err
    err = refused([u1, "--motivo", "02", "--folio-sustitucion", u2], "CONN-CANCEL-SUSTITUCION")
    assert "Solo el motivo 01" in err
    assert _cancel_calls(sandbox) == 0  # nothing reached the PAC
    with Journal(ws / "var" / "journal.sqlite") as j:
        assert j.cancel_requests() == []  # nor the journal
        # the fiscal year's deadline (CFF 29-A): a persona moral until 31 March next year
        e = j.find_uuid(u1)
        fecha = date.fromisoformat(etree.fromstring(e.stamped_xml).get("Fecha")[:10])
        assert len(e.emisor_rfc) == 12
        last = cancel_deadline(fecha, e.emisor_rfc)
        assert last == date(fecha.year + 1, 3, 31)
        check_request(j, u1, "02", None, last)  # the last day: allowed
        with pytest.raises(CancelRefused) as exc:
            check_request(j, u1, "02", None, date(fecha.year + 1, 4, 1))
        (p,) = exc.value.problems
        assert p.code == "CONN-CANCEL-EJERCICIO" and str(last) in p.message
    assert cancel_deadline(date(2026, 5, 1), "XAXX010101000") == date(2027, 4, 30)  # física

    # motivo 01 with a UUID this emisor stamped: sent; asking again: pending, then cancelled
    sandbox.engine.con_aceptacion.add(u1)
    assert main(["cancel", u1, "--motivo", "01", "--folio-sustitucion", u2, *cfg]) == 0
    assert _request(ws / "var" / "journal.sqlite", u1).state == "en_proceso"
    err = refused([u1, "--motivo", "02"], "CONN-CANCEL-PENDIENTE")
    assert "el daemon la sigue" in err
    assert _cancel_calls(sandbox, u1) == 1
    assert main(["cancel", u2, "--motivo", "02", *cfg]) == 0  # sin aceptación: cancelled
    refused([u2, "--motivo", "03"], "CONN-CANCEL-YA")
    assert _cancel_calls(sandbox, u2) == 1


def test_the_daemon_follows_each_story_to_its_end(
    workspace: Path, sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    """Sin aceptación; con aceptación then accepted; rejected then asked again and left to
    the deadline (plazo vencido); not cancellable (related documents). The daemon runs its
    own loop in a thread; the requests come from the CLI."""
    ws = workspace.parent
    journal = ws / "var" / "journal.sqlite"
    _fast_follow_up(workspace)
    xmls = _stamp(workspace, "S", 4)
    sin, acepta, rechaza, relacionado = (_uuid(xmls[str(n)]) for n in range(1, 5))
    sandbox.engine.con_aceptacion.update({acepta, rechaza})
    sandbox.engine.no_cancelable.add(relacionado)
    pipe = start_pipeline(workspace)
    stop = threading.Event()
    loop = threading.Thread(target=pipe.run, args=(stop,), daemon=True)
    loop.start()
    cfg = ["--config", str(workspace)]
    try:
        for uuid in (sin, acepta, rechaza):
            assert main(["cancel", uuid, "--motivo", "02", *cfg]) == 0
        assert main(["cancel", relacionado, "--motivo", "02", *cfg]) == 1  # the PAC said 204
        assert "no cancelable" in capsys.readouterr().out
        assert _request(journal, relacionado).state == "no_cancelable"
        assert _request(journal, sin).state == "cancelada"
        assert _request(journal, acepta).state == "en_proceso"

        # the daemon keeps asking SAT while the receptor decides, and shows the age
        assert _wait(lambda: _request(journal, acepta).polls >= 3)
        assert main(["status", *cfg]) == 0
        text = capsys.readouterr().out
        assert "cancelaciones en proceso" in text and acepta in text
        sandbox.engine.answer_cancellation(acepta, "aceptada")
        sandbox.engine.answer_cancellation(rechaza, "rechazada")
        assert _wait(lambda: _request(journal, acepta).state == "cancelada")
        assert _wait(lambda: _request(journal, rechaza).state == "rechazada")
        assert _request(journal, acepta).estatus_cancelacion == "Cancelado con aceptación"

        # after a rejection a new request is allowed; this time the receptor stays silent
        assert main(["cancel", rechaza, "--motivo", "03", *cfg]) == 0
        assert _request(journal, rechaza).state == "en_proceso"
        assert _request(journal, rechaza).requests == 2
        sandbox.engine.answer_cancellation(rechaza, "plazo_vencido")
        assert _wait(lambda: _request(journal, rechaza).state == "cancelada")
        assert _request(journal, rechaza).estatus_cancelacion == "Plazo vencido"
    finally:
        stop.set()
        pipe.wake.set()
        loop.join(30)
        pipe.close()
    capsys.readouterr()
    assert main(["status", *cfg, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["cancel_requests"] == {"cancelada": 3, "no_cancelable": 1}
    assert doc["cancelled"] == 3 and doc["cancellations_open"] == []
    for uuid, n in ((sin, 1), (acepta, 1), (rechaza, 2), (relacionado, 1)):
        assert _cancel_calls(sandbox, uuid) == n
    # written back beside the outputs: the result of each; the mark only on the cancelled
    for folio, uuid, estado, marked in (
        ("1", sin, "cancelada", True),
        ("2", acepta, "cancelada", True),
        ("3", rechaza, "cancelada", True),
        ("4", relacionado, "no_cancelable", False),
    ):
        stem = xmls[folio].stem
        result = json.loads((ws / "out" / "xml" / f"{stem}_cancelacion.json").read_text("utf-8"))
        assert result["uuid"] == uuid and result["estado"] == estado
        assert ("CANCELADO" in _text(ws / "out" / "pdf" / f"{stem}.pdf")) is marked
        assert (ws / "out" / "acuse" / f"{stem}_cancelacion.xml").exists() is marked
    with Journal(journal) as j:
        assert j.cancelled_count() == 3 and j.cancellation(relacionado) is None


def test_a_send_without_answer_is_asked_about_before_it_is_sent_again(
    workspace: Path, sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    """Journal first: a request recorded and then lost (the process died around the send)
    stays ``solicitada``. The next ``cancel`` asks SAT: the PAC had it (SAT shows it) → not
    sent again; SAT shows nothing → sent."""
    ws = workspace.parent
    journal = ws / "var" / "journal.sqlite"
    xmls = _stamp(workspace, "D", 2)
    reached, lost = _uuid(xmls["1"]), _uuid(xmls["2"])
    with Journal(journal) as j:
        for uuid in (reached, lost):
            j.open_cancel_request(uuid, "02", None, rfc_emisor=None, rfc_receptor=None,
                                  total=None, origin="cli")  # fmt: skip
    # the first one reached the PAC (its answer was lost with the process)
    assert sandbox.engine.cancel(sandbox.store.get(reached).account, reached, "02", None).ok
    capsys.readouterr()
    assert main(["cancel", reached, "--motivo", "02", "--config", str(workspace)]) == 0
    out = capsys.readouterr().out
    assert "el SAT muestra Cancelado" in out and "cancelada" in out
    assert _cancel_calls(sandbox, reached) == 0  # only the direct call above: no HTTP request
    assert _request(journal, reached).state == "cancelada"
    assert main(["cancel", lost, "--motivo", "02", "--config", str(workspace)]) == 0
    assert _cancel_calls(sandbox, lost) == 1
    assert _request(journal, lost).state == "cancelada"


def test_sigkill_while_a_cancellation_is_being_sent_never_sends_it_twice(
    workspace: Path, sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    """A real ``cancel`` process killed (SIGKILL) while its request is at the PAC: the journal
    recorded it first (``solicitada``); the PAC went on and cancelled it; the next ``cancel``
    asks SAT, finds it Cancelado and sends nothing."""
    ws = workspace.parent
    journal = ws / "var" / "journal.sqlite"
    xmls = _stamp(workspace, "S", 1)
    uuid = _uuid(xmls["1"])
    sandbox.latency = 3.0  # the PAC takes its time: the process dies while it waits
    proc = subprocess.Popen(
        [sys.executable, "-m", "connector.cli", "cancel", uuid, "--motivo", "02",
         "--config", str(workspace)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert _wait(lambda: journal.exists() and _request(journal, uuid) is not None, 60)
        time.sleep(1.0)  # the request is on the wire, its answer not back
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert _request(journal, uuid).state == "solicitada"
    assert _wait(lambda: _cancel_calls(sandbox, uuid) == 1, 30)  # the PAC did it meanwhile
    sandbox.latency = 0.0
    capsys.readouterr()
    assert main(["cancel", uuid, "--motivo", "02", "--config", str(workspace)]) == 0
    out = capsys.readouterr().out
    assert "el SAT muestra Cancelado" in out
    assert _cancel_calls(sandbox, uuid) == 1  # never a second request
    assert _request(journal, uuid).state == "cancelada"


def test_sigkill_while_following_up_reaches_the_final_state_without_a_second_request(
    workspace: Path, sandbox
) -> None:
    ws = workspace.parent
    journal = ws / "var" / "journal.sqlite"
    _fast_follow_up(workspace)
    xmls = _stamp(workspace, "K", 1)
    uuid = _uuid(xmls["1"])
    sandbox.engine.con_aceptacion.add(uuid)
    assert main(["cancel", uuid, "--motivo", "02", "--config", str(workspace)]) == 0
    log = ws / "daemon.err"

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "connector.cli", "run", "--config", str(workspace)],
            stdout=subprocess.DEVNULL,
            stderr=open(log, "ab"),  # noqa: SIM115 - closed with the process
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    polls = _request(journal, uuid).polls
    proc = start()
    try:
        assert _wait(lambda: _request(journal, uuid).polls >= polls + 3)  # following it
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        sandbox.engine.answer_cancellation(uuid, "aceptada")  # while the daemon is down
        proc = start()
        assert _wait(lambda: _request(journal, uuid).state == "cancelada")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    assert _cancel_calls(sandbox, uuid) == 1
    stem = xmls["1"].stem
    assert "CANCELADO" in _text(ws / "out" / "pdf" / f"{stem}.pdf")
    assert (ws / "out" / "acuse" / f"{stem}_cancelacion.xml").exists()
    result = json.loads((ws / "out" / "xml" / f"{stem}_cancelacion.json").read_text("utf-8"))
    assert result["estado"] == "cancelada"
    assert result["sat_estatus_cancelacion"] == "Cancelado con aceptación"


def test_a_cfdi_cancelled_outside_the_connector_is_noticed_by_the_sweep(
    workspace: Path, sandbox
) -> None:
    """Cancelled in SAT's portal (here: straight at the sandbox, no request of ours): the slow
    sweep ([daemon] sat_sweep_days) asks SAT, records it and marks the PDF."""
    ws = workspace.parent
    journal = ws / "var" / "journal.sqlite"
    text = workspace.read_text(encoding="utf-8").replace(
        'journal_synchronous = "NORMAL"', 'journal_synchronous = "NORMAL"\nsat_sweep_days = 30', 1
    )
    workspace.write_text(text, encoding="utf-8")
    xmls = _stamp(workspace, "X", 2)
    outside, kept = _uuid(xmls["1"]), _uuid(xmls["2"])
    assert sandbox.engine.cancel(sandbox.store.get(outside).account, outside, "02", None).ok
    from connector.cancel_follow import CancellationFollower
    from connector.config import check_config

    cfg, problems = check_config(workspace)
    assert cfg is not None, problems
    with Journal(journal) as j:
        CancellationFollower(cfg).follow_up(j)
        req = j.cancel_request(outside)
        assert req is not None and req.state == "cancelada" and req.origin == "sat"
        assert j.cancellation(outside) is not None and j.cancel_request(kept) is None
        assert j.sweep_due(0, time.time() - 3600, 10) == []  # both asked: not again so soon
    assert "CANCELADO" in _text(ws / "out" / "pdf" / f"{xmls['1'].stem}.pdf")
    assert "CANCELADO" not in _text(ws / "out" / "pdf" / f"{xmls['2'].stem}.pdf")


def test_a_result_that_could_not_be_written_is_written_on_a_later_tick(
    workspace: Path, sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    """The XML folder is gone when the cancellation is recorded (share offline): the request
    keeps CONN-FILE and the follow-up writes the result once the folder is back."""
    from connector.cancel_follow import CancellationFollower
    from connector.config import check_config

    ws = workspace.parent
    xmls = _stamp(workspace, "W", 1)
    uuid = _uuid(xmls["1"])
    (ws / "out" / "xml").rename(ws / "out" / "xml.away")
    (ws / "out" / "xml").write_text("no es una carpeta", encoding="utf-8")
    assert main(["cancel", uuid, "--motivo", "02", "--config", str(workspace)]) == 0
    assert "CONN-FILE" in capsys.readouterr().out
    journal = ws / "var" / "journal.sqlite"
    assert _request(journal, uuid).error_code == "CONN-FILE"
    assert _request(journal, uuid).state == "cancelada"
    (ws / "out" / "xml").unlink()
    (ws / "out" / "xml.away").rename(ws / "out" / "xml")
    cfg, problems = check_config(workspace)
    assert cfg is not None, problems
    with Journal(journal) as j:
        CancellationFollower(cfg).follow_up(j)
    assert _request(journal, uuid).error_code is None
    result = ws / "out" / "xml" / f"{xmls['1'].stem}_cancelacion.json"
    assert json.loads(result.read_text("utf-8"))["estado"] == "cancelada"
    assert "CANCELADO" in _text(ws / "out" / "pdf" / f"{xmls['1'].stem}.pdf")
