"""Issue 12, the service's life cycle: ``service install`` creates the ``cfdi`` system user (only
when missing) and the folders it writes, owned by it (run here as root into a system root of
its own, never this machine's ``/etc/passwd``); ``service remove|start|stop|status`` through
the real ``systemctl`` (which cannot manage services in this container: its refusal is the
coded error tested) and, on Windows, through WinSW, whose exact command lines are checked with
a runner standing in for it (WinSW cannot run here)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from connector.cli import build_parser
from connector.service.control import cmd_control, linux_commands, windows_commands
from connector.service.install import ServiceError
from tests.daemon.conftest import write_config

ROOT_ONLY = pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0,
    reason="creating a system user and giving it folders needs root",
)
USERADD = ["--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin"]


def system_root(root: Path) -> Path:
    """The user database of a minimal system mounted at ``root`` (what useradd --prefix reads
    and writes): root only."""
    (root / "etc").mkdir(parents=True)
    for name, line in (
        ("passwd", "root:x:0:0:root:/root:/bin/bash"),
        ("group", "root:x:0:"),
        ("shadow", "root:*:19000:0:99999:7:::"),
        ("gshadow", "root:*::"),
    ):
        (root / "etc" / name).write_text(line + "\n", encoding="utf-8")
    return root


def plan_and_unit(printed: str) -> tuple[list[str], str]:
    """``--print``'s output: the commands of its leading comment, and the unit after it."""
    head, sep, unit = printed.partition("\n#\n")
    assert sep and head.startswith("# `sudo cfdi-connector service install` (como root)")
    commands = [line[4:] for line in head.splitlines()[1:] if line.startswith("#   ")]
    return commands, unit


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "connector.cli", "service", *args],
        capture_output=True, text=True, env={**os.environ, "CREDENTIALS_DIRECTORY": "", **(env or {})},
    )  # fmt: skip


def _inside(root: Path, path: Path) -> Path:
    return root / str(path).lstrip("/")


def _passwd(root: Path, user: str) -> list[list[str]]:
    lines = (root / "etc" / "passwd").read_text(encoding="utf-8").splitlines()
    return [line.split(":") for line in lines if line.split(":")[0] == user]


def test_print_lists_the_user_and_folders_before_the_unit(tmp_path: Path) -> None:
    config = write_config(tmp_path / "ws", timbrado_url="http://127.0.0.1:9/x")
    ws = config.parent
    root = system_root(tmp_path / "root")
    shown = cli("install", "--config", str(config), "--print", "--root", str(root))
    assert shown.returncode == 0, shown.stdout + shown.stderr
    commands, unit = plan_and_unit(shown.stdout)
    assert commands[0] == " ".join(["useradd", "--prefix", str(root), *USERADD, "cfdi"])
    var = _inside(root, ws / "var")
    assert f"mkdir -p {var}" in commands and f"chown cfdi {var}" in commands
    assert commands.index(f"mkdir -p {var}") < commands.index(f"chown cfdi {var}")
    assert "ReadWritePaths=" in unit and f"{ws / 'var'}" in unit  # the paths as run, unprefixed
    assert not _passwd(root, "cfdi") and not var.exists()  # --print changes nothing
    # the user there already: no useradd in the plan
    with (root / "etc" / "passwd").open("a", encoding="utf-8") as f:
        f.write("cfdi:x:990:990::/nonexistent:/usr/sbin/nologin\n")
    again = cli("install", "--config", str(config), "--print", "--root", str(root))
    commands, _ = plan_and_unit(again.stdout)
    assert not [c for c in commands if c.startswith("useradd")]
    assert f"chown cfdi {var}" in commands


