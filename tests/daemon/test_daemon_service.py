"""The service files: the hardened systemd unit shipped in service/, the one
``service install`` writes (checked by ``systemd-analyze verify`` where it exists), WinSW's XML,
and the systemd-credential password source."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from lxml import etree

from connector.cli import build_parser
from tests.daemon.conftest import write_config
from tests.daemon.test_daemon_service_control import plan_and_unit, system_root

SERVICE = Path(__file__).resolve().parents[2] / "service"


def read_unit(text: str) -> configparser.ConfigParser:
    unit = configparser.ConfigParser(
        strict=False, interpolation=None, comment_prefixes=("#", ";"), empty_lines_in_values=False
    )
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string(text)
    return unit


def all_values(text: str, key: str) -> list[str]:
    """Every value of a key that may repeat (LoadCredential=)."""
    return [line.split("=", 1)[1] for line in text.splitlines() if line.startswith(f"{key}=")]


def assert_hardened(text: str) -> configparser.SectionProxy:
    unit = read_unit(text)
    assert set(unit.sections()) == {"Unit", "Service", "Install"}
    svc = unit["Service"]
    assert svc["Type"] == "notify" and svc["NotifyAccess"] == "main"
    assert int(svc["WatchdogSec"]) > 0 and int(svc["TimeoutStopSec"]) >= 60
    assert svc["ProtectSystem"] == "strict" and svc["ReadWritePaths"].strip()
    assert svc["ProtectHome"] == "yes" and svc["PrivateTmp"] == "yes"
    assert svc["NoNewPrivileges"] == "yes"
    assert svc["CapabilityBoundingSet"] == ""  # no capability at all
    assert svc["RestrictAddressFamilies"].split() == ["AF_UNIX", "AF_INET", "AF_INET6"]
    assert svc["KillSignal"] == "SIGTERM" and svc["Restart"] == "on-failure"
    assert svc["ExecReload"] == "/bin/kill -HUP $MAINPID"  # SIGHUP: the configuration reloaded
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    # secrets never in the unit nor in an environment file: systemd credentials
    assert "Environment" not in svc and "EnvironmentFile" not in svc
    argv = svc["ExecStart"].split()
    args = build_parser().parse_args(argv[1:])  # a command line the CLI accepts
    assert args.command == "run" and args.config.endswith(".toml")
    pre = svc["ExecStartPre"].split()
    assert build_parser().parse_args(pre[1:]).command == "check-config"
    return svc


def test_shipped_systemd_unit_is_hardened_and_runs_the_daemon() -> None:
    text = (SERVICE / "cfdi-connector.service").read_text(encoding="utf-8")
    svc = assert_hardened(text)
    assert svc["ExecStart"].split()[0] == "/usr/local/bin/cfdi-connector"
    assert svc["ReadWritePaths"] == "/var/lib/cfdi-connector"
    creds = all_values(text, "LoadCredential")
    assert [c.split(":")[0] for c in creds] == ["csd-password", "pac-password"]
    assert all(c.split(":", 1)[1].startswith("/etc/cfdi-connector/credentials/") for c in creds)


def _credential_workspace(tmp_path: Path) -> Path:
    config = write_config(tmp_path / "ws", timbrado_url="http://127.0.0.1:9/x")
    text = config.read_text(encoding="utf-8")
    text = text.replace('password_file = "csd.pw"', 'password_credential = "csd-password"')
    text = text.replace('password_file = "pac.pw"', 'password_credential = "pac-password"')
    config.write_text(text, encoding="utf-8")
    return config


def _install(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "connector.cli", "service", "install", *args],
        capture_output=True, text=True, env={**os.environ, "CREDENTIALS_DIRECTORY": ""},
    )  # fmt: skip


def test_service_install_writes_the_unit_with_this_configurations_paths(tmp_path: Path) -> None:
    config = _credential_workspace(tmp_path)
    ws = config.parent
    shown = _install("--config", str(config), "--print")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    svc = assert_hardened(shown.stdout)
    assert svc["ExecStart"].endswith(f"run --config {config}")
    rw = svc["ReadWritePaths"].split()
    for folder in ("var", "inbox", "archive", "failed", "out/xml", "out/pdf", "work/ventas"):
        assert str(ws / folder) in rw, (folder, rw)
    assert str(ws) not in rw  # only what it writes: the configuration stays read-only
    creds = dict(c.split(":", 1) for c in all_values(shown.stdout, "LoadCredential"))
    assert sorted(creds) == ["csd-password", "pac-password"]
    # installing (into a system root of its own: never this machine's users) writes the same
    # unit and creates the folders it may write there
    root = system_root(tmp_path / "root")
    done = _install("--config", str(config), "--root", str(root))
    assert done.returncode == 0, done.stdout
    unit = root / "etc/systemd/system/cfdi-connector.service"
    assert plan_and_unit(shown.stdout)[1] == unit.read_text(encoding="utf-8")
    assert (root / str(ws / "out" / "acuse").lstrip("/")).is_dir()


def test_installed_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed on this machine")
    config = _credential_workspace(tmp_path)
    unit = tmp_path / "cfdi-connector.service"
    exe = shutil.which("cfdi-connector") or sys.executable  # verify needs an existing program
    shown = _install("--config", str(config), "--print", "--exe", exe)
    unit.write_text(shown.stdout, encoding="utf-8")
    r = subprocess.run([tool, "verify", str(unit)], capture_output=True, text=True)
    problems = [line for line in (r.stdout + r.stderr).splitlines() if "cfdi-connector" in line]
    assert r.returncode == 0 and problems == [], r.stdout + r.stderr


def test_windows_winsw_xml_stops_with_ctrl_c_restarts_on_failure_and_rolls_logs(
    tmp_path: Path,
) -> None:
    """The Windows service manager cannot run here: the XML WinSW reads and its command line
    are what is checked (docs/service.md says what was not run on real Windows)."""
    from connector.service.install import winsw_command

    config = _credential_workspace(tmp_path)
    exe = r"C:\Python311\Scripts\cfdi-connector.exe"
    shown = _install("--config", str(config), "--print", "--platform", "windows", "--exe", exe)
    assert shown.returncode == 0, shown.stdout
    root = etree.fromstring(shown.stdout.encode())
    assert root.tag == "service" and root.findtext("id") == "cfdi-connector"
    assert root.findtext("executable") == exe
    args = root.findtext("arguments") or ""
    assert args == f'run --config "{config}"'
    parsed = build_parser().parse_args(["run", "--config", str(config)])
    assert parsed.command == "run"
    assert root.findtext("stoptimeout") == "90 sec"
    assert root.findtext("stopparentprocessfirst") == "true"
    actions = [e.get("action") for e in root.findall("onfailure")]
    assert actions and set(actions) == {"restart"}
    log = root.find("log")
    assert log is not None and log.get("mode") == "roll-by-size"
    assert int(log.findtext("keepFiles") or 0) > 0
    assert root.findtext("logpath") == str(config.parent / "var")
    winsw = Path(r"C:\cfdi-connector\cfdi-connector-service.exe")
    assert winsw_command(winsw, "install") == [str(winsw), "install"]
    with pytest.raises(ValueError):
        winsw_command(winsw, "format")
    refused = _install("--config", str(config), "--platform", "windows")
    assert refused.returncode == 2 and "--winsw" in refused.stdout


def test_password_from_a_systemd_credential(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from connector.config import SecretError, check_config, read_secret

    config = _credential_workspace(tmp_path)
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "csd-password").write_text("12345678a\n", encoding="utf-8")
    (creds / "pac-password").write_text("demo", encoding="utf-8")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    cfg, problems = check_config(config)  # deep: the CSD opens with the credential
    assert cfg is not None, problems
    assert read_secret(cfg.emisores[0], "el CSD") == "12345678a"
    assert read_secret(cfg.pacs[0], "el PAC 'sandbox'") == "demo"
    monkeypatch.delenv("CREDENTIALS_DIRECTORY")
    with pytest.raises(SecretError, match="LoadCredential=csd-password"):
        read_secret(cfg.emisores[0], "el CSD")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path / "nada"))
    with pytest.raises(SecretError, match="No se puede leer la credencial 'pac-password'"):
        read_secret(cfg.pacs[0], "el PAC 'sandbox'")


def test_windows_instructions_use_the_console_script() -> None:
    ps1 = (SERVICE / "windows" / "install-service.ps1").read_text(encoding="utf-8")
    assert "nssm install $Name $Exe run --config $Config" in ps1
    doc = (SERVICE / "windows" / "README.md").read_text(encoding="utf-8")
    assert "sc.exe create" in doc and "run --config" in doc
    assert "service install --config" in doc and "WinSW" in doc
