"""Issue 13, ``change-password --config F --pac NAME``: the new password is never an argument
(typed twice without echo, or read from a file); the PAC (the sandbox over HTTP) gets it and the
configuration's password_file is rewritten, so ``credits`` and the daemon use it."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.cli import main


def test_change_password_updates_the_pac_and_the_password_file(
    workspace: Path, sandbox, tmp_path: Path, monkeypatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = workspace.parent
    cfg = ["--config", str(workspace), "--pac", "sandbox"]
    old = (ws / "pac.pw").read_text("utf-8")
    answers = iter(["nueva-clave-1", "otra-cosa-22"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    assert main(["change-password", *cfg]) == 2  # typed twice, not the same: nothing changed
    assert "no coinciden" in capsys.readouterr().err
    short = tmp_path / "corta.txt"
    short.write_text("corta\n", encoding="utf-8")
    assert main(["change-password", *cfg, "--new-password-file", str(short)]) == 2
    assert "8 caracteres" in capsys.readouterr().err
    assert (ws / "pac.pw").read_text("utf-8") == old
    assert main(["credits", *cfg]) == 0

    new = tmp_path / "nueva.txt"
    new.write_text("Nueva-Clave-2026\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["change-password", *cfg, "--new-password-file", str(new)]) == 0
    out = capsys.readouterr()
    assert "Nueva-Clave-2026" not in out.out + out.err  # never printed
    assert (ws / "pac.pw").read_text("utf-8").strip() == "Nueva-Clave-2026"
    assert (ws / "pac.pw").stat().st_mode & 0o077 == 0
    assert main(["credits", *cfg]) == 0  # the configuration now carries the new one
    (ws / "pac.pw").write_text(old, encoding="utf-8")
    assert main(["credits", *cfg]) == 1  # and the PAC refuses the old one
    assert "contraseña inválidos" in capsys.readouterr().err


def test_change_password_with_a_systemd_credential_says_where_to_write_it(
    workspace: Path, sandbox, tmp_path: Path, monkeypatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The credential's file is root's (systemd hands the service a copy): the command says
    which credential to rewrite instead of naming an environment variable that is not used."""
    ws = workspace.parent
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "pac-password").write_text((ws / "pac.pw").read_text("utf-8"), encoding="utf-8")
    text = workspace.read_text("utf-8")
    workspace.write_text(
        text.replace('password_file = "pac.pw"', 'password_credential = "pac-password"'), "utf-8"
    )
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    new = tmp_path / "nueva.txt"
    new.write_text("Nueva-Clave-2027\n", encoding="utf-8")
    cfg = ["--config", str(workspace), "--pac", "sandbox"]
    assert main(["change-password", *cfg, "--new-password-file", str(new)]) == 0
    out = capsys.readouterr().out
    assert "credencial 'pac-password'" in out and "LoadCredential=" in out
    assert "variable de entorno" not in out
