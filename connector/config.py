"""The validated configuration of the daemon (TOML, pydantic v2).

One file describes the journal, the emisores (RFC, CSD and where its password comes from), the
PACs and the sources (watched folders). Relative paths are relative to the configuration file.
Passwords never live in the TOML itself: each secret names an environment variable
(``password_env``), a file (``password_file``), a systemd credential (``password_credential``:
``$CREDENTIALS_DIRECTORY/<name>``, from the unit's ``LoadCredential=``) or an OS keyring entry
(``password_keyring``, ``"service/user"``).

``check_config(path)`` reports EVERY problem at once, each with the TOML key path and the line
of the file where it is, and a Spanish message: shape errors, unknown emisor/PAC/adapter, missing
folders, unreadable CSD, wrong CSD password, a CSD of another RFC or expired (a warning when it
expires within 30 days), mapping files that do not load.
"""

from __future__ import annotations

import ipaddress
import os
import re
import stat
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails

from connector.cfdi.errors import Problem
from connector.pac.addresses import SAT_STATUS_URL

DEFAULT_FILENAME_PATTERN = "{serie}{folio}_{uuid}"
PAC_KINDS = ("fel", "finkok")


class _Cfg(BaseModel):
    model_config = ConfigDict(extra="forbid")


_CfgT = TypeVar("_CfgT", bound=_Cfg)


class SecretSource(_Cfg):
    """Where a password comes from: exactly one of env, file, systemd credential, keyring."""

    password_env: str | None = None
    password_file: Path | None = None
    password_keyring: str | None = None  # "service/user"
    # a systemd credential's name (LoadCredential=NAME:...): $CREDENTIALS_DIRECTORY/NAME
    password_credential: str | None = None

    @field_validator("password_credential")
    @classmethod
    def _credential(cls, v: str | None) -> str | None:
        if v is not None and (not v or "/" in v or "\\" in v or v in (".", "..")):
            raise ValueError(f"el nombre de credencial {v!r} no puede llevar '/' ni estar vacío")
        return v


# a journal given as one of these addresses is on PostgreSQL (issue 16), not a SQLite file
JOURNAL_URL_SCHEMES = ("postgresql://", "postgres://")
# the local name a PostgreSQL journal's lock and status files are kept under (config folder)
JOURNAL_URL_LOCAL = "journal.postgresql"


class DaemonSettings(_Cfg):
    # this connector's name in what it claims (table rows): default the host and a hash of the
    # configuration file's path, the same across restarts; `run --instance NAME` when several
    # run from one configuration on one host
    instance: str | None = Field(default=None, min_length=1, max_length=100)
    journal: Path = Path("journal.sqlite")
    # ``journal = "postgresql://user@host/db"``: the shared journal's address lands here and
    # ``journal`` names the local files (lock, status) instead; its password (when the
    # server asks for one) from ``journal_password`` (env, file, credential or keyring)
    journal_url: str | None = None
    journal_password: SecretSource | None = None
    workers: int = Field(default=32, ge=1, le=256)  # PAC requests in flight
    pdf_processes: int | None = Field(default=None, ge=0, le=64)  # None: one per core, max 4
    poll_seconds: float = Field(default=5.0, gt=0)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "console"] = "json"
    log_file: Path | None = None
    journal_synchronous: Literal["FULL", "NORMAL"] = "FULL"
    # SAT's CFDI status service (ConsultaCFDIService), asked after a cancellation request
    sat_status_url: str = SAT_STATUS_URL
    # cancellations followed up at SAT (connector.cancellations): the tick, and the poll
    # interval, about a tenth of a request's age, between these two bounds
    cancel_poll_seconds: float = Field(default=60.0, gt=0)
    cancel_poll_max_seconds: float = Field(default=6 * 3600.0, gt=0)
    # the slow sweep that notices a CFDI cancelled outside the connector (SAT's portal):
    # delivered invoices of the last N days (0: off), each asked again every M hours
    sat_sweep_days: int = Field(default=0, ge=0, le=400)
    sat_sweep_hours: float = Field(default=24.0, gt=0)
    # run's health and metrics endpoints ("127.0.0.1:9464"); None: not served
    http: str | None = None
    # how often the PACs' credits are asked for (with http or a [[pacs]] credits_warning)
    credits_seconds: float = Field(default=300.0, gt=0)

    def journal_secret(self) -> str | None:
        """The shared journal's password (None: none configured, e.g. the server trusts the
        host or ``~/.pgpass`` has it); ``SecretError`` when it cannot be read."""
        if self.journal_password is None:
            return None
        return read_secret(self.journal_password, "el diario")

    @model_validator(mode="before")
    @classmethod
    def _journal_url(cls, data: Any) -> Any:
        j = data.get("journal") if isinstance(data, dict) else None
        if isinstance(j, str) and j.lower().startswith(JOURNAL_URL_SCHEMES):
            return {**data, "journal_url": j, "journal": JOURNAL_URL_LOCAL}
        return data

    @field_validator("http")
    @classmethod
    def _http(cls, v: str | None) -> str | None:
        if v is not None:
            from connector.service.http import parse_address

            parse_address(v)  # ValueError in Spanish
        return v


