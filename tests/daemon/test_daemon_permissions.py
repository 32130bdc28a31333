"""Issue 17.9: secrets, the journal and the outputs are not readable by every user."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from connector.cli import main
from connector.demo.workspace import CSD_BASE, build_workspace
from tests.daemon.conftest import dat_file, start_pipeline

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_demo_writes_secrets_0600_and_check_config_warns_when_others_can_read_them(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    base = tmp_path / "demo"
    (base / "secrets").mkdir(parents=True)
    (base / "secrets" / "pac.password").write_text("vieja", encoding="utf-8")
    (base / "secrets" / "pac.password").chmod(0o644)  # left by an older demo
    old = os.umask(0o022)
    try:
        config = build_workspace(
            base, timbrado_url="http://127.0.0.1:9/t", remote_url="http://127.0.0.1:9/r"
        )
    finally:
        os.umask(old)
    key = base / "csd" / f"{CSD_BASE}.key"
    secrets = [key, base / "secrets" / "csd.password", base / "secrets" / "pac.password"]
    assert [mode(p) for p in secrets] == [0o600, 0o600, 0o600]
    assert (base / "secrets" / "pac.password").read_text(encoding="utf-8") == "demo"
    assert main(["check-config", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "CONN-CFG-PERMISOS" not in out and "Configuración correcta" in out

    key.chmod(0o644)
    (base / "secrets" / "pac.password").chmod(0o640)
    assert main(["check-config", "--config", str(config)]) == 0  # a warning, not an error
    out = capsys.readouterr().out
    warnings = [line for line in out.splitlines() if "AVISO CONN-CFG-PERMISOS" in line]
    assert len(warnings) == 2, out
    key_warning, pac_warning = warnings
    assert "(emisores[0].key)]" in key_warning and str(key) in key_warning
    assert "0644" in key_warning and "para el grupo y para todos" in key_warning
    assert "chmod 600" in key_warning
    assert "(pacs[0].password_file)]" in pac_warning and "0640" in pac_warning
    assert "Configuración correcta" in out


def test_journal_is_0600_and_outputs_0640_or_the_stricter_umask(workspace: Path) -> None:
    ws = workspace.parent
    old = os.umask(0o022)
    try:
        (ws / "inbox" / "ventas.dat").write_bytes(dat_file("P", [1]))
        (ws / "inbox" / "malo.dat").write_bytes(b"esto no es un DAT\n")
        pipe = start_pipeline(workspace)
        try:
            assert pipe.run_until_idle(60)
            journal = ws / "var" / "journal.sqlite"
            assert mode(journal) == 0o600
            assert mode(Path(f"{journal}-wal")) == 0o600
            outputs = [p for d in ("xml", "pdf", "acuse") for p in (ws / "out" / d).iterdir()]
            outputs += list((ws / "failed").glob("malo.dat.error.*"))
            assert len(outputs) == 5
            assert {mode(p) for p in outputs} == {0o640}
            os.umask(0o077)  # a stricter umask wins
            (ws / "inbox" / "ventas2.dat").write_bytes(dat_file("P", [2]))
            pipe.wake.set()
            assert pipe.run_until_idle(60)
        finally:
            pipe.close()
        second = list((ws / "out" / "xml").glob("P2_*"))
        assert len(second) == 1 and mode(second[0]) == 0o600
    finally:
        os.umask(old)
