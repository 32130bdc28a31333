"""A table source's rows seen from outside the daemon's loop: which ``TableSource`` a source
configuration makes, where an invoice's row is (its journal location), this connector's name in
the rows it claims, and the one-shot writes of ``replay --item`` and ``find --redeliver``."""

from __future__ import annotations

import hashlib
import re
import socket
from typing import Any

from connector.config import SourceConfig, table_spec
from connector.journal import Entry

from .odbc import TableError
from .source import Outcome, TableSource

_ROW = re.compile(r" id=(\d+)$")


def instance_name(config_path: object) -> str:
    """This connector's name in the rows it claims: the host and its configuration file, the
    same across restarts (a restart takes its rows back at once)."""
    digest = hashlib.sha256(str(config_path).encode()).hexdigest()[:8]
    return f"{socket.gethostname()}:{digest}"[:100]


def row_location(table: str, row_id: int) -> str:
    return f"{table} id={row_id}"


def row_of(location: str | None) -> int | None:
    """The row id in a location ``row_location`` wrote (None: not a row's)."""
    m = _ROW.search(location or "")
    return int(m.group(1)) if m else None


def table_source(s: SourceConfig, emisor: Any = None, mapping: Any = None) -> TableSource:
    """A table source's ``TableSource`` (``ResultsTableSource`` in results-table mode);
    ``emisor``: what its invoices take from the configuration (None: a command that only
    writes, replay or find --redeliver)."""
    t = s.table
    assert t is not None
    kw: dict[str, Any] = {
        "factura_table": t.factura,
        "concepto_table": t.concepto,
        "skip_locked": t.skip_locked,
        "mapping": mapping,
        "complements": tuple(t.complementos),
    }
    if emisor is not None:
        kw["emisor"] = {
            "Rfc": emisor.rfc,
            "Nombre": emisor.nombre or "",
            "RegimenFiscal": emisor.regimen_fiscal or "",
            "LugarExpedicion": emisor.lugar_expedicion or "",
        }
    if t.resultados:
        from .results import ResultsTableSource

        return ResultsTableSource(table_spec(s), results_table=t.resultados,
                                  factura_query=t.factura_query,
                                  concepto_query=t.concepto_query, **kw)  # fmt: skip
    return TableSource(table_spec(s), **kw)


def _one_table(s: SourceConfig) -> TableSource:
    """A source's tables for one command (replay, find --redeliver): not the daemon's."""
    return table_source(s)


def rewrite_row(s: SourceConfig, e: Entry) -> str:
    """``find --redeliver`` of a stamped invoice from a table: its row written back again
    (TIMBRADO, UUID, XML, acuse). The row's id; ``OSError`` when it cannot be written."""
    row_id = row_of(e.location)
    if row_id is None or e.uuid is None or e.stamped_xml is None:
        raise OSError(f"no se sabe en qué fila de {s.name!r} va {e.label}")
    table = _one_table(s)
    try:
        out = Outcome.stamped(e.uuid, fecha_timbrado(e.stamped_xml), e.stamped_xml, e.acuse)
        if not table.write_back(row_id, out):
            raise OSError(f"la fila id={row_id} ya está TIMBRADO con otro UUID")
    except TableError as exc:
        raise OSError(f"{exc.code} {exc.message}") from None
    finally:
        table.close()
    return str(row_id)


def reset_row(s: SourceConfig, location: str | None) -> str:
    """``replay --item`` of an invoice from a table: its ERROR row back to PENDIENTE (the
    daemon claims it again; its referencia stays). What was done, in Spanish."""
    row_id = row_of(location)
    if row_id is None:
        return "no se encontró su fila"
    assert s.table is not None
    table = _one_table(s)
    try:
        done = table.reset(row_id)
    finally:
        table.close()
    where = f"{s.table.factura} id={row_id}"
    return f"fila {where} regresada a PENDIENTE" if done else f"la fila {where} no está en ERROR"


_TFD = "{http://www.sat.gob.mx/TimbreFiscalDigital}TimbreFiscalDigital"


def fecha_timbrado(stamped_xml: bytes) -> str | None:
    """The TFD's FechaTimbrado of a stamped CFDI (None when it has none)."""
    from lxml import etree

    root = etree.fromstring(stamped_xml, etree.XMLParser(resolve_entities=False, no_network=True))
    tfd = next(root.iter(_TFD), None)
    return (tfd.get("FechaTimbrado") or None) if tfd is not None else None
