"""``cfdi-connector service install --config FILE [--print]``: the service definition with this
machine's paths filled in, so an administrator never hand-edits one.

- Linux: a hardened systemd unit (``Type=notify``, ``WatchdogSec=``, ``ProtectSystem=strict``
  with ``ReadWritePaths=`` for exactly the folders the configuration writes, secrets through
  ``LoadCredential=`` for every ``password_credential``); written to ``/etc/systemd/system``.
  Run as root it first creates the ``cfdi`` system user when it is missing (``useradd
  --system``) and the writable folders owned by it (``linux_steps``: ``--print`` lists them);
  ``--root DIR`` does all of it inside a system mounted at DIR (an image, a chroot).
- Windows: a WinSW service (XML beside WinSW's executable, renamed after the service: stop
  timeout, restart on failure, log roll), then ``<winsw> install``. WinSW stops the console
  program with Ctrl-C, which reaches the same clean stop as SIGTERM.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

NAME = "cfdi-connector"
WATCHDOG_SECONDS = 60
STOP_SECONDS = 90  # the PAC's timeout for the requests in flight, with room


def executable() -> str:
    """The console script this install runs (absolute), else ``python -m connector.cli``."""
    found = shutil.which(NAME)
    if found:
        return str(Path(found).resolve()) if "shims" in found else os.path.abspath(found)
    return f"{sys.executable} -m connector.cli"


def _quote(arg: str) -> str:
    """systemd's command-line quoting (paths with spaces)."""
    if not arg or any(c in arg for c in " \t\"'\\"):
        return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return arg


def writable_paths(cfg: Any) -> list[Path]:
    """Every folder the daemon writes: the journal's, the log's, each source's inbox (files
    are moved out of it), work, archive, failed and outputs."""
    paths: list[Path] = [cfg.daemon.journal.parent]
    if cfg.daemon.log_file is not None:
        paths.append(cfg.daemon.log_file.parent)
    for s in cfg.sources:
        o = s.output
        outs = (o.xml, o.pdf, o.acuse, o.errors) if o is not None else ()
        for p in (s.inbox, s.work, s.archive, s.failed, *outs):
            if p is not None:
                paths.append(Path(p))
    out: list[Path] = []
    for p in sorted({Path(os.path.abspath(p)) for p in paths}):
        if not any(p.is_relative_to(q) for q in out):  # a parent already covers it
            out.append(p)
    return out


def credentials(cfg: Any) -> list[str]:
    names = [getattr(x, "password_credential", None) for x in (*cfg.emisores, *cfg.pacs)]
    return sorted({n for n in names if n})


def systemd_unit(
    config: Path, cfg: Any, *, exe: str | None = None, user: str = "cfdi",
    credentials_dir: Path = Path("/etc/cfdi-connector/credentials"),
) -> str:  # fmt: skip
    """The unit's text."""
    exe = exe or executable()
    config = Path(os.path.abspath(config))
    conf = _quote(str(config))
    rw = " ".join(_quote(str(p)) for p in writable_paths(cfg))
    creds = "".join(f"LoadCredential={n}:{credentials_dir / n}\n" for n in credentials(cfg))
    http = ""
    if cfg.daemon.http:
        http = f"# liveness for other monitors: curl -f http://{cfg.daemon.http}/healthz\n"
    return f"""# systemd unit for cfdi-connector, written by `cfdi-connector service install`.
#
#   `sudo cfdi-connector service install` created the {user} system user and its folders.
#   passwords: password_credential = "NAME" in the TOML, the secret in
#   {credentials_dir}/NAME (mode 0600, root): systemd hands it to the service alone.
#   sudo systemctl daemon-reload && sudo systemctl enable --now {NAME}
#   journalctl -u {NAME} -f
#
# Type=notify: READY=1 after the recovery, WATCHDOG=1 from the main loop (a hung loop is
# restarted), STOPPING=1; a stop drains the PAC requests in flight and leaves the rest
# resumable in the journal, so `systemctl stop`/`restart` is safe.
{http}
[Unit]
Description=cfdi-connector: ERP exports to stamped CFDI 4.0 through a PAC
After=network-online.target
Wants=network-online.target

[Service]
Type=notify
NotifyAccess=main
User={user}
Group={user}
WorkingDirectory={_quote(str(config.parent))}
{creds}ExecStartPre={exe} check-config --config {conf}
ExecStart={exe} run --config {conf}
ExecReload=/bin/kill -HUP $MAINPID
KillSignal=SIGTERM
TimeoutStartSec=120
TimeoutStopSec={STOP_SECONDS}
WatchdogSec={WATCHDOG_SECONDS}
Restart=on-failure
RestartSec=5
UMask=0027
NoNewPrivileges=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectSystem=strict
ReadWritePaths={rw}
ProtectHome=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectControlGroups=yes
RestrictNamespaces=yes
RestrictSUIDSGID=yes
LockPersonality=yes
CapabilityBoundingSet=
AmbientCapabilities=
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
SystemCallArchitectures=native

[Install]
WantedBy=multi-user.target
"""


