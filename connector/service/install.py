"""``cfdi-connector service install --config FILE [--print]``: the service definition with this
machine's paths filled in, so an administrator never hand-edits one.

- Linux: a hardened systemd unit (``Type=notify``, ``WatchdogSec=``, ``ProtectSystem=strict``
  with ``ReadWritePaths=`` for exactly the folders the configuration writes, secrets through
  ``LoadCredential=`` for every ``password_credential``); written to ``/etc/systemd/system``
  with the writable folders created (and given to the service user when it exists).
- Windows: a WinSW service (XML beside WinSW's executable, renamed after the service: stop
  timeout, restart on failure, log roll), then ``<winsw> install``. WinSW stops the console
  program with Ctrl-C, which reaches the same clean stop as SIGTERM.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
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
        for p in (s.inbox, s.work, s.archive, s.failed, o.xml, o.pdf, o.acuse, o.errors):
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
#   sudo useradd --system --home {config.parent} --shell /usr/sbin/nologin {user}
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


def cmd_service(args: Any) -> int:
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
    if args.print:
        print(unit, end="")
        return 0
    target = Path(args.unit_dir) / f"{NAME}.service"
    try:
        target.write_text(unit, encoding="utf-8")
        for p in writable_paths(cfg):
            p.mkdir(parents=True, exist_ok=True)
            _give_to(p, args.user)
    except OSError as exc:
        print(f"CONN-SERVICIO No se pudo instalar el servicio: {exc}. ¿Se ejecutó como root?")
        return 2
    print(f"Unidad escrita en {target}. Siguientes pasos:")
    print("  sudo systemctl daemon-reload && sudo systemctl enable --now cfdi-connector")
    return 0


def _give_to(path: Path, user: str) -> None:
    try:
        import pwd

        pw = pwd.getpwnam(user)
    except (ImportError, KeyError):
        return  # the user is created later (the unit's header says how)
    with contextlib.suppress(PermissionError):
        os.chown(path, pw.pw_uid, pw.pw_gid)
