"""``cfdi-connector service remove|start|stop|status``: the installed service driven through
the system's own tool, so an administrator uses one command on both systems.

- Linux: ``systemctl`` (``remove``: ``disable --now``, the unit file deleted, ``daemon-reload``;
  with ``--root DIR``, the system mounted at DIR is changed offline: ``systemctl --root=DIR
  disable`` and the unit deleted, nothing started or stopped).
- Windows: WinSW (``start``, ``stop``, ``status``; ``remove``: ``stop`` — a service already
  stopped is no error — then ``uninstall``).

The command lines are built by ``linux_commands`` and ``windows_commands`` and run through a
runner (``run_command``: ``subprocess``); a missing tool or a failed command is a coded Spanish
error with the tool's own words.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from connector.service.install import NAME, ServiceError, under, winsw_command

Runner = Callable[[list[str]], tuple[int, str]]
ACTIONS = ("remove", "start", "stop", "status")
# systemctl status: 0 running, 3 not running (stopped or failed): both an answer, not an error
_STATUS_OK = (0, 3)
_NO_UNIT = 4  # systemctl status: no such unit


def run_command(argv: list[str]) -> tuple[int, str]:
    """Runs ``argv``; its exit code and what it printed. ``FileNotFoundError``: no program."""
    r = subprocess.run(argv, capture_output=True, text=True)
    return r.returncode, r.stdout + r.stderr


def linux_commands(action: str, root: Path | None = None) -> list[list[str]]:
    """systemctl's command lines for ``action``, in order (``remove`` deletes the unit file
    between the two)."""
    if action not in ACTIONS:
        raise ValueError(action)
    if root is not None:
        if action != "remove":
            raise ValueError(f"{action} con --root")
        return [["systemctl", f"--root={root}", "disable", NAME]]
    if action == "remove":
        return [["systemctl", "disable", "--now", NAME], ["systemctl", "daemon-reload"]]
    if action == "status":
        return [["systemctl", "status", "--no-pager", NAME]]
    return [["systemctl", action, NAME]]


def windows_commands(action: str, winsw: Path) -> list[list[str]]:
    """WinSW's command lines for ``action``, in order."""
    if action not in ACTIONS:
        raise ValueError(action)
    if action == "remove":
        return [winsw_command(winsw, "stop"), winsw_command(winsw, "uninstall")]
    return [winsw_command(winsw, action)]


def _shown(argv: list[str]) -> str:
    """A command line as the administrator would type it on its system."""
    return subprocess.list2cmdline(argv) if "\\" in argv[0] else shlex.join(argv)


def _call(runner: Runner, argv: list[str], missing: ServiceError) -> tuple[int, str]:
    try:
        return runner(argv)
    except FileNotFoundError:
        raise missing from None
    except OSError as exc:
        raise ServiceError(
            "CONN-SERVICIO-ORDEN", f"No se pudo ejecutar `{_shown(argv)}`: {exc}."
        ) from None


def _failed(argv: list[str], rc: int, said: str) -> ServiceError:
    said = " ".join(said.split())
    return ServiceError(
        "CONN-SERVICIO-ORDEN",
        f"`{_shown(argv)}` terminó con el código {rc}{': ' + said if said else ''}. "
        "¿Se ejecutó como administrador (root) y está en marcha el gestor de servicios?",
    )


def control_linux(
    action: str, unit: Path, *, root: Path | None = None, runner: Runner = run_command,
    out: Callable[[str], None] = print,
) -> int:  # fmt: skip
    """``action`` on systemd; ``unit`` the installed unit file (as this machine sees it).
    Exit code: 0 done (``status``: running), 3 ``status`` of a service not running."""
    missing = ServiceError(
        "CONN-SERVICIO-SYSTEMCTL",
        "No se encontró systemctl: este sistema no usa systemd. Ejecute el conector con "
        "`cfdi-connector run --config ARCHIVO` desde el gestor de servicios que use.",
    )
    if action == "remove" and not unit.is_file():
        raise ServiceError(
            "CONN-SERVICIO-NO-INSTALADO", f"El servicio no está instalado (no existe {unit})."
        )
    first, *rest = linux_commands(action, root)
    rc, said = _call(runner, first, missing)
    if action == "status":
        if rc == _NO_UNIT:
            raise ServiceError(
                "CONN-SERVICIO-NO-INSTALADO",
                f"systemd no conoce el servicio {NAME}: instálelo con "
                "`sudo cfdi-connector service install --config ARCHIVO`.",
            )
        if rc not in _STATUS_OK:
            raise _failed(first, rc, said)
        out(said.rstrip())
        return rc
    if rc != 0:
        raise _failed(first, rc, said)
    if action == "remove":
        unit.unlink()
        for argv in rest:
            rc, said = _call(runner, argv, missing)
            if rc != 0:
                raise _failed(argv, rc, said)
        out(f"Servicio {NAME} quitado ({unit} borrado). El usuario, sus carpetas y el diario "
            "se conservan.")  # fmt: skip
    else:
        out({"start": f"Servicio {NAME} iniciado.", "stop": f"Servicio {NAME} detenido."}[action])
    return 0


def control_windows(
    action: str, winsw: Path, *, runner: Runner = run_command,
    out: Callable[[str], None] = print,
) -> int:  # fmt: skip
    """``action`` through WinSW (its executable, renamed after the service)."""
    missing = ServiceError(
        "CONN-SERVICIO-WINSW",
        f"No se encontró WinSW en {winsw}: indique con --winsw la ruta del ejecutable de "
        "WinSW con el que se instaló el servicio.",
    )
    commands = windows_commands(action, winsw)
    for i, argv in enumerate(commands):
        rc, said = _call(runner, argv, missing)
        if said.strip():
            out(said.rstrip())
        tolerated = action == "remove" and i == 0  # stopping one already stopped
        if rc != 0 and not tolerated:
            raise _failed(argv, rc, said)
    return 0


def cmd_control(args: Any, runner: Runner = run_command) -> int:
    platform = args.platform or ("windows" if os.name == "nt" else "linux")
    try:
        if platform == "windows":
            if not args.winsw:
                print("CONN-SERVICIO Indique con --winsw la ruta de WinSW con el que se instaló "
                      "el servicio (p. ej. C:\\cfdi-connector\\cfdi-connector-service.exe).")  # fmt: skip
                return 2
            return control_windows(args.action, Path(args.winsw), runner=runner)
        root = Path(os.path.abspath(args.root)) if getattr(args, "root", None) else None
        if root is not None and args.action != "remove":
            print(f"CONN-SERVICIO --root solo sirve para install y remove: {args.action} necesita "
                  "el systemd en marcha de esta máquina.")  # fmt: skip
            return 2
        unit = under(root or Path("/"), Path(args.unit_dir)) / f"{NAME}.service"
        return control_linux(args.action, unit, root=root, runner=runner)
    except ServiceError as exc:
        print(exc)
        return 1