def winsw_xml(config: Path, *, exe: str, log_dir: Path | None = None) -> str:
    """WinSW's service definition (the XML beside WinSW's executable)."""
    import ntpath

    conf = str(config) if ntpath.isabs(str(config)) else os.path.abspath(config)
    logs = escape(str(log_dir)) if log_dir is not None else "%BASE%\\logs"
    return f"""<!-- WinSW service for cfdi-connector, written by `cfdi-connector service install`.
     WinSW stops the program with Ctrl-C: the same clean stop as SIGTERM (the PAC requests in
     flight finish, the rest stays resumable); past stoptimeout it is ended, which the journal
     also survives. -->
<service>
  <id>{NAME}</id>
  <name>cfdi-connector</name>
  <description>ERP exports to stamped CFDI 4.0 through a PAC</description>
  <executable>{escape(exe)}</executable>
  <arguments>run --config "{escape(conf)}"</arguments>
  <workingdirectory>{escape(ntpath.dirname(conf))}</workingdirectory>
  <startmode>Automatic</startmode>
  <delayedAutoStart>true</delayedAutoStart>
  <stoptimeout>{STOP_SECONDS} sec</stoptimeout>
  <stopparentprocessfirst>true</stopparentprocessfirst>
  <onfailure action="restart" delay="10 sec"/>
  <onfailure action="restart" delay="30 sec"/>
  <onfailure action="restart" delay="60 sec"/>
  <resetfailure>1 hour</resetfailure>
  <logpath>{logs}</logpath>
  <log mode="roll-by-size">
    <sizeThreshold>10240</sizeThreshold>
    <keepFiles>8</keepFiles>
  </log>
</service>
"""


def winsw_command(winsw: Path, action: str) -> list[str]:
    """WinSW's command line for ``install``, ``uninstall``, ``start``, ``stop``, ``status``."""
    if action not in ("install", "uninstall", "start", "stop", "status"):
        raise ValueError(action)
    return [str(winsw), action]


