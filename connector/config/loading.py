"""The configuration file read: TOML parsed, validated into ``Config`` (every shape error
reported with its key path and line: ``KeyLocator``, ``_Reporter``), a configuration with
shape errors still built entry by entry (``_partial``, ``_lenient``) so every check runs, and
relative paths resolved against the file's folder.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import (
    ValidationError,
)

from connector.cfdi.errors import Problem

from .models import (
    Config,
    ConfigError,
    DaemonSettings,
    EmisorConfig,
    PacConfig,
    SourceConfig,
    TableConfig,
)
from .secrets import _Cfg

_CfgT = TypeVar("_CfgT", bound=_Cfg)


# --- where a key is in the file ---------------------------------------------------------------

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEYLINE = re.compile(r"^\s*([A-Za-z0-9_\-\.\"' ]+?)\s*=")


@dataclass
class KeyLocator:
    """Maps TOML key paths such as ``sources[1].output.xml`` to line numbers of the file."""

    lines: dict[str, int]

    @classmethod
    def from_text(cls, text: str) -> KeyLocator:
        lines: dict[str, int] = {}
        counters: dict[str, int] = {}
        current = ""
        for n, raw in enumerate(text.splitlines(), start=1):
            m = _HEADER.match(raw)
            if m:
                parts = [p.strip().strip("\"'") for p in m.group(2).split(".")]
                path = ""
                for i, part in enumerate(parts):
                    path = f"{path}.{part}" if path else part
                    last = i == len(parts) - 1
                    if last and m.group(1) == "[[":
                        counters[path] = counters.get(path, -1) + 1
                        path = f"{path}[{counters[path]}]"
                    elif path in counters:
                        path = f"{path}[{counters[path]}]"
                current = path
                lines.setdefault(current, n)
                continue
            k = _KEYLINE.match(raw)
            if k and not raw.lstrip().startswith("#"):
                key = ".".join(p.strip().strip("\"'") for p in k.group(1).split("."))
                lines.setdefault(f"{current}.{key}" if current else key, n)
        return cls(lines)

    def line(self, key_path: str) -> int | None:
        path = key_path
        while path:
            if path in self.lines:
                return self.lines[path]
            cut = max(path.rfind("."), path.rfind("["))
            path = path[:cut] if cut > 0 else ""
        return None


def _key_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


_PYDANTIC_ES = {
    "missing": "es obligatorio y no está",
    "extra_forbidden": "no es una opción conocida",
    "string_type": "debe ser texto",
    "int_parsing": "debe ser un número entero",
    "int_type": "debe ser un número entero",
    "float_parsing": "debe ser un número",
    "float_type": "debe ser un número",
    "bool_type": "debe ser true o false",
    "bool_parsing": "debe ser true o false",
    "list_type": "debe ser una lista",
    "dict_type": "debe ser una tabla",
    "model_type": "debe ser una tabla",
    "path_type": "debe ser una ruta",
    "literal_error": "no es uno de los valores permitidos ({expected})",
    "greater_than": "debe ser mayor que {gt}",
    "greater_than_equal": "debe ser al menos {ge}",
    "less_than": "debe ser menor que {lt}",
    "less_than_equal": "debe ser como máximo {le}",
}
_SHOW_INPUT = ("literal_error", "greater_than", "greater_than_equal", "less_than", "less_than_equal")


def _pydantic_es(err: Any) -> str:
    """pydantic's error in Spanish, with its facts: the allowed values, the limit, the value."""
    ctx = {k: str(v).replace("' or '", "', '") for k, v in (err.get("ctx") or {}).items()}
    try:
        msg = _PYDANTIC_ES[err["type"]].format(**ctx)
    except (KeyError, IndexError):
        return f"no es válido ({err['msg']})"
    if err["type"] in _SHOW_INPUT:
        msg += f"; se dio {err.get('input')!r}"
    return msg


