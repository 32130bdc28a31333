"""``status`` lists every failed file and invoice, newest first (issue 17, item 5).

A real pipeline on real folders and the sandbox PAC; ``status`` through the command line.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from connector.cli import main
from tests.daemon.conftest import dat_invoice, run_once


def _drop(ws: Path, config: Path, name: str, data: bytes) -> None:
    time.sleep(0.05)  # each file's failures get their own time
    (ws / "inbox" / name).write_bytes(data)
    run_once(config)
    assert (ws / "failed" / name).exists()


def test_status_lists_file_level_failures_newest_first(
    workspace: Path, sandbox, capsys: pytest.CaptureFixture
) -> None:
    ws = workspace.parent
    # an invoice SAT's rules refuse, and a folio repeated in the same file
    lote = dat_invoice("P", "1") + dat_invoice("P", "2", tipo="Z") + dat_invoice("P", "1")
    _drop(ws, workspace, "lote.dat", lote.encode())
    _drop(ws, workspace, "basura.xml", b"<cfdi:Comprobante")  # malformed XML
    _drop(ws, workspace, "cp.dat", b"COMPROBANTE|\x81\x8d|")  # neither UTF-8 nor cp1252
    _drop(ws, workspace, "vacio.dat", b"")
    # the ERP re-exports P1 with other content: refused, never stamped twice
    _drop(ws, workspace, "reexport.dat", dat_invoice("P", "1", precio="999.00").encode())

    capsys.readouterr()  # the pipeline's own log lines
    assert main(["status", "--config", str(workspace), "--json"]) == 0
    failures = json.loads(capsys.readouterr().out)["recent_failures"]
    got = [(f["file"], f["invoice"], f["code"]) for f in failures]
    assert got[:3] == [
        ("reexport.dat", "P1", "CONN-FOLIO-USADO"),
        ("vacio.dat", "", "CONN-EMPTY"),
        ("cp.dat", "", "CONN-DECODE"),
    ]
    assert got[3][0] == "basura.xml" and got[3][2] == "CONN-XML-MALFORMED"
    assert got[4:] == [
        ("lote.dat", "P1", "CONN-FOLIO-DUPLICADO"),
        ("lote.dat", "P2", got[5][2]),
    ]
    assert got[5][2].startswith("CFDI40") and failures[5]["state"] == "failed"
    assert failures[0]["location"] == "reexport.dat:1" and failures[0]["source"] == "ventas"
    assert failures[1]["code"] == "CONN-EMPTY" and failures[4]["location"] == "lote.dat:11"
    assert "ni como UTF-8 ni como cp1252" in failures[2]["message"]
    assert all(f["message"] and f["at"] for f in failures)
    assert [f["at"] for f in failures] == sorted((f["at"] for f in failures), reverse=True)

    # the text form says the same, newest first
    assert main(["status", "--config", str(workspace)]) == 0
    out = capsys.readouterr().out
    text = out[out.index("Errores recientes") :]
    assert text.index("CONN-FOLIO-USADO") < text.index("CONN-XML-MALFORMED")
    assert text.index("CONN-XML-MALFORMED") < text.index("CONN-FOLIO-DUPLICADO")
    assert "vacio.dat" in text and "cp.dat" in text
    # --limit cuts the newest-first list
    assert main(["status", "--config", str(workspace), "--json", "--limit", "2"]) == 0
    two = json.loads(capsys.readouterr().out)["recent_failures"]
    assert [f["file"] for f in two] == ["reexport.dat", "vacio.dat"]


def test_note_failure_is_listed_once_per_key(journal_at) -> None:
    """Other parts (an inbox item that is skipped…) add their failures to the same list (on
    both journal backends)."""
    with journal_at() as j:
        assert j.note_failure("ventas", "enlace.dat", "CONN-X", "uno", once="inbox/enlace.dat")
        assert not j.note_failure("ventas", "enlace.dat", "CONN-X", "dos", once="inbox/enlace.dat")
        (f,) = j.recent_failures()
        assert (f.file, f.code, f.message, f.invoice) == ("enlace.dat", "CONN-X", "uno", "")