class PdfStyleConfig(_Cfg):
    logo: Path | None = None
    primary_color: str = "#1F4E79"
    text_color: str = "#222222"

    @field_validator("primary_color", "text_color")
    @classmethod
    def _color(cls, v: str) -> str:
        if not re.fullmatch(r"#[0-9A-Fa-f]{6}", v):
            raise ValueError(f"el color {v!r} debe tener la forma #RRGGBB")
        return v


class EmisorConfig(SecretSource):
    rfc: str
    cer: Path
    key: Path
    series: list[str] = Field(default_factory=list)
    pdf: PdfStyleConfig = Field(default_factory=PdfStyleConfig)
    # what the default interface tables do not hold (a table source's invoices take them
    # from here): the emisor's name and régimen fiscal as SAT has them, and the CP where
    # invoices are issued (LugarExpedicion)
    nombre: str | None = None
    regimen_fiscal: str | None = None
    lugar_expedicion: str | None = None

    @field_validator("rfc")
    @classmethod
    def _rfc(cls, v: str) -> str:
        v = v.strip().upper()
        if not re.fullmatch(r"[A-ZÑ&]{3,4}[0-9]{6}[A-Z0-9]{3}", v):
            raise ValueError(f"el RFC {v!r} no tiene la forma de un RFC")
        return v


class RetryConfig(_Cfg):
    attempts: int = Field(default=3, ge=1, le=20)  # immediate attempts per round (resilience)
    backoff_seconds: float = Field(default=0.5, ge=0)
    backoff_max_seconds: float = Field(default=10.0, ge=0)
    wait_seconds: float = Field(default=30.0, ge=0)  # retry_wait before the next round
    wait_max_seconds: float = Field(default=900.0, ge=0)


class BreakerConfig(_Cfg):
    failure_threshold: int = Field(default=5, ge=1)
    reset_seconds: float = Field(default=30.0, ge=0)


class PacConfig(SecretSource):
    name: str
    kind: str
    url: str  # stamping service (FEL WSCFDI33 / Finkok stamp)
    url_remote: str | None = None  # FEL Conexión Remota (mode remote)
    url_cancel: str | None = None
    usuario: str
    cuenta: str | None = None
    timeout_seconds: float = Field(default=30.0, gt=0)
    # credits (timbres) left below which the connector warns (status, /readyz, systemd STATUS=)
    credits_warning: int | None = Field(default=None, ge=0)
    retry: RetryConfig = Field(default_factory=RetryConfig)
    breaker: BreakerConfig = Field(default_factory=BreakerConfig)
    # the PAC's/SAT's certificate (DER .cer): every stamp's SelloSAT is verified with it
    sat_cert: Path | None = None
    # corporate networks: the HTTP(S) proxy this PAC is reached through ("http://user@host:3128";
    # its password from proxy_password_env/_file/_keyring, never in the address; without it the
    # environment's HTTPS_PROXY/NO_PROXY apply) and the CA bundle that verifies the PAC's TLS
    # certificate (PEM; e.g. the company's TLS-inspecting CA; default: the system's)
    proxy: str | None = None
    proxy_password_env: str | None = None
    proxy_password_file: Path | None = None
    proxy_password_keyring: str | None = None  # "service/user"
    ca_bundle: Path | None = None

    def proxy_secret(self) -> SecretSource | None:
        """Where the proxy's password comes from (None: no password source given)."""
        if not (self.proxy_password_env or self.proxy_password_file or self.proxy_password_keyring):
            return None
        return SecretSource(
            password_env=self.proxy_password_env,
            password_file=self.proxy_password_file,
            password_keyring=self.proxy_password_keyring,
        )


def pac_network(pac: PacConfig) -> dict[str, Any]:
    """The plain network settings of a PAC's driver: ``verify`` (the CA bundle's path, or True)
    and ``proxy`` (the proxy's address with its password put in, or None). ``SecretError``
    when the proxy's password cannot be read. The result holds a secret: never log it."""
    proxy = None
    if pac.proxy:
        parts = urlsplit(pac.proxy.strip())
        src = pac.proxy_secret()
        if src is not None and parts.username:
            password = quote(read_secret(src, f"el proxy del PAC {pac.name!r}"), safe="")
            host = parts.netloc.rpartition("@")[2]
            parts = parts._replace(netloc=f"{parts.username}:{password}@{host}")
        proxy = urlunsplit(parts)
    return {"verify": str(pac.ca_bundle) if pac.ca_bundle else True, "proxy": proxy}


