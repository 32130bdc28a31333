"""``check_config``: every problem of a configuration at once. The checks of the whole file and
of its PACs live here, with the lists ``SHALLOW_CHECKS`` and ``DEEP_CHECKS``; the emisores'
in ``config.csd``, the sources' in ``config.sources``.
"""

from __future__ import annotations

import ipaddress
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from connector.cfdi.errors import Problem

from .csd import _check_emisores
from .loading import _label, _parse, _Reporter
from .models import PAC_KINDS, Config
from .secrets import SecretError, read_secret
from .sources import (
    _check_adapters,
    _check_sets_and_lease,
    _check_slow_writers,
    _check_source_files,
    _check_table_databases,
    _check_table_sources,
)


def check_config(path: Path | str, *, deep: bool = True) -> tuple[Config | None, list[Problem]]:
    """Every problem of the configuration at once (shape, references, folders, CSD, mappings),
    errors and warnings (``Problem.severity``); the configuration is None when there is an
    error. ``deep=False`` runs only ``SHALLOW_CHECKS`` (no file system)."""
    cfg, rep = _parse(Path(path))
    if cfg is None:
        return None, rep.problems
    for check in SHALLOW_CHECKS + (DEEP_CHECKS if deep else []):
        check(cfg, rep)
    return (None if rep.errors else cfg), rep.problems


# --- checks -----------------------------------------------------------------------------------
# A check is a function ``(cfg, rep) -> None`` that calls ``rep.add(code, key_path, message)``
# for an error or ``rep.warn(...)`` for a warning, with the key path of the entry's position in
# the file: ``rep.ix("sources", i)``. It is listed in SHALLOW_CHECKS (the configuration alone,
# also run by ``status``) or DEEP_CHECKS (files, folders, secrets, CSD). After shape errors the
# entries are partial: an option that failed its own check is None when it is required (or its
# default), so a check skips None and never reports an option twice. (``_label`` names an entry in
# messages: ``config.loading``.)


def _check_duplicates(cfg: Config, rep: _Reporter) -> None:
    if not cfg.sources and not rep.partial:
        rep.add(
            "CONN-CFG-VALOR", "sources", "La configuración no define ninguna fuente [[sources]]."
        )
    sections: list[tuple[str, list[Any], str, str]] = [
        ("emisores", cfg.emisores, "rfc", "El emisor {} está definido dos veces."),
        ("pacs", cfg.pacs, "name", "El PAC {!r} está definido dos veces."),
        ("sources", cfg.sources, "name", "La fuente {!r} está definida dos veces."),
    ]
    for section, entries, key, message in sections:
        seen: set[str] = set()
        for i, entry in enumerate(entries):
            name = getattr(entry, key)
            if name is not None and name in seen:  # reported at the second one
                rep.add(
                    "CONN-CFG-DUPLICADO",
                    f"{section}[{rep.ix(section, i)}].{key}",
                    message.format(name),
                )
            seen.add(name)


def _check_pac_kinds(cfg: Config, rep: _Reporter) -> None:
    for i, p in enumerate(cfg.pacs):
        if p.kind is not None and p.kind not in PAC_KINDS:
            rep.add(
                "CONN-CFG-PAC",
                f"pacs[{rep.ix('pacs', i)}].kind",
                f"El tipo de PAC {p.kind!r} no existe; use uno de: {', '.join(PAC_KINDS)}.",
            )


_PAC_URL_KEYS = ("url", "url_remote", "url_cancel")


def _check_pac_urls(cfg: Config, rep: _Reporter) -> None:
    """Only https:// (the PAC password travels with every request); plain http:// only to
    this machine (the sandbox PAC, a local proxy)."""
    for i, p in enumerate(cfg.pacs):
        for key in _PAC_URL_KEYS:
            url = getattr(p, key)
            if url is None:
                continue
            why = _url_problem(url)
            if why:
                rep.add(
                    "CONN-CFG-URL",
                    f"pacs[{rep.ix('pacs', i)}].{key}",
                    f"La dirección {url!r} del PAC {_label(p, 'pacs', i)} no se puede usar: {why}.",
                )


