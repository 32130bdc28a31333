"""An empty required attribute in DAT data is an error with its field and line; a default comes
only from the source's configuration (``defaults``), and check-config shows it (issue 18.5)."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.cli import main
from tests.daemon.conftest import dat_invoice, stamps_by_key


def _without_exportacion(serie: str, folio: str) -> str:
    """A default-layout invoice whose COMPROBANTE leaves Exportacion (field 15) empty."""
    text = dat_invoice(serie, folio)
    head, rest = text.split("\n", 1)
    fields = head.split("|")
    assert fields[14] == "01"
    fields[14] = ""
    return "|".join(fields) + "\n" + rest


def _with_defaults(config: Path, defaults: str) -> None:
    text = config.read_text(encoding="utf-8")
    marker = 'name = "ventas"\n'
    config.write_text(text.replace(marker, f"{marker}defaults = {defaults}\n", 1), "utf-8")


def test_empty_exportacion_is_an_error_with_field_and_line(
    workspace: Path, sandbox, capsys: pytest.CaptureFixture, tmp_path: Path
) -> None:
    given = tmp_path / "sin_exportacion.dat"
    given.write_text(dat_invoice("E", "1") + _without_exportacion("E", "2"), encoding="utf-8")
    assert main(["submit", str(given), "--config", str(workspace), "--source", "ventas"]) == 1
    out = capsys.readouterr().out
    # the second invoice starts at line 6 (five lines each): its Exportacion is empty
    assert "sin_exportacion.dat:6:Exportacion" in out, out
    assert "Exportacion" in out and "obligatorio" in out
    assert set(stamps_by_key(sandbox.store)) == {("E", "1")}  # never stamped as "01"


def test_a_default_from_the_source_configuration_is_used_and_shown(
    workspace: Path, sandbox, capsys: pytest.CaptureFixture, tmp_path: Path
) -> None:
    _with_defaults(workspace, '{ Exportacion = "01" }')
    assert main(["check-config", "--config", str(workspace)]) == 0
    out = capsys.readouterr().out
    assert "Fuente 'ventas': un campo vacío toma su valor por omisión: Exportacion = '01'." in out
    assert "Fuente 'xml'" not in out
    given = tmp_path / "sin_exportacion.dat"
    given.write_text(_without_exportacion("F", "1"), encoding="utf-8")
    assert main(["submit", str(given), "--config", str(workspace), "--source", "ventas"]) == 0
    assert set(stamps_by_key(sandbox.store)) == {("F", "1")}
    (xml,) = (workspace.parent / "out" / "xml").glob("F1_*.xml")
    assert b'Exportacion="01"' in xml.read_bytes()


def test_check_config_refuses_a_default_for_a_field_the_mapping_does_not_read(
    workspace: Path, capsys: pytest.CaptureFixture
) -> None:
    _with_defaults(workspace, '{ Exportasion = "01" }')
    assert main(["check-config", "--config", str(workspace)]) == 2
    out = capsys.readouterr().out
    assert "sources[0].defaults.Exportasion" in out and "'Exportasion'" in out
