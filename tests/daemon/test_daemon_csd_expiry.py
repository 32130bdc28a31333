"""check-config and status with an expired CSD, one about to expire, and one of another RFC.

The certificates are generated here in the shape of a SAT CSD (``tests/csd_support.py``), the
key as DER PKCS#8 encrypted with the password, so their validity can be set at will.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from connector.cli import main
from tests.csd_support import csd_shaped
from tests.daemon.conftest import RFC, write_config

PASSWORD = b"12345678a"  # the one write_config puts in csd.pw


def make_csd(base: Path, *, not_after: datetime, rfc: str = RFC) -> None:
    """``base``.cer / ``base``.key: a CSD-shaped certificate valid until ``not_after``."""
    cert, key = csd_shaped(rfc, not_after)
    base.with_suffix(".cer").write_bytes(cert.public_bytes(serialization.Encoding.DER))
    base.with_suffix(".key").write_bytes(
        key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(PASSWORD),
        )
    )


def config_with_csd(tmp_path: Path, *, not_after: datetime, rfc: str = RFC) -> Path:
    config = write_config(tmp_path / "ws", timbrado_url="http://127.0.0.1:9/timbrado")
    make_csd(tmp_path / "ws" / "csd", not_after=not_after, rfc=rfc)
    text = config.read_text(encoding="utf-8")
    lines = ['cer = "csd.cer"' if line.startswith("cer = ") else line for line in text.splitlines()]
    lines = ['key = "csd.key"' if line.startswith("key = ") else line for line in lines]
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return config


def run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_check_config_reports_an_expired_csd_as_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    config = config_with_csd(tmp_path, not_after=datetime.now(UTC) - timedelta(days=2))
    code, out = run(capsys, "check-config", "--config", str(config))
    assert code == 2, out
    assert "Configuración correcta" not in out
    assert "CONN-CSD-EXPIRED" in out and "csd.cer" in out and "venció el" in out
    assert f"{config}:" in out  # located at the emisor's cer line


def test_check_config_warns_of_a_csd_expiring_within_30_days_and_status_shows_it(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    config = config_with_csd(tmp_path, not_after=datetime.now(UTC) + timedelta(days=10, hours=1))
    code, out = run(capsys, "check-config", "--config", str(config))
    assert code == 0, out
    assert "Configuración correcta" in out
    assert "AVISO CONN-CSD-EXPIRING" in out and "en 10 día(s)" in out
    code, out = run(capsys, "status", "--config", str(config))
    assert code == 0, out
    assert "AVISO CONN-CSD-EXPIRING" in out and "csd.cer" in out
    from connector.journal import Journal

    Journal(config.parent / "var" / "journal.sqlite").close()
    code, out = run(capsys, "status", "--config", str(config), "--json")
    doc = json.loads(out)
    assert [n["code"] for n in doc.get("csd", [])] == ["CONN-CSD-EXPIRING"]


def test_status_shows_an_expired_csd(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = config_with_csd(tmp_path, not_after=datetime.now(UTC) - timedelta(hours=1))
    code, out = run(capsys, "status", "--config", str(config))
    assert code == 0, out  # status still answers
    assert "ERROR CONN-CSD-EXPIRED" in out


def test_a_valid_csd_has_no_note_and_another_rfc_is_still_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    later = datetime.now(UTC) + timedelta(days=400)
    config = config_with_csd(tmp_path / "a", not_after=later)
    code, out = run(capsys, "check-config", "--config", str(config))
    assert code == 0 and "CONN-CSD" not in out, out
    config = config_with_csd(tmp_path / "b", not_after=later, rfc="XIA190128J61")
    code, out = run(capsys, "check-config", "--config", str(config))
    assert code == 2 and "es del RFC XIA190128J61, no del emisor EKU9003173C9" in out, out