@ROOT_ONLY
def test_install_as_root_creates_the_system_user_once_and_gives_it_the_folders(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path / "ws", timbrado_url="http://127.0.0.1:9/x")
    ws = config.parent
    root = system_root(tmp_path / "root")
    machine = Path("/etc/passwd").read_bytes()
    inbox = _inside(root, ws / "inbox")
    inbox.mkdir(parents=True)
    os.chown(inbox, 0, 4321)  # the ERP writes here through its group: group and mode kept
    inbox.chmod(0o2775)
    done = cli("install", "--config", str(config), "--root", str(root))
    assert done.returncode == 0, done.stdout + done.stderr
    ((name, _, uid, gid, _, home, shell),) = _passwd(root, "cfdi")
    assert shell == "/usr/sbin/nologin" and 0 < int(uid) < 1000  # a system account
    assert not _inside(root, Path(home)).exists()  # no home created
    group = (root / "etc" / "group").read_text(encoding="utf-8")
    assert f"cfdi:x:{gid}:" in group  # its own group, the unit's Group=
    for folder in ("var", "inbox", "archive", "failed", "out/xml", "out/pdf", "work/ventas"):
        assert _inside(root, ws / folder).stat().st_uid == int(uid), folder
    # the ERP's group and mode on the inbox are kept (it writes there)
    assert inbox.stat().st_gid == 4321 and stat.S_IMODE(inbox.stat().st_mode) == 0o2775
    unit = root / "etc/systemd/system/cfdi-connector.service"
    assert "User=cfdi" in unit.read_text(encoding="utf-8")
    # again: the user exists, so no second useradd, and nothing fails
    shown = cli("install", "--config", str(config), "--print", "--root", str(root))
    assert "useradd" not in shown.stdout
    assert cli("install", "--config", str(config), "--root", str(root)).returncode == 0
    assert len(_passwd(root, "cfdi")) == 1
    assert Path("/etc/passwd").read_bytes() == machine  # this machine's users untouched

    # remove, offline in that root: systemctl --root disables it, the unit file goes
    systemctl = shutil.which("systemctl")
    if systemctl is None:
        gone = cli("remove", "--root", str(root))
        assert gone.returncode == 1 and gone.stdout.startswith("CONN-SERVICIO-SYSTEMCTL")
        return
    subprocess.run([systemctl, f"--root={root}", "enable", "cfdi-connector"], check=True,
                   capture_output=True)  # fmt: skip
    wants = root / "etc/systemd/system/multi-user.target.wants/cfdi-connector.service"
    assert wants.is_symlink()
    gone = cli("remove", "--root", str(root))
    assert gone.returncode == 0, gone.stdout + gone.stderr
    assert not unit.exists() and not wants.is_symlink()
    assert _passwd(root, "cfdi") and _inside(root, ws / "var").is_dir()  # kept
    again = cli("remove", "--root", str(root))
    assert again.returncode == 1 and again.stdout.startswith("CONN-SERVICIO-NO-INSTALADO")