class OutputConfig(_Cfg):
    xml: Path
    pdf: Path | None = None
    acuse: Path | None = None
    errors: Path | None = None  # error files also copied here (beside the original in failed/)


class PairConfig(_Cfg):
    """A header file and a lines file per export (``ventas_0415_H.csv`` + ``ventas_0415_D.csv``)."""

    header_suffix: str = "_H"  # end of the header file's name, before the extension
    lines_suffix: str = "_D"
    orphan_seconds: float = Field(default=3600.0, gt=0)  # a half alone this long: error file

    @field_validator("header_suffix", "lines_suffix")
    @classmethod
    def _suffix(cls, v: str) -> str:
        if not v or any(c in v for c in "./\\*?[]"):
            raise ValueError(
                f"el sufijo {v!r} debe ser un final de nombre no vacío, sin '.', '/' ni comodines"
            )
        return v

    def spec(self) -> Any:
        """The folder source's ``PairSpec`` (raises ValueError for suffixes that clash)."""
        from connector.adapters.folder import PairSpec

        return PairSpec(self.header_suffix, self.lines_suffix, self.orphan_seconds)


class TableConfig(SecretSource):
    """A table source's database (``kind = "table"``): an ODBC connection string (``DSN=...``
    or DSN-less ``DRIVER={...};SERVER=...``) without the password, which comes from
    ``password_env``/``_file``/``_credential``/``_keyring`` when the database needs one."""

    connection: str
    dialect: str | None = None  # postgresql, mariadb, mysql, sqlite, mssql, firebird
    factura: str = "cfdi_factura"  # the header table (or "dbo.cfdi_factura")
    concepto: str = "cfdi_concepto"  # the lines table
    encoding: str | None = None  # legacy text columns, e.g. "cp1252"
    batch: int = Field(default=50, ge=1, le=1000)  # rows claimed at a time
    # a claim not renewed this long is free again (renewed every third of it while held)
    lease_seconds: int = Field(default=600, ge=60)
    timeout_seconds: float = Field(default=30.0, gt=0)  # the engine's statement timeout
    skip_locked: bool | None = None  # None: where the engine is known to have it
    # results-table mode (the ERP's tables may not be altered): claims and outcomes go to this
    # table of the connector's (`tables-ddl --resultados`); the header and lines are read
    # from `factura`/`concepto` (tables or views) or from these SELECTs, whose columns carry
    # the default tables' names (`SELECT folio_fac AS folio, ...`)
    resultados: str | None = None
    factura_query: str | None = None
    concepto_query: str | None = None
    # cancellation requests the ERP writes into this table (`cfdi_cancelacion`; None: none)
    cancelaciones: str | None = None

    @model_validator(mode="after")
    def _queries_need_results(self) -> TableConfig:
        if (self.factura_query or self.concepto_query) and not self.resultados:
            raise ValueError(
                "factura_query y concepto_query solo se usan con una tabla de resultados "
                "(resultados = \"cfdi_resultado\"): el conector no escribe en una consulta"
            )
        return self

    @field_validator("connection")
    @classmethod
    def _no_password(cls, v: str) -> str:
        if re.search(r"(?i)(^|;)\s*(pwd|password)\s*=", v):
            raise ValueError(
                "no debe llevar la contraseña (PWD=): use password_env, password_file, "
                "password_credential o password_keyring"
            )
        return v


FOLDER_ONLY = ("inbox", "adapter", "output", "archive", "failed")


