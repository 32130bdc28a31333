"""The service files: a well-formed systemd unit that runs ``cfdi-connector run --config``."""

from __future__ import annotations

import configparser
from pathlib import Path

from connector.cli import build_parser

SERVICE = Path(__file__).resolve().parents[2] / "service"


def test_systemd_unit_is_well_formed_and_runs_the_daemon() -> None:
    text = (SERVICE / "cfdi-connector.service").read_text(encoding="utf-8")
    unit = configparser.ConfigParser(strict=True, interpolation=None, comment_prefixes=("#", ";"))
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string(text)
    assert set(unit.sections()) == {"Unit", "Service", "Install"}
    svc = unit["Service"]
    argv = svc["ExecStart"].split()
    assert argv[0].endswith("/cfdi-connector") and argv[0].startswith("/")
    assert argv[1:3] == ["run", "--config"] and argv[3].endswith(".toml")
    # the command line the unit uses is one the CLI accepts
    args = build_parser().parse_args(argv[1:])
    assert args.command == "run" and args.config == argv[3]
    pre = svc["ExecStartPre"].split()
    assert build_parser().parse_args(pre[1:]).command == "check-config"
    assert svc["KillSignal"] == "SIGTERM" and svc["Restart"] == "on-failure"
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    # secrets come from an EnvironmentFile readable by root only, never inline in the unit
    assert "Environment" not in svc and svc["EnvironmentFile"].lstrip("-").startswith("/etc/")


def test_windows_instructions_use_the_console_script() -> None:
    ps1 = (SERVICE / "windows" / "install-service.ps1").read_text(encoding="utf-8")
    assert "nssm install $Name $Exe run --config $Config" in ps1
    doc = (SERVICE / "windows" / "README.md").read_text(encoding="utf-8")
    assert "sc.exe create" in doc and "run --config" in doc
