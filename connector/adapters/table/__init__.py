"""ERP database tables as a source and a sink, over ODBC (pyodbc).

- ``schema``: the default interface tables ``cfdi_factura``/``cfdi_concepto`` and their states;
- ``dialects``: per-engine SQL (PostgreSQL, MariaDB/MySQL, SQLite, SQL Server, Firebird);
- ``statements``: the claim, write-back, release and replay SQL of each dialect;
- ``odbc``: connecting (drivers, password, timeouts, encodings) and coded errors (``CONN-BD-*``);
- ``source``: ``TableSource`` — claim, read, map, write back, release, replay;
- ``check``: ``check_table_source`` — every problem of a source's database at once.

The daemon does not run table sources yet (they plug into the pipeline's source seam).
"""

from .check import check_table_source
from .dialects import DIALECTS, Dialect, ddl_script, get_dialect
from .odbc import ConnSpec, TableError
from .schema import CONCEPTO, ERROR, FACTURA, IN_PROGRESS, PENDING, STAMPED
from .source import Claimed, Outcome, TableSource, default_instance, default_mapping

__all__ = [
    "CONCEPTO",
    "DIALECTS",
    "ERROR",
    "FACTURA",
    "IN_PROGRESS",
    "PENDING",
    "STAMPED",
    "Claimed",
    "ConnSpec",
    "Dialect",
    "Outcome",
    "TableError",
    "TableSource",
    "check_table_source",
    "ddl_script",
    "default_instance",
    "default_mapping",
    "get_dialect",
]