class SourceConfig(_Cfg):
    name: str
    # "folder": ERP export files in an inbox; "table": rows of the ERP's database tables
    kind: Literal["folder", "table"] = "folder"
    inbox: Path | None = None  # folder sources
    work: Path | None = None  # default: <inbox>/../work/<name>
    adapter: str | None = None  # folder sources
    table: TableConfig | None = None  # table sources
    options: dict[str, Any] = Field(default_factory=dict)
    mapping: Path | None = None
    # model path -> value for a field the ERP leaves empty (``{ Exportacion = "01" }``); the
    # only defaults besides the mapping file's own: the shipped mappings give none
    defaults: dict[str, str] = Field(default_factory=dict)
    emisor: str
    mode: Literal["stamp", "remote"] = "stamp"
    pac: str
    include: list[str] = Field(default_factory=lambda: ["*"])
    exclude: list[str] = Field(default_factory=list)
    stable_seconds: float = Field(default=2.0, ge=0)
    done_marker: str | None = None
    pair: PairConfig | None = None  # header + lines files per export (csv)
    polling: bool = False  # True: never use file-system events, only the poll interval
    poll_seconds: float | None = Field(default=None, gt=0)
    # where stamped invoices are written as files (a table source: optional copies of the XML,
    # the PDF and the acuse beside what its rows receive)
    output: OutputConfig | None = None
    archive: Path | None = None  # folder sources
    failed: Path | None = None  # folder sources
    filename_pattern: str = DEFAULT_FILENAME_PATTERN
    # cancellation request files from the ERP (connector.cancel_inbox); None: none taken
    cancel_inbox: Path | None = None

    @model_validator(mode="wrap")
    @classmethod
    def _kind_needs(cls, data: Any, handler: Any) -> Any:
        """What each kind cannot do without, reported as missing options one by one (beside
        every other shape error of the entry)."""
        missing: list[InitErrorDetails] = []
        if isinstance(data, dict):
            kind = data.get("kind", "folder")
            needed = FOLDER_ONLY if kind == "folder" else ("table",) if kind == "table" else ()
            missing = [
                InitErrorDetails(type="missing", loc=(k,), input=data)
                for k in needed
                if data.get(k) is None
            ]
        try:
            model = handler(data)
        except ValidationError as exc:
            if not missing:
                raise
            known = [
                InitErrorDetails(type=e["type"], loc=e["loc"], input=e["input"],
                                 ctx=e.get("ctx") or {})  # fmt: skip
                for e in exc.errors()
            ]
            raise ValidationError.from_exception_data(cls.__name__, known + missing) from None
        if missing:
            raise ValidationError.from_exception_data(cls.__name__, missing)
        return model

    @field_validator("filename_pattern")
    @classmethod
    def _pattern(cls, v: str) -> str:
        v = v.removesuffix(".xml")
        try:
            v.format(serie="A", folio="1", uuid="U", rfc="R")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"el patrón {v!r} solo admite {{serie}}, {{folio}}, {{uuid}} y {{rfc}}"
            ) from exc
        if "{uuid}" not in v:
            raise ValueError("el patrón de nombre debe incluir {uuid}")
        return v


class Config(_Cfg):
    daemon: DaemonSettings = Field(default_factory=DaemonSettings)
    emisores: list[EmisorConfig] = Field(default_factory=list)
    pacs: list[PacConfig] = Field(default_factory=list)
    sources: list[SourceConfig] = Field(default_factory=list)
    # set by the loader, not by the TOML
    path: Path | None = Field(default=None, exclude=True)

    def emisor(self, rfc: str) -> EmisorConfig:
        rfc = rfc.upper()
        for e in self.emisores:
            if e.rfc == rfc:
                return e
        raise KeyError(rfc)

    def pac(self, name: str) -> PacConfig:
        for p in self.pacs:
            if p.name == name:
                return p
        raise KeyError(name)

    def source(self, name: str) -> SourceConfig:
        for s in self.sources:
            if s.name == name:
                return s
        raise KeyError(name)


