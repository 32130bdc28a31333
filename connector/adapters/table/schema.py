"""The default interface tables ``cfdi_factura`` and ``cfdi_concepto``: their columns, kinds
and which values an invoice cannot do without. The DDL of each engine is built from this
(``dialects``); the checks of ``check_table_source`` and the reading of rows use it too.

States of ``cfdi_factura.estado`` (the ERP writes ``PENDIENTE`` last, after the lines; rows with
another or an empty ``estado`` are never touched)::

    PENDIENTE ──claim──► EN_PROCESO ──► TIMBRADO | ERROR        (ERROR ──replay──► PENDIENTE)

Lease columns (owned by the connector, documented in docs/tables.md): ``reclamado_por`` (the
instance and claim that holds the row), ``reclamado_hasta`` (UTC; after it another instance may
take an ``EN_PROCESO`` row again, keeping its ``referencia``), ``intentos`` (claims so far).
"""

from __future__ import annotations

from dataclasses import dataclass

PENDING = "PENDIENTE"
IN_PROGRESS = "EN_PROCESO"
STAMPED = "TIMBRADO"
ERROR = "ERROR"


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # key | ref | int | text | money | rate | timestamp | clob
    size: int = 0  # text columns: characters
    not_null: bool = False  # NOT NULL in the DDL
    required: bool = False  # NULL or empty makes the invoice a coded error (CONN-BD-NULO)
    default: str | None = None  # DDL default (a literal)
    scale: int = 6  # money columns: decimals in the DDL (and at most in the value read)


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    indexes: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]


FACTURA = Table(
    "cfdi_factura",
    (
        Column("id", "key", not_null=True),
        Column("serie", "text", 25),
        Column("folio", "text", 40, required=True),
        Column("fecha", "timestamp"),  # empty: the time of the claim (written by the claim)
        Column("tipo_comprobante", "text", 1),  # empty: I
        Column("receptor_rfc", "text", 13, required=True),
        Column("receptor_nombre", "text", 300, required=True),
        Column("receptor_cp", "text", 5, required=True),
        Column("receptor_regimen", "text", 3, required=True),
        Column("uso_cfdi", "text", 4, required=True),
        Column("forma_pago", "text", 2),
        Column("metodo_pago", "text", 3),
        Column("moneda", "text", 3),
        Column("tipo_cambio", "money"),
        Column("condiciones_pago", "text", 1000),
        Column("estado", "text", 20),
        Column("uuid", "text", 36),
        Column("fecha_timbrado", "timestamp"),
        Column("referencia", "text", 64),
        Column("error_codigo", "text", 40),
        Column("error_mensaje", "text", 2000),
        Column("xml", "clob"),
        Column("acuse", "clob"),
        Column("actualizado_en", "timestamp"),
        Column("reclamado_por", "text", 100),
        Column("reclamado_hasta", "timestamp"),
        Column("intentos", "int", not_null=True, default="0"),
    ),
    ("id",),
    (("ix_cfdi_factura_estado", ("estado", "id")),),
)

CONCEPTO = Table(
    "cfdi_concepto",
    (
        Column("factura_id", "ref", not_null=True),
        Column("linea", "int", not_null=True),
        Column("clave_prod_serv", "text", 8, required=True),
        Column("no_identificacion", "text", 100),
        Column("cantidad", "money", required=True),
        Column("clave_unidad", "text", 3, required=True),
        Column("unidad", "text", 20),
        Column("descripcion", "text", 1000, required=True),
        Column("valor_unitario", "money", required=True),
        Column("descuento", "money"),
        Column("objeto_imp", "text", 2, required=True),
        Column("iva_tasa", "rate"),  # empty: exento when objeto_imp is 02, else no IVA
        Column("iva_retencion_tasa", "rate"),
        Column("isr_retencion_tasa", "rate"),
    ),
    ("factura_id", "linea"),
)

# cancellation requests from the ERP (issue 13): the ERP writes uuid (or factura_id: the
# invoice's row), motivo and folio_sustitucion and sets estado = 'PENDIENTE' last; the
# connector claims the row, asks the PAC and writes where the request stands at SAT each time it
# changes (SOLICITADA, ENVIADA, EN_ESPERA: the receptor must accept, CANCELADA, RECHAZADA,
# NO_CANCELABLE, ERROR)
CANCELACION = Table(
    "cfdi_cancelacion",
    (
        Column("id", "key", not_null=True),
        Column("uuid", "text", 36),
        Column("factura_id", "ref"),
        Column("motivo", "text", 2),
        Column("folio_sustitucion", "text", 36),
        Column("estado", "text", 20),
        Column("estatus_sat", "text", 60),
        Column("es_cancelable", "text", 60),
        Column("error_codigo", "text", 40),
        Column("error_mensaje", "text", 2000),
        Column("acuse", "clob"),
        Column("actualizado_en", "timestamp"),
        Column("reclamado_por", "text", 100),
        Column("reclamado_hasta", "timestamp"),
    ),
    ("id",),
    (("ix_cfdi_cancelacion_estado", ("estado", "id")),),
)

DEFAULT_TABLES = (FACTURA, CONCEPTO, CANCELACION)

# results-table mode: the ERP's own tables (or views, or queries) are only read; the claim and
# every outcome go to this table, one row per invoice keyed by the ERP's invoice id
RESULTADO = Table(
    "cfdi_resultado",
    (
        Column("id", "ref", not_null=True),  # the ERP's invoice id (the header query's id)
        Column("fecha", "timestamp"),  # the Fecha used when the ERP's is empty
        *(c for c in FACTURA.columns if c.name in (
            "estado", "uuid", "fecha_timbrado", "referencia", "error_codigo", "error_mensaje",
            "xml", "acuse", "actualizado_en", "reclamado_por", "reclamado_hasta", "intentos",
        )),
    ),  # fmt: skip
    ("id",),
    (("ix_cfdi_resultado_estado", ("estado", "id")),),
)

# the columns the connector writes (never the ERP's own data, except an empty fecha at claim)
OWNED = (
    "estado",
    "uuid",
    "fecha_timbrado",
    "referencia",
    "error_codigo",
    "error_mensaje",
    "xml",
    "acuse",
    "actualizado_en",
    "reclamado_por",
    "reclamado_hasta",
    "intentos",
)