def _check_pac_proxies(cfg: Config, rep: _Reporter) -> None:
    """``proxy`` is http(s)://[user@]host:port with no password in it; a user has exactly one
    password source and a password source has a proxy with a user."""
    for i, p in enumerate(cfg.pacs):
        kp = f"pacs[{rep.ix('pacs', i)}]"
        name = _label(p, "pacs", i)
        src = p.proxy_secret()
        if not p.proxy:
            if src is not None:
                rep.add(
                    "CONN-CFG-PROXY",
                    f"{kp}.proxy",
                    f"El PAC {name} tiene contraseña de proxy pero no 'proxy' (la dirección del "
                    "proxy, p. ej. \"http://usuario@proxy.empresa.mx:3128\").",
                )
            continue
        why = None
        try:
            parts = urlsplit(p.proxy.strip())
            host, port = parts.hostname, parts.port
        except ValueError:
            parts, host, port = None, None, None
            why = "no es una dirección válida"
        if parts is not None and parts.scheme.lower() not in ("http", "https"):
            why = "debe empezar con http:// o https://"
        elif parts is not None and not host:
            why = "no dice a qué servidor conectarse"
        elif parts is not None and not port:
            why = "le falta el puerto (p. ej. :3128)"
        elif parts is not None and parts.password is not None:
            why = (
                "lleva la contraseña dentro; quítela de la dirección y use proxy_password_env, "
                "proxy_password_file o proxy_password_keyring"
            )
        elif parts is not None and parts.username and src is None:
            why = (
                f"usa el usuario {parts.username!r}, pero falta su contraseña: indique "
                "proxy_password_env, proxy_password_file o proxy_password_keyring"
            )
        elif parts is not None and not parts.username and src is not None:
            why = "tiene contraseña configurada pero no usuario (\"http://usuario@host:puerto\")"
        if why:
            shown = p.proxy.split("@")[-1] if "@" in p.proxy else p.proxy
            rep.add(
                "CONN-CFG-PROXY",
                f"{kp}.proxy",
                f"El proxy del PAC {name} ({shown}) no se puede usar: {why}.",
            )


def _check_pac_network_files(cfg: Config, rep: _Reporter) -> None:
    """The CA bundle loads as PEM certificates; the proxy's password can be read."""
    import ssl

    for i, p in enumerate(cfg.pacs):
        kp = f"pacs[{rep.ix('pacs', i)}]"
        name = _label(p, "pacs", i)
        if p.ca_bundle is not None:
            try:
                if p.ca_bundle.is_dir():
                    ssl.create_default_context(capath=str(p.ca_bundle))
                else:
                    ssl.create_default_context(cafile=str(p.ca_bundle))
            except (OSError, ssl.SSLError) as exc:
                what = getattr(exc, "strerror", None) or "no contiene certificados PEM válidos"
                rep.add(
                    "CONN-CFG-CA",
                    f"{kp}.ca_bundle",
                    f"El ca_bundle {p.ca_bundle} del PAC {name} no se puede usar: {what}.",
                )
        src = p.proxy_secret()
        if p.proxy and src is not None:
            try:
                read_secret(src, f"el proxy del PAC {name}")
            except SecretError as exc:
                rep.add(exc.code, f"{kp}.proxy", exc.message)