def test_install_as_root_refuses_with_a_coded_error_when_useradd_fails(tmp_path: Path) -> None:
    """A root with no user database: useradd fails and says why; nothing is written."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("useradd runs only as root")
    config = write_config(tmp_path / "ws", timbrado_url="http://127.0.0.1:9/x")
    root = tmp_path / "empty"
    root.mkdir()
    done = cli("install", "--config", str(config), "--root", str(root))
    assert done.returncode == 2
    assert done.stdout.startswith("CONN-SERVICIO-USUARIO No se pudo crear el usuario del servicio")
    assert "useradd --prefix" in done.stdout
    assert not (root / "etc/systemd/system/cfdi-connector.service").exists()


def test_systemctl_command_lines() -> None:
    name = "cfdi-connector"
    assert linux_commands("start") == [["systemctl", "start", name]]
    assert linux_commands("stop") == [["systemctl", "stop", name]]
    assert linux_commands("status") == [["systemctl", "status", "--no-pager", name]]
    assert linux_commands("remove") == [
        ["systemctl", "disable", "--now", name],
        ["systemctl", "daemon-reload"],
    ]
    assert linux_commands("remove", Path("/mnt/img")) == [
        ["systemctl", "--root=/mnt/img", "disable", name]
    ]
    for bad in (("restart", None), ("start", Path("/mnt/img"))):
        with pytest.raises(ValueError):
            linux_commands(*bad)


@pytest.mark.parametrize("action", ["start", "stop", "status"])
def test_linux_actions_run_systemctl_and_its_failure_is_a_coded_error(action: str) -> None:
    """The real systemctl of this machine: where systemd is not PID 1 (a container) it cannot
    operate; where it is, there is no cfdi-connector unit. Either way a coded Spanish error
    quoting the command, never a traceback."""
    if shutil.which("systemctl") is None:
        pytest.skip("systemctl is not installed on this machine (see the test without it)")
    r = cli(action)
    assert r.returncode == 1, r.stdout + r.stderr
    assert r.stdout.startswith(("CONN-SERVICIO-ORDEN `systemctl ", "CONN-SERVICIO-NO-INSTALADO"))
    assert "Traceback" not in r.stderr
    if r.stdout.startswith("CONN-SERVICIO-ORDEN"):
        assert f" {action} " in r.stdout and "terminó con el código" in r.stdout


def test_remove_keeps_the_unit_when_systemctl_cannot_disable_it(tmp_path: Path) -> None:
    unit = tmp_path / "cfdi-connector.service"
    unit.write_text("[Service]\nExecStart=/bin/true\n", encoding="utf-8")
    if shutil.which("systemctl") is None:
        pytest.skip("systemctl is not installed on this machine (see the test without it)")
    r = cli("remove", "--unit-dir", str(tmp_path))
    assert r.returncode == 1
    assert r.stdout.startswith("CONN-SERVICIO-ORDEN `systemctl disable --now cfdi-connector`")
    assert unit.is_file()  # never deleted while the service may still be enabled or running


def test_without_systemctl_each_action_says_so(tmp_path: Path) -> None:
    unit = tmp_path / "cfdi-connector.service"
    unit.write_text("[Service]\nExecStart=/bin/true\n", encoding="utf-8")
    empty = tmp_path / "bin"
    empty.mkdir()
    for action in ("start", "stop", "status", "remove"):
        r = cli(action, "--unit-dir", str(tmp_path), env={"PATH": str(empty)})
        assert r.returncode == 1, (action, r.stdout, r.stderr)
        assert r.stdout.startswith("CONN-SERVICIO-SYSTEMCTL No se encontró systemctl"), action
    assert unit.is_file()
    r = cli("remove", "--unit-dir", str(tmp_path / "nada"))
    assert r.returncode == 1 and r.stdout.startswith("CONN-SERVICIO-NO-INSTALADO")


def test_linux_answers_a_running_systemd_would_give(tmp_path: Path) -> None:
    """systemd cannot manage services in this container: a stand-in answers as systemctl does
    on a real machine (exit codes from systemctl(1)), to check what is made of them."""
    from connector.service.control import control_linux

    unit = tmp_path / "cfdi-connector.service"
    unit.write_text("[Service]\nExecStart=/bin/true\n", encoding="utf-8")
    said: list[str] = []

    def systemctl(answers: dict[str, tuple[int, str]]):  # type: ignore[no-untyped-def]
        calls: list[list[str]] = []

        def run(argv: list[str]) -> tuple[int, str]:
            calls.append(argv)
            return answers.get(argv[1], (0, ""))

        return run, calls

    run, calls = systemctl({"status": (3, "○ cfdi-connector.service - inactive (dead)\n")})
    assert control_linux("status", unit, runner=run, out=said.append) == 3  # stopped: no error
    assert said[-1].endswith("inactive (dead)")
    run, _ = systemctl({"status": (4, "Unit cfdi-connector.service could not be found.")})
    with pytest.raises(ServiceError) as info:
        control_linux("status", unit, runner=run, out=said.append)
    assert info.value.code == "CONN-SERVICIO-NO-INSTALADO"
    run, calls = systemctl({})
    assert control_linux("start", unit, runner=run, out=said.append) == 0
    assert calls == [["systemctl", "start", "cfdi-connector"]] and "iniciado" in said[-1]
    run, calls = systemctl({})
    assert control_linux("remove", unit, runner=run, out=said.append) == 0
    assert calls == linux_commands("remove") and not unit.exists()
    with pytest.raises(ServiceError) as info:  # nothing left to remove
        control_linux("remove", unit, runner=run, out=said.append)
    assert info.value.code == "CONN-SERVICIO-NO-INSTALADO" and len(calls) == 2


class FakeWinSW:
    """Stands in for WinSW's executable (it cannot run here): records each command line and
    answers with an exit code and text per action."""

    def __init__(self, answers: dict[str, tuple[int, str]] | None = None, missing: bool = False):
        self.calls: list[list[str]] = []
        self.answers = answers or {}
        self.missing = missing

    def __call__(self, argv: list[str]) -> tuple[int, str]:
        if self.missing:
            raise FileNotFoundError(argv[0])
        self.calls.append(argv)
        return self.answers.get(argv[-1], (0, ""))


def _windows(*args: str) -> object:
    return build_parser().parse_args(["service", *args, "--platform", "windows"])


def test_windows_actions_run_exactly_these_winsw_command_lines(
    capsys: pytest.CaptureFixture[str],
) -> None:
    exe = r"C:\cfdi-connector\cfdi-connector-service.exe"
    w = Path(exe)
    for action, expected in (
        ("start", [[exe, "start"]]),
        ("stop", [[exe, "stop"]]),
        ("status", [[exe, "status"]]),
        ("remove", [[exe, "stop"], [exe, "uninstall"]]),
    ):
        assert windows_commands(action, w) == expected
        fake = FakeWinSW({"status": (0, "Started\n")})
        assert cmd_control(_windows(action, "--winsw", exe), runner=fake) == 0, action
        assert fake.calls == expected, action
    assert "Started" in capsys.readouterr().out
    # remove of a service already stopped: WinSW's stop fails, the uninstall still runs
    fake = FakeWinSW({"stop": (1, "The service has not been started.")})
    assert cmd_control(_windows("remove", "--winsw", exe), runner=fake) == 0
    assert fake.calls == [[exe, "stop"], [exe, "uninstall"]]
    # a failed uninstall or start is a coded error quoting WinSW
    fake = FakeWinSW({"uninstall": (1, "Access is denied.")})
    assert cmd_control(_windows("remove", "--winsw", exe), runner=fake) == 1
    out = capsys.readouterr().out
    assert (
        f"CONN-SERVICIO-ORDEN `{exe} uninstall` terminó con el código 1: Access is denied." in out
    )
    fake = FakeWinSW({"start": (1064, "")})
    assert cmd_control(_windows("start", "--winsw", exe), runner=fake) == 1
    assert "terminó con el código 1064." in capsys.readouterr().out
    # WinSW not where it was said to be; no --winsw at all
    assert cmd_control(_windows("status", "--winsw", exe), runner=FakeWinSW(missing=True)) == 1
    assert capsys.readouterr().out.startswith(f"CONN-SERVICIO-WINSW No se encontró WinSW en {w}")
    fake = FakeWinSW()
    assert cmd_control(_windows("start"), runner=fake) == 2 and fake.calls == []
    assert "--winsw" in capsys.readouterr().out
    with pytest.raises(ValueError):
        windows_commands("restart", w)