class ConfigError(Exception):
    """The configuration cannot be used; ``problems`` lists every reason."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


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


# --- secrets ----------------------------------------------------------------------------------


class SecretError(Exception):
    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"{code} {message}")


def read_secret(src: SecretSource, what: str) -> str:
    """The password ``src`` points at; ``SecretError`` (Spanish) when it cannot be read."""
    of = f"del {what[3:]}" if what.startswith("el ") else f"de {what}"  # "del PAC", not "de el"
    given = [
        x
        for x in (src.password_env, src.password_file, src.password_keyring,
                  src.password_credential)
        if x
    ]  # fmt: skip
    if len(given) != 1:
        raise SecretError(
            "CONN-CFG-SECRETO",
            f"La contraseña {of} debe venir de exactamente una fuente: "
            "password_env, password_file, password_credential o password_keyring.",
        )
    if src.password_credential:
        folder = os.environ.get("CREDENTIALS_DIRECTORY")
        if not folder:
            raise SecretError(
                "CONN-CFG-SECRETO",
                f"La contraseña {of} viene de la credencial {src.password_credential!r} de "
                "systemd, pero CREDENTIALS_DIRECTORY no está definida: el servicio debe "
                f"declarar LoadCredential={src.password_credential}:<archivo> en su unidad.",
            )
        try:
            path = Path(folder) / src.password_credential
            return path.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise SecretError(
                "CONN-CFG-SECRETO",
                f"No se puede leer la credencial {src.password_credential!r} con la contraseña "
                f"{of} en {folder}: {exc.strerror or exc}.",
            ) from exc
    if src.password_env:
        value = os.environ.get(src.password_env)
        if value is None:
            raise SecretError(
                "CONN-CFG-SECRETO",
                f"La variable de entorno {src.password_env} con la contraseña {of} "
                "no está definida.",
            )
        return value
    if src.password_file:
        try:
            return Path(src.password_file).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise SecretError(
                "CONN-CFG-SECRETO",
                f"No se puede leer el archivo de contraseña {of} "
                f"({src.password_file}): {exc.strerror or exc}.",
            ) from exc
    service, _, user = (src.password_keyring or "").partition("/")
    try:
        import keyring  # optional dependency
    except ImportError as exc:
        raise SecretError(
            "CONN-CFG-SECRETO",
            f"La contraseña {of} viene del llavero del sistema, pero el paquete "
            "'keyring' no está instalado (pip install keyring).",
        ) from exc
    value = keyring.get_password(service, user)
    if value is None:
        raise SecretError(
            "CONN-CFG-SECRETO",
            f"El llavero del sistema no tiene la contraseña {of} "
            f"(servicio {service!r}, usuario {user!r}).",
        )
    return value


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
    return Config.model_construct(daemon=daemon, **entries)


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


def known_adapters() -> set[str]:
    """Adapter names registered through the entry-point group ``connector.adapters``."""
    names: set[str] = set()
    try:
        from importlib.metadata import entry_points

        names.update(ep.name for ep in entry_points(group="connector.adapters"))
    except Exception:  # pragma: no cover - metadata problems
        pass
    try:
        from connector.adapters import registry  # type: ignore[attr-defined]

        names.update(registry.names())
    except Exception:
        pass
    try:
        import connector.adapters as adapters_pkg

        for attr in ("ADAPTERS", "adapter_names", "available_adapters"):
            obj = getattr(adapters_pkg, attr, None)
            if callable(obj):
                names.update(obj())
            elif obj:
                names.update(obj)
    except Exception:
        pass
    return names


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
# default), so a check skips None and never reports an option twice.


def _label(entry: Any, section: str, i: int) -> str:
    """How messages name an entry: its name (or RFC), else its place."""
    name = entry.__dict__.get("name") or entry.__dict__.get("rfc")
    return repr(name) if name else f"{section}[{i}]"


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


def _check_adapters(cfg: Config, rep: _Reporter) -> None:
    adapters = known_adapters()
    for i, s in enumerate(cfg.sources):
        if s.adapter is None:
            continue
        kp = f"sources[{rep.ix('sources', i)}].adapter"
        if not adapters:
            rep.add(
                "CONN-CFG-ADAPTADOR",
                kp,
                f"No hay adaptadores instalados; {s.adapter!r} no se puede usar.",
            )
        elif s.adapter not in adapters:
            rep.add(
                "CONN-CFG-ADAPTADOR",
                kp,
                f"El adaptador {s.adapter!r} no existe; los disponibles son: "
                f"{', '.join(sorted(adapters))}.",
            )


def _check_journal_folder(cfg: Config, rep: _Reporter) -> None:
    jparent = cfg.daemon.journal.parent
    if not jparent.is_dir():
        rep.add(
            "CONN-CFG-CARPETA",
            "daemon.journal",
            f"La carpeta del diario {jparent} no existe.",
        )


def _check_emisores(cfg: Config, rep: _Reporter) -> None:
    for i, e in enumerate(cfg.emisores):
        kp = f"emisores[{rep.ix('emisores', i)}]"
        _check_csd(e, kp, rep)
        if e.pdf.logo is not None and not e.pdf.logo.is_file():
            rep.add("CONN-CFG-ARCHIVO", f"{kp}.pdf.logo", f"El logotipo {e.pdf.logo} no existe.")


def _check_pac_secrets(cfg: Config, rep: _Reporter) -> None:
    for i, p in enumerate(cfg.pacs):
        try:
            read_secret(p, f"el PAC {_label(p, 'pacs', i)}")
        except SecretError as exc:
            rep.add(exc.code, f"pacs[{rep.ix('pacs', i)}]", exc.message)


def _check_source_files(cfg: Config, rep: _Reporter) -> None:
    for i, s in enumerate(cfg.sources):
        kp = f"sources[{rep.ix('sources', i)}]"
        name = _label(s, "sources", i)
        o = s.output
        folders: list[tuple[str, Path | None]] = [
            ("inbox", s.inbox),
            ("archive", s.archive),
            ("failed", s.failed),
        ]
        if o is not None:
            folders += [
                ("output.xml", o.xml),
                ("output.pdf", o.pdf),
                ("output.acuse", o.acuse),
                ("output.errors", o.errors),
            ]
        for key, folder in folders:
            if folder is not None and not folder.is_dir():
                rep.add(
                    "CONN-CFG-CARPETA",
                    f"{kp}.{key}",
                    f"La carpeta {folder} ({key}) de la fuente {name} no existe.",
                )
        if s.work is not None and not s.work.is_dir():
            ancestor = s.work.parent
            while not ancestor.exists() and ancestor != ancestor.parent:
                ancestor = ancestor.parent
            if not ancestor.is_dir() or not os.access(ancestor, os.W_OK):
                rep.add(
                    "CONN-CFG-CARPETA",
                    f"{kp}.work",
                    f"No se puede crear la carpeta de trabajo {s.work} (sin permiso en "
                    f"{ancestor}).",
                )
        if s.mapping is not None:
            _check_mapping(s.mapping, f"{kp}.mapping", rep)
        if s.defaults and s.adapter is not None:
            _check_source_defaults(s, kp, rep)
        if s.adapter is not None:
            _check_adapter_options(s, f"{kp}.options", rep)
        layout = s.options.get("layout")
        if isinstance(layout, str) and not Path(layout).is_file():
            rep.add(
                "CONN-CFG-ARCHIVO",
                f"{kp}.options.layout",
                f"El archivo de layout {layout} no existe.",
            )


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


SAFE_STABLE_SECONDS = 5.0  # below this, an ERP's pause between two chunks may look like the end


def _check_slow_writers(cfg: Config, rep: _Reporter) -> None:
    """A warning for a source that takes a file after a short quiet time with no done-marker:
    an ERP that pauses longer while writing would get its export taken half-written (the
    daemon reads it again when it sees it change, but cannot see every writer)."""
    for i, s in enumerate(cfg.sources):
        if s.__dict__.get("kind") == "table":
            continue
        stable = s.__dict__.get("stable_seconds")
        if s.__dict__.get("done_marker") or stable is None or stable >= SAFE_STABLE_SECONDS:
            continue
        rep.warn(
            "CONN-CFG-ESTABLE",
            f"sources[{rep.ix('sources', i)}].stable_seconds",
            f"La fuente {_label(s, 'sources', i)} toma un archivo cuando lleva {stable:g} "
            f"segundos sin cambiar y no tiene done_marker: si el ERP escribe la exportación "
            "por partes con pausas más largas, el archivo se toma antes de terminar. Configure "
            'done_marker (p. ej. ".done", que el ERP crea al terminar) o un stable_seconds de '
            f"al menos {SAFE_STABLE_SECONDS:g} segundos, mayor que la pausa más larga del ERP.",
        )


def table_spec(s: SourceConfig) -> Any:
    """The ``ConnSpec`` a table source connects with, its password read from its secret
    (``SecretError`` when it cannot be). The result holds a secret: never log it."""
    from connector.adapters.table.odbc import ConnSpec

    t = s.table
    assert t is not None
    given = t.password_env or t.password_file or t.password_keyring or t.password_credential
    password = read_secret(t, f"la base de datos de la fuente {s.name!r}") if given else None
    return ConnSpec(
        t.connection,
        password=password,
        dialect=t.dialect,
        timeout_seconds=t.timeout_seconds,
        encoding=t.encoding,
    )


TABLE_EMISOR_FIELDS = {
    "nombre": "Emisor.Nombre",
    "regimen_fiscal": "Emisor.RegimenFiscal",
    "lugar_expedicion": "LugarExpedicion",
}


def _check_table_sources(cfg: Config, rep: _Reporter) -> None:
    """The default interface tables hold no emisor: a table source without its own mapping
    takes name, régimen and LugarExpedicion from its emisor's configuration. A table source
    has no folders of its own: no cancellation inbox."""
    for i, s in enumerate(cfg.sources):
        if s.__dict__.get("kind") != "table":
            continue
        if s.__dict__.get("cancel_inbox") is not None:
            rep.add(
                "CONN-CFG-VALOR",
                f"sources[{rep.ix('sources', i)}].cancel_inbox",
                f"La fuente de tablas {_label(s, 'sources', i)} no tiene carpetas: sus "
                "cancelaciones se piden con `cfdi-connector cancel --config` (o en la carpeta "
                "cancel_inbox de una fuente de carpetas del mismo emisor).",
            )
        if s.__dict__.get("mapping") is not None:
            continue
        for j, e in enumerate(cfg.emisores):
            if e.__dict__.get("rfc") != (s.__dict__.get("emisor") or "").upper():
                continue
            for key, cfdi in TABLE_EMISOR_FIELDS.items():
                if not e.__dict__.get(key):
                    rep.add(
                        "CONN-CFG-EMISOR",
                        f"emisores[{rep.ix('emisores', j)}].{key}",
                        f"La fuente de tablas {_label(s, 'sources', i)} toma {cfdi} de la "
                        f"configuración del emisor {e.rfc} (las tablas no lo traen): agregue "
                        f"{key} a su [[emisores]].",
                    )


def _check_table_databases(cfg: Config, rep: _Reporter) -> None:
    """Each table source's database, connected to (never written): every problem at once."""
    from connector.adapters.table.check import check_table_source

    for i, s in enumerate(cfg.sources):
        t = s.__dict__.get("table")
        if s.__dict__.get("kind") != "table" or not isinstance(t, TableConfig):
            continue
        kp = f"sources[{rep.ix('sources', i)}].table"
        try:
            spec = table_spec(s)
        except SecretError as exc:
            rep.add(exc.code, kp, exc.message)
            continue
        found = check_table_source(
            spec,
            factura_table=t.factura,
            concepto_table=t.concepto,
            source=s.name,
            results_table=t.resultados,
            factura_query=t.factura_query,
            concepto_query=t.concepto_query,
            cancel_table=t.cancelaciones,
        )
        for p in found:
            at = f" [{p.location}]" if p.location and p.location != s.name else ""
            rep.add(p.code, kp, f"{p.message}{at}")


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
    _check_journal_folder,
    _check_emisores,
    _check_pac_secrets,
    _check_pac_network_files,
    _check_secret_modes,
    _check_source_files,
    _check_table_databases,
]


