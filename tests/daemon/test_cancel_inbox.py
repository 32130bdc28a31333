"""Issue 13, cancellation requests from a folder: the ERP drops request files in the source's
``cancel_inbox``; the running daemon claims them, checks and sends each request (sandbox PAC
over HTTP), follows them, and the file ends in archive/ or, with a refused line, in failed/ with
its error file."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

from lxml import etree

from connector.cancel_inbox import parse_requests
from connector.journal import Journal
from tests.daemon.conftest import dat_file, start_pipeline

NS = {"tfd": "http://www.sat.gob.mx/TimbreFiscalDigital"}


def _uuid(xml: Path) -> str:
    return etree.fromstring(xml.read_bytes()).find(".//tfd:TimbreFiscalDigital", NS).get("UUID")


def test_parse_the_three_request_formats() -> None:
    u = "11111111-2222-3333-4444-555555555555"
    reqs, problems = parse_requests("a.txt", f"# comentario\n{u}|2\n\n{u}|01|{u}\n|02\n".encode())
    assert [r[1:] for r in reqs] == [(u, "02", None), (u, "01", u)]
    assert [p.location for p in problems] == ["a.txt:5"] and problems[
        0
    ].code == "CONN-CANCEL-ARCHIVO"
    reqs, problems = parse_requests("b.csv", f"UUID,Motivo,folio_sustitucion\n{u},03,\n".encode())
    assert [r[1:] for r in reqs] == [(u, "03", None)] and problems == []
    reqs, problems = parse_requests("c.csv", b"id,motivo\n1,02\n")
    assert reqs == [] and "uuid y motivo" in problems[0].message
    reqs, problems = parse_requests("d.json", json.dumps([{"uuid": u, "motivo": "04"}, 5]).encode())
    assert [r[1:] for r in reqs] == [(u, "04", None)] and problems[0].location == "d.json:[2]"


def test_request_files_are_claimed_sent_followed_and_archived_or_failed(
    workspace: Path, sandbox
) -> None:
    ws = workspace.parent
    text = workspace.read_text(encoding="utf-8")
    text = text.replace('failed = "failed"', 'failed = "failed"\ncancel_inbox = "cancel"', 1)
    text = text.replace(
        'journal_synchronous = "NORMAL"',
        'journal_synchronous = "NORMAL"\ncancel_poll_seconds = 0.2\ncancel_poll_max_seconds = 0.2',
        1,
    )
    workspace.write_text(text, encoding="utf-8")
    (ws / "inbox" / "ventas.dat").write_bytes(dat_file("C", [1, 2, 3, 4]))
    pipe = start_pipeline(workspace)
    stop = threading.Event()
    loop = threading.Thread(target=pipe.run, args=(stop,), daemon=True)
    loop.start()
    try:
        deadline = time.monotonic() + 60
        while len(list((ws / "out" / "xml").glob("C*.xml"))) < 4 and time.monotonic() < deadline:
            time.sleep(0.1)
        u = {p.name[1]: _uuid(p) for p in (ws / "out" / "xml").glob("C*.xml")}
        sandbox.engine.con_aceptacion.add(u["3"])
        (ws / "cancel").mkdir(exist_ok=True)
        unknown = "99999999-8888-7777-6666-555555555555"
        (ws / "cancel" / "pedidos.txt").write_text(
            f"{u['1']}|02\n{u['2']}|01|{u['4']}\n{unknown}|02\n", encoding="utf-8"
        )
        (ws / "cancel" / "otro.json").write_text(
            json.dumps([{"uuid": u["3"], "motivo": "03"}]), encoding="utf-8"
        )
        journal = ws / "var" / "journal.sqlite"

        def state(uuid: str) -> str | None:
            with Journal(journal) as j:
                r = j.cancel_request(uuid)
            return str(r.state) if r else None

        while time.monotonic() < deadline + 60 and (
            state(u["1"]) != "cancelada" or state(u["3"]) != "en_proceso"
            or any((ws / "cancel").iterdir())
            or any((ws / "work").rglob("cancel/*"))
        ):  # fmt: skip
            time.sleep(0.1)
        sandbox.engine.answer_cancellation(u["3"], "aceptada")
        while time.monotonic() < deadline + 90 and state(u["3"]) != "cancelada":
            time.sleep(0.1)
    finally:
        stop.set()
        pipe.wake.set()
        loop.join(30)
        pipe.close()
    assert state(u["1"]) == "cancelada" and state(u["2"]) == "cancelada"
    assert state(u["3"]) == "cancelada" and state(u["4"]) is None
    with Journal(journal) as j:
        assert j.cancel_request(u["2"]).folio_sustitucion == u["4"]
        assert j.cancel_request(u["1"]).origin == "folder"
    # the file with a refused line: failed/ with its error file; the other archived
    assert (ws / "failed" / "pedidos.txt").exists()
    err = (ws / "failed" / "pedidos.txt.error.txt").read_text("utf-8")
    assert "CONN-CANCEL-UUID [pedidos.txt:3]" in err and u["1"] not in err
    (archived,) = (ws / "archive").rglob("otro.json")
    assert json.loads(archived.read_text("utf-8"))[0]["uuid"] == u["3"]
    assert not any((ws / "cancel").iterdir())
    stem = next((ws / "out" / "xml").glob("C3_*.xml")).stem
    result = json.loads((ws / "out" / "xml" / f"{stem}_cancelacion.json").read_text("utf-8"))
    assert result["estado"] == "cancelada" and result["origen"] == "folder"


def test_a_request_file_waits_while_the_pac_refuses_the_account_and_goes_out_when_it_works(
    workspace: Path, sandbox
) -> None:
    """Issue 17.10 for cancellations: a wrong PAC password (203) is about the account, not the
    request. The file stays claimed (not failed/, no error recorded for the UUID) and is sent
    when the PAC accepts the account again."""
    ws = workspace.parent
    text = workspace.read_text(encoding="utf-8")
    text = text.replace('failed = "failed"', 'failed = "failed"\ncancel_inbox = "cancel"', 1)
    workspace.write_text(text, encoding="utf-8")
    (ws / "inbox" / "ventas.dat").write_bytes(dat_file("P", [1]))
    pipe = start_pipeline(workspace)
    try:
        assert pipe.run_until_idle(60)
        (xml,) = (ws / "out" / "xml").glob("P1*.xml")
        uuid = _uuid(xml)
        sandbox.engine.store.set_password("demo", "otra")  # the account stops working
        (ws / "cancel").mkdir(exist_ok=True)
        (ws / "cancel" / "pedido.txt").write_text(f"{uuid}|02\n", encoding="utf-8")
        os.utime(ws / "cancel" / "pedido.txt", (time.time() - 60, time.time() - 60))
        for _ in range(3):  # refused (203), then the PAC paused for the account
            pipe.cancellations.inbox(pipe.journal, pipe.pacs)
            time.sleep(0.2)
        assert list((ws / "failed").iterdir()) == []
        assert [p.name for p in (ws / "work").rglob("cancel/*")] == ["pedido.txt"]
        req = pipe.journal.cancel_request(uuid)
        assert req is None or str(req.state) not in ("invalida", "no_cancelable")
        sandbox.engine.store.set_password("demo", "demo")  # the account works again
        deadline = time.monotonic() + 30
        while any((ws / "work").rglob("cancel/*")) and time.monotonic() < deadline:
            pipe.cancellations.inbox(pipe.journal, pipe.pacs)
            time.sleep(0.2)
        req = pipe.journal.cancel_request(uuid)
    finally:
        pipe.close()
    assert req is not None and str(req.state) == "cancelada" and req.origin == "folder"
    assert list((ws / "failed").iterdir()) == []
    (archived,) = (ws / "archive").rglob("pedido.txt")
    assert archived.read_text("utf-8") == f"{uuid}|02\n"
