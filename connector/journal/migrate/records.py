"""What ``journal migrate`` copies and how it reports (``connector.journal.migrate``): the
tables, the columns naming another table's row, the coded problems, the counts and the report,
and the comparison of hashes."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

TABLES = (
    "invoices",
    "events",
    "files",
    "file_items",
    "file_reports",
    "cancellations",
    "cancel_requests",
    "sat_checks",
    "failure_notes",
    "claim_names",
)
# the tables whose ``id`` PostgreSQL gives anew (those whose new ids are kept: all but
# events), and the columns naming another table's row
NEW_ID = ("invoices", "events", "files", "failure_notes")
KEPT_ID = ("invoices", "files", "failure_notes")
REFS: dict[str, dict[str, str]] = {
    "events": {"invoice_id": "invoices"},
    "file_items": {"file_id": "files", "invoice_id": "invoices"},
    "file_reports": {"file_id": "files"},
    "cancellations": {"invoice_id": "invoices"},
    "cancel_requests": {"invoice_id": "invoices"},
}
UUID_TABLES = ("cancellations", "cancel_requests", "sat_checks")
BLOBS = ("stamped_xml", "acuse", "payload")  # an invoice's hashed columns
# pg_advisory_xact_lock's key: one migration into a journal at a time ("CFDIMIGR")
IMPORT_LOCK = 0x434644494D494752
BATCH = 500

IMPORTS_DDL = (
    "CREATE TABLE IF NOT EXISTS journal_imports (digest TEXT PRIMARY KEY, source TEXT NOT NULL, "
    "imported_at DOUBLE PRECISION NOT NULL, counts TEXT NOT NULL)"
)


@dataclass(frozen=True)
class MigrationProblem:
    code: str
    location: str
    message: str

    def __str__(self) -> str:
        return f"{self.code} [{self.location}] {self.message}"


class MigrationError(Exception):
    """Nothing was migrated; every reason, coded and in Spanish."""

    def __init__(self, problems: Sequence[MigrationProblem]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(map(str, self.problems)))


@dataclass
class TableCount:
    source: int = 0  # rows in the SQLite journal
    copied: int = 0  # rows found in PostgreSQL after the copy (read back)
    present: int = 0  # rows the target already held identical (failure notes, claim names)


@dataclass
class MigrationReport:
    source: str
    target: str  # without its password
    tables: dict[str, TableCount] = field(default_factory=dict)
    hashes_checked: int = 0  # stamped XMLs, acuses and payloads compared by SHA-256
    stamped: int = 0  # invoices with a stamped XML
    in_flight: int = 0  # invoices not final (resumed by their referencia on PostgreSQL)
    already: float | None = None  # when it was migrated, if it already was
    dry_run: bool = False


def sha256(value: bytes | str | None) -> str | None:
    if value is None:
        return None
    return hashlib.sha256(value.encode("utf-8") if isinstance(value, str) else value).hexdigest()


def compare_hashes(
    what: str, expected: dict[Any, tuple[Any, ...]], found: dict[Any, tuple[Any, ...]]
) -> list[MigrationProblem]:
    """Every row of ``expected`` (key → identity and hashes, as read from the source) must be
    in ``found`` (read back from the target) with the same values; one problem per row that is
    not (``CONN-MIGRAR-HASH``)."""
    problems = []
    for key, want in expected.items():
        got = found.get(key)
        if got == want:
            continue
        said = "no está en el destino" if got is None else f"se leyó {got} en lugar de {want}"
        problems.append(
            MigrationProblem(
                "CONN-MIGRAR-HASH",
                f"{what}:{key}",
                f"La comprobación de {what} no coincide: {said}. No se migró nada.",
            )
        )
    return problems