def _check_adapter_options(s: SourceConfig, kp: str, rep: _Reporter) -> None:
    """The adapter accepts the source's options (an unknown option, a bad delimiter…)."""
    try:
        from connector.adapters.base import AdapterNotFound, get_adapter
    except ImportError:
        return
    try:
        adapter = get_adapter(s.adapter, **s.options)
    except AdapterNotFound:
        return  # reported with the adapter's name
    except Exception as exc:
        problems = getattr(exc, "problems", None)
        msg = "; ".join(p.message for p in problems) if problems else str(exc)
        rep.add(
            "CONN-CFG-ADAPTADOR",
            kp,
            f"El adaptador {s.adapter!r} de la fuente {s.name or kp} no acepta sus opciones: {msg}",
        )
        return
    if s.pair is None:
        return
    pair_kp = kp.rsplit(".", 1)[0] + ".pair"
    try:
        s.pair.spec()
    except ValueError as exc:
        rep.add("CONN-CFG-VALOR", pair_kp, f"La opción {pair_kp}: {exc}.")
    check_pair = getattr(adapter, "check_pair", None)
    for reason in check_pair() if check_pair is not None else ["no lee pares de archivos"]:
        rep.add(
            "CONN-CFG-ADAPTADOR",
            pair_kp,
            f"La fuente {s.name!r} lee pares (encabezado y líneas), pero: {reason}.",
        )


