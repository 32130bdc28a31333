"""The daemon reports the root cause of bad amounts, not the amounts it derived from them
(issue 18.6): the SAT rules and the XSD limits checked before sealing both stay quiet about a
Base or Importe the connector computed from a Descuento already in error."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.cli import main
from tests.daemon.conftest import dat_invoice, stamps_by_key


def test_descuento_over_importe_is_reported_once(
    workspace: Path, sandbox, capsys: pytest.CaptureFixture, tmp_path: Path
) -> None:
    text = dat_invoice("R", "1")
    assert "|100.00|||02|" in text
    given = tmp_path / "descuento.dat"
    given.write_text(text.replace("|100.00|||02|", "|100.00||500.00|02|"), encoding="utf-8")
    assert main(["submit", str(given), "--config", str(workspace), "--source", "ventas"]) == 1
    out = capsys.readouterr().out
    errors = [line for line in out.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1 and "CFDI40169" in errors[0], out
    assert "descuento.dat:4:Descuento" in errors[0]
    assert stamps_by_key(sandbox.store) == {}