def _url_problem(url: str) -> str | None:
    """Why ``url`` would expose the PAC password or is not a web address (None: fine)."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname or ""
    except ValueError:
        return "no es una dirección web válida"
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        shown = f"{scheme}://" if scheme else "sin esquema"
        return f"el esquema es {shown}; el PAC solo se llama por https://"
    if not host:
        return "no dice a qué servidor conectarse"
    if scheme == "http" and not _is_loopback(host):
        return (
            f"http:// a {host} enviaría la contraseña del PAC sin cifrar; use https:// "
            "(http:// solo se admite hacia este mismo equipo: localhost, 127.0.0.1 o ::1)"
        )
    return None


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_references(cfg: Config, rep: _Reporter) -> None:
    """Each source's emisor, PAC and mode exist."""
    known_rfcs = {e.rfc for e in cfg.emisores} | rep.known_rfcs
    pacs = {p.name: p for p in cfg.pacs if p.name is not None}
    for i, s in enumerate(cfg.sources):
        kp = f"sources[{rep.ix('sources', i)}]"
        name = _label(s, "sources", i)
        if s.emisor is not None and s.emisor.upper() not in known_rfcs:
            rep.add(
                "CONN-CFG-EMISOR",
                f"{kp}.emisor",
                f"La fuente {name} usa el emisor {s.emisor!r}, que no está en [[emisores]].",
            )
        if s.pac is None:
            continue
        pac = pacs.get(s.pac)
        if pac is None and s.pac not in rep.known_pacs:
            rep.add(
                "CONN-CFG-PAC",
                f"{kp}.pac",
                f"La fuente {name} usa el PAC {s.pac!r}, que no está en [[pacs]].",
            )
        elif pac is not None and s.mode == "remote" and pac.kind != "fel":
            rep.add(
                "CONN-CFG-PAC",
                f"{kp}.mode",
                f"La fuente {name} usa el modo remote, que solo ofrece FEL (Conexión Remota); "
                f"el PAC {s.pac!r} es {pac.kind}.",
            )
        elif pac is not None and s.mode == "remote" and not pac.url_remote:
            rep.add(
                "CONN-CFG-PAC",
                f"{kp}.mode",
                f"La fuente {name} usa el modo remote, pero el PAC {s.pac!r} no tiene url_remote.",
            )


def _check_journal_folder(cfg: Config, rep: _Reporter) -> None:
    jparent = cfg.daemon.journal.parent
    if not jparent.is_dir():
        rep.add(
            "CONN-CFG-CARPETA",
            "daemon.journal",
            f"La carpeta del diario {jparent} no existe.",
        )


def _check_pac_secrets(cfg: Config, rep: _Reporter) -> None:
    for i, p in enumerate(cfg.pacs):
        try:
            read_secret(p, f"el PAC {_label(p, 'pacs', i)}")
        except SecretError as exc:
            rep.add(exc.code, f"pacs[{rep.ix('pacs', i)}]", exc.message)


def _check_secret_modes(cfg: Config, rep: _Reporter) -> None:
    """A warning when a password file or a CSD key can be read by other users of the machine
    (POSIX modes; on Windows the folder's ACL decides)."""
    if os.name != "posix":
        return
    files: list[tuple[str, str, Path | None]] = []
    for i, e in enumerate(cfg.emisores):
        kp = f"emisores[{rep.ix('emisores', i)}]"
        files += [
            (f"{kp}.key", "la llave privada del CSD", e.key),
            (f"{kp}.password_file", "el archivo de contraseña del CSD", e.password_file),
        ]
    for i, p in enumerate(cfg.pacs):
        kp = f"pacs[{rep.ix('pacs', i)}].password_file"
        files.append((kp, "el archivo de contraseña del PAC", p.password_file))
    for kp, what, path in files:
        try:
            mode = path.stat().st_mode if path is not None else 0
        except OSError:
            continue  # a missing file is an error of its own check
        readers = [who for bit, who in ((0o040, "el grupo"), (0o004, "todos")) if mode & bit]
        if readers:
            rep.warn(
                "CONN-CFG-PERMISOS",
                kp,
                f"Otros usuarios del equipo pueden leer {what} {path} (permisos "
                f"{stat.S_IMODE(mode):04o}: lectura para {' y para '.join(readers)}); déjelo solo "
                f"para el usuario del servicio: chmod 600 {path}.",
            )


Check = Callable[[Config, _Reporter], None]
SHALLOW_CHECKS: list[Check] = [
    _check_duplicates,
    _check_pac_kinds,
    _check_pac_urls,
    _check_pac_proxies,
    _check_references,
    _check_table_sources,
    _check_adapters,
]
DEEP_CHECKS: list[Check] = [
    _check_slow_writers,  # needs no file, but is for check-config and run, not for status
    _check_sets_and_lease,  # likewise
    _check_journal_folder,
    _check_emisores,
    _check_pac_secrets,
    _check_pac_network_files,
    _check_secret_modes,
    _check_source_files,
    _check_table_databases,
]