def _check_csd(e: EmisorConfig, kp: str, rep: _Reporter) -> None:
    ok = True
    for key in ("cer", "key"):
        f: Path | None = getattr(e, key)
        if f is None:  # a shape error, reported already
            ok = False
        elif not f.is_file():
            rep.add("CONN-CFG-CSD", f"{kp}.{key}", f"El archivo del CSD {f} no existe.")
            ok = False
        elif not os.access(f, os.R_OK):
            rep.add("CONN-CFG-CSD", f"{kp}.{key}", f"El archivo del CSD {f} no se puede leer.")
            ok = False
    try:
        password = read_secret(e, f"el CSD de {e.rfc or kp}")
    except SecretError as exc:
        rep.add(exc.code, kp, exc.message)
        return
    if not ok or e.rfc is None:
        return
    try:
        csd = load_csd(e, password)
    except Exception as exc:  # CsdError or anything the CSD loader raises
        problems = getattr(exc, "problems", None)
        msg = "; ".join(p.message for p in problems) if problems else str(exc)
        code = getattr(exc, "code", "CONN-CFG-CSD")
        rep.add(code if isinstance(code, str) else "CONN-CFG-CSD", f"{kp}.key", msg)
        return
    found = csd_expiry(e, csd.not_after)
    if found is not None:
        rep.add(found.code, f"{kp}.cer", found.message, severity=found.severity)


CSD_WARNING_DAYS = 30


def csd_expiry(e: EmisorConfig, not_after: datetime, now: datetime | None = None) -> Problem | None:
    """An error when the emisor's CSD (valid until ``not_after``) has expired: it cannot seal
    any invoice; a warning when it expires within ``CSD_WARNING_DAYS`` days."""
    from connector.cfdi.csd import MEXICO_TZ

    now = now or datetime.now(UTC)
    cer = e.cer.name if e.cer is not None else "(sin archivo)"
    until = not_after.astimezone(MEXICO_TZ).strftime("%Y-%m-%d %H:%M")
    if not_after <= now:
        return Problem(
            "CONN-CSD-EXPIRED",
            "",
            f"El CSD {cer} del emisor {e.rfc} venció el {until} (hora del centro de México): "
            "no puede sellar ninguna factura. Tramite un CSD nuevo ante el SAT y configúrelo "
            "en [[emisores]].",
        )
    left = not_after - now
    if left <= timedelta(days=CSD_WARNING_DAYS):
        return Problem(
            "CONN-CSD-EXPIRING",
            "",
            f"El CSD {cer} del emisor {e.rfc} vence el {until} (hora del centro de México), "
            f"en {left.days} día(s): tramite uno nuevo ante el SAT antes de esa fecha.",
            severity="warning",
        )
    return None


