"""The configuration's tables (pydantic): ``[daemon]``, ``[[emisores]]``, ``[[pacs]]``,
``[[sources]]`` (folder or table) and the ``Config`` that holds them; ``pac_network`` builds a
PAC driver's plain network settings.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import (
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails

from connector.cfdi.errors import Problem
from connector.pac.addresses import SAT_STATUS_URL

from .secrets import SecretSource, _Cfg, read_secret

DEFAULT_FILENAME_PATTERN = "{serie}{folio}_{uuid}"
PAC_KINDS = ("fel", "finkok")


# a journal given as one of these addresses is on PostgreSQL (issue 16), not a SQLite file
JOURNAL_URL_SCHEMES = ("postgresql://", "postgres://")
# the local name a PostgreSQL journal's lock and status files are kept under (config folder)
JOURNAL_URL_LOCAL = "journal.postgresql"


def instance_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be an instance's name (it names its work folder and its files),
    in Spanish; None when it can."""
    if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.:@-]{0,99}", name):
        return None
    return (
        f"el nombre de instancia {name!r} debe empezar con una letra o un número y tener solo "
        "letras, números y . _ : @ - (hasta 100 caracteres): nombra su carpeta de trabajo"
    )


def safe_name(name: str) -> str:
    """An instance's name as a file or folder name on every OS (``host:hash`` → ``host_hash``)."""
    return re.sub(r"[^A-Za-z0-9_.@-]", "_", name)


class DaemonSettings(_Cfg):
    # this connector's name in what it claims (table rows): default the host and a hash of the
    # configuration file's path, the same across restarts; `run --instance NAME` when several
    # run from one configuration on one host
    instance: str | None = Field(default=None, min_length=1, max_length=100)
    # a shared (PostgreSQL) journal: an instance whose heartbeat is older than this is taken
    # over by a live one, which finishes its unfinished work (connector.membership)
    instance_lease_seconds: float = Field(default=30.0, ge=2.0, le=3600.0)
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

    def local_file(self, suffix: str) -> Path:
        """A file of this connector's beside the journal (``.lock``, ``.status.json``): one
        per instance when several share a PostgreSQL journal from one configuration
        (``run --instance NAME``)."""
        name = self.journal.name
        if self.journal_url is not None and self.instance:
            name += "." + safe_name(self.instance)
        return self.journal.with_name(name + suffix)

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

    @field_validator("instance")
    @classmethod
    def _instance(cls, v: str | None) -> str | None:
        wrong = None if v is None else instance_name_problem(v)
        if wrong:
            raise ValueError(wrong)
        return v

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

    # the complements' files each export brings beside its header and lines files: a list of
    # their names (default suffixes: cce → "_CCE"…) or name → suffix (docs/layouts.md §4.2)
    complement_files: list[str] | dict[str, str] = Field(default_factory=list)

    def files(self) -> dict[str, str]:
        """The complement files → their suffixes."""
        from connector.adapters.csv_complements import FILES

        if isinstance(self.complement_files, dict):
            return dict(self.complement_files)
        return {n: FILES.get(n, "") for n in self.complement_files}

    def spec(self) -> Any:
        """The folder source's ``PairSpec`` (raises ValueError for suffixes that clash or
        complement files it does not know)."""
        from connector.adapters.csv_complements import check_files
        from connector.adapters.folder import PairSpec

        files = self.files()
        bad = check_files(files)
        if bad:
            raise ValueError("; ".join(bad))
        return PairSpec(
            self.header_suffix, self.lines_suffix, self.orphan_seconds, tuple(files.items())
        )


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
    # complements read from their child tables joined by factura_id (cfdi_cce…, cfdi_carta_porte…;
    # named beside `factura`: "dbo.cfdi_factura" → "dbo.cfdi_cce")
    complementos: list[Literal["comercio_exterior", "carta_porte"]] = Field(default_factory=list)

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
    # only defaults besides the mapping file's own: the shipped mappings give none (but the
    # tables' Exportacion "01" for an invoice without a cfdi_cce row: not an export)
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
