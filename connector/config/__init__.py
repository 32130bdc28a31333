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

The package's modules: ``secrets`` (where a password comes from, ``read_secret``), ``models``
(the pydantic tables and ``Config``), ``loading`` (the file parsed and validated, key lines,
``load_config``), ``checks`` (``check_config``, ``SHALLOW_CHECKS``, ``DEEP_CHECKS``), ``csd``
(the emisores' CSD and its expiry), ``sources`` (what a source connects or maps with, and its
checks). Everything is imported from ``connector.config``.
"""

from .checks import DEEP_CHECKS, SHALLOW_CHECKS, Check, check_config
from .csd import CSD_WARNING_DAYS, csd_expiry, csd_expiry_problems, load_csd
from .loading import KeyLocator, load_config
from .models import (
    DEFAULT_FILENAME_PATTERN,
    FOLDER_ONLY,
    JOURNAL_URL_LOCAL,
    JOURNAL_URL_SCHEMES,
    PAC_KINDS,
    BreakerConfig,
    Config,
    ConfigError,
    DaemonSettings,
    EmisorConfig,
    OutputConfig,
    PacConfig,
    PairConfig,
    PdfStyleConfig,
    RetryConfig,
    SourceConfig,
    TableConfig,
    instance_name_problem,
    pac_network,
    safe_name,
)
from .secrets import SecretError, SecretSource, read_secret
from .sources import (
    SAFE_STABLE_SECONDS,
    TABLE_EMISOR_FIELDS,
    known_adapters,
    source_defaults,
    source_mapping,
    table_spec,
)

__all__ = [
    "CSD_WARNING_DAYS",
    "DEEP_CHECKS",
    "DEFAULT_FILENAME_PATTERN",
    "FOLDER_ONLY",
    "JOURNAL_URL_LOCAL",
    "JOURNAL_URL_SCHEMES",
    "PAC_KINDS",
    "SAFE_STABLE_SECONDS",
    "SHALLOW_CHECKS",
    "TABLE_EMISOR_FIELDS",
    "BreakerConfig",
    "Check",
    "Config",
    "ConfigError",
    "DaemonSettings",
    "instance_name_problem",
    "safe_name",
    "EmisorConfig",
    "KeyLocator",
    "OutputConfig",
    "PacConfig",
    "PairConfig",
    "PdfStyleConfig",
    "RetryConfig",
    "SecretError",
    "SecretSource",
    "SourceConfig",
    "TableConfig",
    "check_config",
    "csd_expiry",
    "csd_expiry_problems",
    "known_adapters",
    "load_config",
    "load_csd",
    "pac_network",
    "read_secret",
    "source_defaults",
    "source_mapping",
    "table_spec",
]