def csd_expiry_problems(cfg: Config, now: datetime | None = None) -> list[Problem]:
    """``csd_expiry`` of every emisor whose certificate (.cer, no password needed) is readable
    (``status`` shows them; check-config reports them with the other CSD checks)."""
    from connector.cfdi.csd import load_certificate

    out: list[Problem] = []
    for i, e in enumerate(cfg.emisores):
        try:
            cert = load_certificate(e.cer.read_bytes())
        except Exception:  # unreadable: check-config says why
            continue
        found = csd_expiry(e, cert.not_valid_after_utc, now)
        if found is not None:
            out.append(replace(found, path=f"emisores[{i}].cer"))
    return out


def load_csd(e: EmisorConfig, password: str | None = None) -> Any:
    """The emisor's ``connector.cfdi.csd.Csd``; checks the CSD belongs to the emisor's RFC."""
    from connector.cfdi.csd import Csd

    if password is None:
        password = read_secret(e, f"el CSD de {e.rfc}")
    csd = Csd.from_files(e.cer, e.key, password)
    if getattr(csd, "rfc", e.rfc).upper() != e.rfc:
        from connector.cfdi.errors import CsdError

        raise CsdError.one(
            "CONN-CFG-CSD",
            f"El CSD {e.cer.name} es del RFC {csd.rfc}, no del emisor {e.rfc}.",
        )
    return csd


def source_mapping(s: SourceConfig) -> Any:
    """The ``Mapping`` a source uses: its mapping file, else (only when it has ``defaults``)
    its adapter's default mapping, with the source's ``defaults`` applied; None to let the
    adapter use its own default mapping. ``MappingError`` (or the adapter's error) when they
    cannot be used."""
    from connector.mappers import Mapping, MappingError

    mapping = Mapping.from_toml(s.mapping) if s.mapping is not None else None
    if not s.defaults:
        return mapping
    if mapping is None and s.kind == "table":
        from connector.adapters.table.source import default_mapping

        mapping = default_mapping()
    if mapping is None:
        from connector.adapters.base import get_adapter

        mapping = get_adapter(s.adapter, **s.options).default_mapping()
    if mapping is None:
        raise MappingError(
            [
                Problem(
                    "CONN-MAPPING",
                    "defaults",
                    f"El adaptador {s.adapter!r} no usa un mapeo: defaults no se puede aplicar.",
                )
            ]
        )
    return mapping.with_defaults(s.defaults)


def source_defaults(s: SourceConfig) -> dict[str, str]:
    """Every value a source's fields take when the ERP leaves them empty (its ``defaults`` and
    its mapping file's), for check-config to show; {} when the mapping cannot be loaded."""
    try:
        mapping = source_mapping(s)
    except Exception:  # reported by check_config
        return {}
    return mapping.defaults() if mapping is not None else {}


def _check_source_defaults(s: SourceConfig, kp: str, rep: _Reporter) -> None:
    if s.mapping is not None and not s.mapping.is_file():
        return  # reported with the mapping
    try:
        source_mapping(s)
    except Exception as exc:
        problems = getattr(exc, "problems", None) or []
        for p in problems:
            if p.path.startswith("defaults"):  # the mapping file's own: _check_mapping
                rep.add("CONN-CFG-VALOR", f"{kp}.{p.path}", p.message)


def _check_mapping(mapping: Path, kp: str, rep: _Reporter) -> None:
    if not mapping.is_file():
        rep.add("CONN-CFG-MAPEO", kp, f"El archivo de mapeo {mapping} no existe.")
        return
    try:
        from connector.mappers import Mapping
    except ImportError:
        rep.add("CONN-CFG-MAPEO", kp, "El módulo de mapeos no está disponible.")
        return
    try:
        Mapping.from_toml(mapping)
    except Exception as exc:
        problems = getattr(exc, "problems", None)
        if problems:
            for p in problems:
                where = p.location or f"{mapping.name}: {p.path}"
                rep.add(p.code, kp, f"Mapeo {where}: {p.message}")
        else:
            rep.add("CONN-CFG-MAPEO", kp, f"El mapeo {mapping} no se puede cargar: {exc}.")