class _Reporter:
    def __init__(self, file: Path, locator: KeyLocator) -> None:
        self.file = file
        self.locator = locator
        self.problems: list[Problem] = []
        # a partial configuration (some entries had shape errors): their original positions
        self.index: dict[str, list[int]] = {}
        self.known_rfcs: set[str] = set()
        self.known_pacs: set[str] = set()
        self.partial = False

    def ix(self, section: str, i: int) -> int:
        """The position in the file of the i-th valid entry of ``section``."""
        positions = self.index.get(section)
        return positions[i] if positions is not None else i

    def add(self, code: str, key_path: str, message: str, *, severity: str = "error") -> None:
        """An error at ``key_path`` (``sources[1].inbox``): the configuration cannot be used."""
        line = self.locator.line(key_path)
        where = f"{self.file}:{line}" if line else str(self.file)
        self.problems.append(
            Problem(
                code=code,
                path=key_path,
                message=message,
                location=f"{where} ({key_path})",
                severity=severity,
            )
        )

    def warn(self, code: str, key_path: str, message: str) -> None:
        """A warning: reported by check-config, the configuration still loads."""
        self.add(code, key_path, message, severity="warning")

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity != "warning"]


def _resolve(base: Path, p: Path | None) -> Path | None:
    if p is None:
        return None
    p = Path(os.path.expandvars(str(p))).expanduser()
    return p if p.is_absolute() else (base / p)


def _resolve_paths(cfg: Config, base: Path) -> None:
    cfg.daemon.journal = _resolve(base, cfg.daemon.journal)  # type: ignore[assignment]
    cfg.daemon.log_file = _resolve(base, cfg.daemon.log_file)
    if cfg.daemon.journal_password is not None:
        jp = cfg.daemon.journal_password
        jp.password_file = _resolve(base, jp.password_file)
    for e in cfg.emisores:
        e.cer = _resolve(base, e.cer)  # type: ignore[assignment]
        e.key = _resolve(base, e.key)  # type: ignore[assignment]
        e.password_file = _resolve(base, e.password_file)
        e.pdf.logo = _resolve(base, e.pdf.logo)
    for p in cfg.pacs:
        p.password_file = _resolve(base, p.password_file)
        p.sat_cert = _resolve(base, p.sat_cert)
        p.ca_bundle = _resolve(base, p.ca_bundle)
        p.proxy_password_file = _resolve(base, p.proxy_password_file)
    for s in cfg.sources:
        s.inbox = _resolve(base, s.inbox)  # type: ignore[assignment]
        s.work = _resolve(base, s.work)
        if s.work is None and s.inbox is not None and s.name is not None:
            s.work = s.inbox.parent / "work" / s.name
        s.mapping = _resolve(base, s.mapping)
        s.archive = _resolve(base, s.archive)  # type: ignore[assignment]
        s.failed = _resolve(base, s.failed)  # type: ignore[assignment]
        s.cancel_inbox = _resolve(base, s.cancel_inbox)
        if isinstance(s.table, TableConfig):
            s.table.password_file = _resolve(base, s.table.password_file)
        o = s.output
        if o is None:  # a table source, or a partial configuration (shape errors)
            continue
        o.xml = _resolve(base, o.xml)  # type: ignore[assignment]
        o.pdf = _resolve(base, o.pdf)
        o.acuse = _resolve(base, o.acuse)
        o.errors = _resolve(base, o.errors)
        if "layout" in s.options and isinstance(s.options["layout"], str):
            s.options["layout"] = str(_resolve(base, Path(s.options["layout"])))


# --- loading ----------------------------------------------------------------------------------


def _parse(path: Path) -> tuple[Config | None, _Reporter]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        rep = _Reporter(path, KeyLocator({}))
        rep.add("CONN-CFG-ARCHIVO", "", f"No se puede leer el archivo de configuración: {exc}.")
        return None, rep
    rep = _Reporter(path, KeyLocator.from_text(text))
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        rep.problems.append(
            Problem(
                code="CONN-CFG-TOML",
                path="",
                message=f"El archivo no es TOML válido: {exc}.",
                location=f"{path}:{m.group(1)}" if m else str(path),
            )
        )
        return None, rep
    _find_plain_passwords(data, "", rep)
    try:
        cfg = Config.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            kp = _key_path(tuple(err["loc"]))
            if err["type"] == "extra_forbidden" and kp.rsplit(".", 1)[-1] == "password":
                continue  # already reported by _find_plain_passwords
            if err["type"] in ("value_error", "assertion_error"):
                msg = str(err.get("ctx", {}).get("error", err["msg"]))
            else:
                msg = _pydantic_es(err)
            rep.add("CONN-CFG-VALOR", kp, f"La opción {kp or '(raíz)'} {msg}.")
        cfg = _partial(data, rep)  # go on: every other check runs too
    base = path.resolve().parent
    _resolve_paths(cfg, base)
    cfg.path = path.resolve()
    return cfg, rep