class ServiceError(Exception):
    """A service operation that failed: its code and its Spanish message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code} {message}")
        self.code, self.message = code, message


USERADD = ("--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin")


@dataclass(frozen=True)
class Step:
    """One step of an installation: the command an administrator would type (``--print``)
    and what does it here."""

    argv: tuple[str, ...]
    run: Callable[[], None]

    @property
    def shell(self) -> str:
        return shlex.join(self.argv)


def under(root: Path, path: Path) -> Path:
    """``path`` of the system mounted at ``root`` as this machine sees it (``/``: itself)."""
    path = Path(os.path.abspath(path))
    return path if root == Path("/") else root / path.relative_to(path.anchor)


def user_id(user: str, root: Path = Path("/")) -> int | None:
    """The uid of ``user`` in the system at ``root``; None when it has no such user.
    ``/`` asks the system (NSS: LDAP users too), another root its ``etc/passwd``."""
    if root == Path("/"):
        try:
            import pwd

            pw = pwd.getpwnam(user)
        except (ImportError, KeyError):
            return None
        return pw.pw_uid
    try:
        lines = (root / "etc" / "passwd").read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return None
    for line in lines:
        fields = line.split(":")
        if len(fields) >= 3 and fields[0] == user:
            return int(fields[2])
    return None


def _useradd(argv: tuple[str, ...]) -> None:
    try:
        r = subprocess.run(argv, capture_output=True, text=True)
    except FileNotFoundError:
        raise ServiceError(
            "CONN-SERVICIO-USUARIO",
            f"No se encontró useradd para crear el usuario del servicio; créelo a mano: "
            f"{shlex.join(argv)}",
        ) from None
    if r.returncode != 0:
        said = (r.stderr or r.stdout).strip()
        raise ServiceError(
            "CONN-SERVICIO-USUARIO",
            f"No se pudo crear el usuario del servicio: `{shlex.join(argv)}` terminó con el "
            f"código {r.returncode}{': ' + said if said else ''}.",
        )


def _chown(path: Path, user: str, root: Path) -> None:
    uid = user_id(user, root)
    if uid is None:
        raise ServiceError(
            "CONN-SERVICIO-USUARIO",
            f"El usuario {user!r} no existe: no se le puede dar la carpeta {path}.",
        )
    os.chown(path, uid, -1)  # the owner only: the group (an ERP's, on the inbox) stays


def linux_steps(cfg: Any, *, user: str, root: Path = Path("/"), as_root: bool = True) -> list[Step]:
    """What ``service install`` does before writing the unit: the system user when it is
    missing (as root only), then each folder the service writes, created and (as root) owned
    by the user. Nothing else is changed: an existing folder keeps its group and mode, so an
    ERP that writes into the inbox through its group still can."""
    steps: list[Step] = []
    if as_root and user_id(user, root) is None:
        prefix = () if root == Path("/") else ("--prefix", str(root))
        argv = ("useradd", *prefix, *USERADD, user)
        steps.append(Step(argv, partial(_useradd, argv)))
    for p in writable_paths(cfg):
        target = under(root, p)
        steps.append(Step(("mkdir", "-p", str(target)),
                          partial(target.mkdir, parents=True, exist_ok=True)))  # fmt: skip
        if as_root:
            steps.append(Step(("chown", user, str(target)),
                              partial(_chown, target, user, root)))  # fmt: skip
    return steps


def plan_text(steps: list[Step], target: Path) -> str:
    """The steps as the comment ``--print`` puts before the unit (still a valid unit)."""
    lines = ["# `sudo cfdi-connector service install` (como root) ejecutaría:"]
    lines += [f"#   {step.shell}" for step in steps]
    lines.append(f"# y escribiría esta unidad en {target}")
    return "\n".join(lines) + "\n#\n"


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def cmd_service(args: Any) -> int:
    """``service install`` (the other actions: ``control.cmd_control``)."""
    from connector.daemon import _load

    config = Path(args.config)
    cfg = _load(config, deep=False)
    if cfg is None:
        return 2
    platform = args.platform or ("windows" if os.name == "nt" else "linux")
    if platform == "windows":
        exe = args.exe or (shutil.which(NAME) or f"{NAME}.exe")
        log_dir = cfg.daemon.log_file.parent if cfg.daemon.log_file is not None else None
        xml = winsw_xml(config, exe=exe, log_dir=log_dir)
        if args.print:
            print(xml, end="")
            return 0
        if not args.winsw:
            print("CONN-SERVICIO Indique con --winsw la ruta de WinSW (p. ej. "
                  "C:\\cfdi-connector\\cfdi-connector-service.exe): el XML se escribe a su lado.")  # fmt: skip
            return 2
        winsw = Path(args.winsw)
        winsw.with_suffix(".xml").write_text(xml, encoding="utf-8")
        print(f"Servicio descrito en {winsw.with_suffix('.xml')}.")
        return subprocess.call(winsw_command(winsw, "install"))
    unit = systemd_unit(config, cfg, exe=args.exe, user=args.user)
    root = Path(os.path.abspath(args.root)) if args.root else Path("/")
    target = under(root, Path(args.unit_dir)) / f"{NAME}.service"
    if args.print:
        print(plan_text(linux_steps(cfg, user=args.user, root=root), target) + unit, end="")
        return 0
    as_root = _is_root()
    try:
        for step in linux_steps(cfg, user=args.user, root=root, as_root=as_root):
            step.run()
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(unit, encoding="utf-8")
    except ServiceError as exc:
        print(exc)
        return 2
    except OSError as exc:
        print(f"CONN-SERVICIO No se pudo instalar el servicio: {exc}. ¿Se ejecutó como root?")
        return 2
    if not as_root:
        print(f"Sin root no se creó el usuario {args.user!r} ni se le dieron las carpetas: "
              "ejecute de nuevo con sudo.")  # fmt: skip
    print(f"Unidad escrita en {target}. Siguientes pasos:")
    print(f"  sudo systemctl daemon-reload && sudo systemctl enable --now {NAME}")
    return 0
