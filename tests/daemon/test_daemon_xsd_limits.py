"""SAT's XSD limits are checked before sealing: an over-long field never costs a PAC request.

A real pipeline on real folders, the sandbox PAC over HTTP on 127.0.0.1 (issue 17, item 2).
"""

from __future__ import annotations

import json
from pathlib import Path

from connector.journal import State
from tests.daemon.conftest import RFC, dat_invoice, stamps_by_key, start_pipeline


def test_over_long_fields_are_refused_locally_and_never_sent(workspace: Path, sandbox) -> None:
    ws = workspace.parent
    huge = dat_invoice("L", "2").replace("Memoria USB", "X" * 1_000_000)
    long_id = dat_invoice("L", "3").replace("|USB32|", "|" + "N" * 300 + "|")
    long_name = dat_invoice("L", "4").replace("XOCHILT CASAS CHAVEZ", "Ñ" * 560)
    # a value a SAT rule quotes (not an RFC) is cut in its message too
    huge_rfc = dat_invoice("L", "6").replace("CACX7605101P8", "R" * 200_000)
    export = dat_invoice("L", "1") + huge + long_id + long_name + dat_invoice("L", "5") + huge_rfc
    (ws / "inbox" / "largos.dat").write_bytes(export.encode())
    pipe = start_pipeline(workspace)
    try:
        assert pipe.run_until_idle(60)
        states = {f: pipe.journal.get((RFC, "L", f)) for f in "123456"}
    finally:
        pipe.close()
    # the good ones are stamped; the others never reached the PAC
    assert set(stamps_by_key(sandbox.store)) == {("L", "1"), ("L", "5")}
    sent = [r.referencia for r in sandbox.store.requests(operation="TimbrarCFDI")]
    assert len(sent) == 2 and all(r.startswith(("L1-", "L5-")) for r in sent), sent
    assert states["1"].state is State.DELIVERED and states["5"].state is State.DELIVERED
    for f in "234":
        assert states[f].state is State.FAILED and states[f].error_code == "CONN-XSD"

    report = ws / "failed" / "largos.dat.error.json"
    assert report.stat().st_size < 8_000  # the 1 MB value is cut in the messages
    errors = {e["invoice"]: e for e in json.loads(report.read_text(encoding="utf-8"))["errors"]}
    assert set(errors) == {"L2", "L3", "L4", "L6"}
    assert len(errors["L6"]["message"]) < 300 and "R" * 60 + "…" in errors["L6"]["message"]
    assert len(states["6"].error_message or "") < 300
    # each says the field (file:line:Field), SAT's limit, the length found and a cut value
    d, n, r = errors["L2"], errors["L3"], errors["L4"]
    assert d["code"] == "CONN-XSD" and d["location"] == "largos.dat:9:Descripcion"
    assert "Descripcion" in d["message"] and "máximo 1000" in d["message"]
    assert "1000000 caracteres" in d["message"] and "X" * 60 + "…" in d["message"]
    assert len(d["message"]) < 300
    assert n["location"] == "largos.dat:14:NoIdentificacion" and "máximo 100" in n["message"]
    assert "300 caracteres" in n["message"]
    assert r["location"] == "largos.dat:18:Nombre" and "máximo 300" in r["message"]
    assert "560 caracteres" in r["message"] and r["path"] == "Receptor.Nombre"
    text = (ws / "failed" / "largos.dat.error.txt").read_text(encoding="utf-8")
    assert "máximo 1000" in text and len(text) < 4_000