def _partial(data: dict[str, Any], rep: _Reporter) -> Config:
    """Every entry of a configuration with shape errors, each kept with its well-formed
    options, so the other checks still run on all of them (one run shows every problem).

    An option with a shape error (reported already) keeps its default, or is ``None`` when it
    is required: the checks skip ``None``."""
    daemon = _lenient(DaemonSettings, data.get("daemon"))
    models: dict[str, type[_Cfg]] = {
        "emisores": EmisorConfig,
        "pacs": PacConfig,
        "sources": SourceConfig,
    }
    entries: dict[str, list[Any]] = {}
    for section, model in models.items():
        items = data.get(section) or []
        entries[section] = []
        rep.index[section] = []
        if not isinstance(items, list):
            continue
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                continue  # reported: "debe ser una tabla"
            entry = _lenient(model, item)
            entries[section].append(entry)
            rep.index[section].append(i)
            # a name/RFC with a shape error still names the entry: no "unknown" reports
            if entry.__dict__.get("rfc") is None and isinstance(item.get("rfc"), str):
                rep.known_rfcs.add(item["rfc"].strip().upper())
            bad_name = entry.__dict__.get("name") is None and isinstance(item.get("name"), str)
            if section == "pacs" and bad_name:
                rep.known_pacs.add(item["name"])
    rep.partial = True
    return Config.model_construct(
        daemon=daemon,
        emisores=entries["emisores"],
        pacs=entries["pacs"],
        sources=entries["sources"],
    )


def _lenient(model: type[_CfgT], data: Any) -> _CfgT:
    """``model`` from ``data``, option by option: a bad option keeps its default (None when it
    is required); a table option with a bad key inside is built the same way."""
    if not isinstance(data, dict):
        data = {}
    try:
        return model.model_validate(data)
    except ValidationError:
        pass
    entry = model.model_construct()
    for name, field in model.model_fields.items():
        if name not in data:
            entry.__dict__.setdefault(name, None)
            continue
        try:
            model.__pydantic_validator__.validate_assignment(entry, name, data[name])
        except ValidationError:
            sub = _model_of(field.annotation)
            if sub is not None and isinstance(data[name], dict):
                entry.__dict__[name] = _lenient(sub, data[name])
            else:
                entry.__dict__.setdefault(name, None)
    return entry


def _model_of(annotation: Any) -> type[_Cfg] | None:
    """The configuration table type of a field (``OutputConfig``, ``PairConfig | None``)."""
    for t in (annotation, *getattr(annotation, "__args__", ())):
        if isinstance(t, type) and issubclass(t, _Cfg):
            return t
    return None


def _find_plain_passwords(data: Any, prefix: str, rep: _Reporter) -> None:
    if isinstance(data, dict):
        for k, v in data.items():
            kp = f"{prefix}.{k}" if prefix else k
            if k in ("password", "contrasena", "contraseña"):
                rep.add(
                    "CONN-CFG-SECRETO",
                    kp,
                    "Las contraseñas no se escriben en la configuración: use password_env, "
                    "password_file, password_credential o password_keyring.",
                )
            else:
                _find_plain_passwords(v, kp, rep)
    elif isinstance(data, list):
        for i, v in enumerate(data):
            _find_plain_passwords(v, f"{prefix}[{i}]", rep)


def load_config(path: Path | str) -> Config:
    """Parse and validate the shape (no file-system checks); ``ConfigError`` with every problem."""
    cfg, rep = _parse(Path(path))
    if cfg is None or rep.errors or rep.partial:
        raise ConfigError(rep.errors)
    return cfg


def _label(entry: Any, section: str, i: int) -> str:
    """How messages name an entry: its name (or RFC), else its place."""
    name = entry.__dict__.get("name") or entry.__dict__.get("rfc")
    return repr(name) if name else f"{section}[{i}]"
