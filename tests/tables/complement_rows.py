"""Rows of the complements' child tables (issue 15) as an ERP writes them: five export invoices
with Comercio Exterior 2.0 and five Carta Porte 3.1 traslados/fletes, the same documents the DAT
tests stamp (tests/daemon/test_daemon_cce20.py, test_daemon_cp31.py), spread over cfdi_factura,
cfdi_concepto and the child tables."""

from __future__ import annotations

import contextlib
from decimal import Decimal
from typing import Any

import pyodbc

from connector.adapters.table.complements import CHILD_TABLES
from connector.adapters.table.dialects import get_dialect

from .conftest import LINE, Db, insert_invoice, money

D = Decimal


def fresh_complement_tables(db: Db, conn: Any) -> None:
    """The child tables of both complements, made again by ``tables-ddl --complemento``."""
    for child in reversed(CHILD_TABLES):
        with contextlib.suppress(pyodbc.Error):
            conn.execute(f"DROP TABLE {child.name}")
    for child in CHILD_TABLES:
        for stmt in get_dialect(db.dialect).create_table(child.table):
            conn.execute(stmt)


def insert(conn: Any, db: Db, table: str, **values: Any) -> None:
    values = {k: money(db, v) if isinstance(v, Decimal) else v for k, v in values.items()}
    conn.execute(
        f"INSERT INTO {table} ({', '.join(values)}) VALUES ({', '.join('?' for _ in values)})",
        *values.values(),
    )


# --- Comercio Exterior 2.0 ----------------------------------------------------------------------

EXPORT_HEADER = {
    "serie": "EX", "tipo_comprobante": "I", "receptor_rfc": "XEXX010101000",
    "receptor_nombre": "ACME INC", "receptor_cp": "42501", "receptor_regimen": "616",
    "uso_cfdi": "S01", "forma_pago": "03", "metodo_pago": "PUE", "moneda": "USD",
    "tipo_cambio": D("17.5"),
}  # fmt: skip
CCE = {
    "exportacion": "02", "receptor_residencia_fiscal": "USA",
    "receptor_num_reg_id_trib": "121585958", "clave_de_pedimento": "A1",
    "certificado_origen": "0", "incoterm": "FOB", "tipo_cambio_usd": D("17.5"),
    "total_usd": D("2252.50"), "emisor_calle": "Av. Juárez", "emisor_numero_exterior": "100",
    "emisor_estado": "HID", "emisor_pais": "MEX", "emisor_codigo_postal": "42501",
    "receptor_calle": "Main St", "receptor_numero_exterior": "1", "receptor_estado": "TX",
    "receptor_pais": "USA", "receptor_codigo_postal": "73301",
}  # fmt: skip
USB = ("USB32", "43201800", "Memoria USB 32 GB", D("10"), D("100.00"))
LAP = ("LAP14", "43211503", "Computadora portátil", D("5"), D("250.50"))
MERCANCIAS = [("USB32", "8523510100", D("10"), D("100.00"), D("1000.00")),
              ("LAP14", "8471300101", D("5"), D("250.50"), D("1252.50"))]  # fmt: skip


def export_lines(precios: tuple[Decimal, Decimal] | None = None, tipo: str = "I") -> list[Any]:
    out = []
    for n, (art, clave, desc, qty, precio) in enumerate((USB, LAP), 1):
        if precios is not None:
            precio = precios[n - 1]
        out.append({
            **LINE, "linea": n, "clave_prod_serv": clave, "no_identificacion": art,
            "cantidad": qty, "descripcion": desc, "valor_unitario": precio,
            "objeto_imp": "02" if tipo == "I" else "01",
            "iva_tasa": D("0.000000") if tipo == "I" else None,
        })  # fmt: skip
    return out


def insert_export(
    conn: Any,
    db: Db,
    row_id: int,
    *,
    header: dict[str, Any] | None = None,
    cce: dict[str, Any] | None = None,
    mercancias: list[tuple[Any, ...]] | None = None,
    descripciones: dict[int, dict[str, str]] | None = None,
    propietarios: list[tuple[str, str]] = (),  # type: ignore[assignment]
    destinatarios: list[dict[str, Any]] = (),  # type: ignore[assignment]
    lines: list[Any] | None = None,
    with_header_row: bool = True,
) -> None:
    """One export invoice: child rows first, then the invoice's own rows (estado last)."""
    if with_header_row:
        insert(conn, db, "cfdi_cce", factura_id=row_id, **{**CCE, **(cce or {})})
    for n, (art, fraccion, qty, unit, usd) in enumerate(mercancias or MERCANCIAS, 1):
        extra = (descripciones or {}).get(n, {})
        insert(conn, db, "cfdi_cce_mercancia", factura_id=row_id, linea=n, no_identificacion=art,
               fraccion_arancelaria=fraccion, cantidad_aduana=qty, unidad_aduana="06",
               valor_unitario_aduana=unit, valor_dolares=usd, **extra)  # fmt: skip
    for n, (num, pais) in enumerate(propietarios, 1):
        insert(conn, db, "cfdi_cce_propietario", factura_id=row_id, linea=n,
               num_reg_id_trib=num, residencia_fiscal=pais)  # fmt: skip
    for n, dest in enumerate(destinatarios, 1):
        insert(conn, db, "cfdi_cce_destinatario", factura_id=row_id, linea=n, **dest)
    insert_invoice(conn, db, row_id, lines=lines or export_lines(),
                   **{**EXPORT_HEADER, **(header or {})})  # fmt: skip


def valid_exports(conn: Any, db: Db, first: int) -> list[int]:
    """Five valid export invoices, ids ``first``…``first + 4``."""
    i = first
    insert_export(conn, db, i)
    insert_export(conn, db, i + 1, header={"moneda": "MXN", "tipo_cambio": None},
                  lines=export_lines((D("1750.00"), D("4383.75"))))  # fmt: skip
    insert_export(
        conn, db, i + 2,
        cce={"certificado_origen": "1", "num_certificado_origen": "CO-2025-000123",
             "numero_exportador_confiable": "MXEC12345", "incoterm": "cif",
             "observaciones": "Entrega en Laredo"},
        descripciones={2: {"marca": "Acme", "modelo": "X14", "numero_serie": "SN-0001"}},
        destinatarios=[{"num_reg_id_trib": "987654321", "nombre": "ACME Warehouse",
                        "calle": "Dock 4", "referencia": "Gate B", "estado": "TX",
                        "pais": "USA", "codigo_postal": "78040"}],
    )  # fmt: skip
    insert_export(conn, db, i + 3, mercancias=[
        ("USB32", "8523510100", D("6"), D("100.00"), D("600.00")),
        ("USB32", "85232101", D("4"), D("100.00"), D("400.00")),
        MERCANCIAS[1],
    ])  # fmt: skip
    insert_export(
        conn, db, i + 4,
        header={"tipo_comprobante": "T", "moneda": "MXN", "tipo_cambio": None,
                "forma_pago": None, "metodo_pago": None},
        cce={"motivo_traslado": "05", "incoterm": None},
        lines=export_lines((D("0"), D("0")), tipo="T"),
        propietarios=[("121585958", "USA")],
    )  # fmt: skip
    return list(range(first, first + 5))


# --- Carta Porte 3.1 ----------------------------------------------------------------------------

EMISOR = {"receptor_rfc": "EKU9003173C9", "receptor_nombre": "ESCUELA KEMPER URGATE",
          "receptor_cp": "42501", "receptor_regimen": "601", "uso_cfdi": "S01"}  # fmt: skip
TRASLADO = {"serie": "CP", "tipo_comprobante": "T", "moneda": "MXN", "forma_pago": None,
            "metodo_pago": None, **EMISOR}  # fmt: skip
GAMEPAD = {**LINE, "clave_prod_serv": "52161557", "no_identificacion": "GAMEPAD007",
           "cantidad": D("40"), "descripcion": "Control de juego", "valor_unitario": D("0.00"),
           "objeto_imp": "01", "iva_tasa": None}  # fmt: skip
FLETE = {**LINE, "clave_prod_serv": "78101802", "no_identificacion": None, "cantidad": D("1"),
         "clave_unidad": "E48", "unidad": "Servicio", "descripcion": "Flete Villahermosa - Celaya",
         "valor_unitario": D("18500.00"), "objeto_imp": "02", "iva_tasa": D("0.160000"),
         "iva_retencion_tasa": D("0.040000")}  # fmt: skip
CARTA = {"transp_internac": "No", "perm_sct": "TPAF01", "num_permiso_sct": "0X2XTXZ0X5X0X3X2X1X0",
         "config_vehicular": "C2", "peso_bruto_vehicular": D("10.50"), "placa_vm": "501AAA",
         "anio_modelo_vm": 2020, "asegura_resp_civil": "SW Seguros",
         "poliza_resp_civil": "123456"}  # fmt: skip


def ubicacion(tipo: str, ident: str, rfc: str, nombre: str, when: str, km: Decimal | None,
              estado: str, cp: str, **kw: Any) -> dict[str, Any]:  # fmt: skip
    from datetime import datetime

    return {"tipo_ubicacion": tipo, "id_ubicacion": ident, "rfc_remitente_destinatario": rfc,
            "nombre_remitente_destinatario": nombre,
            "fecha_hora_salida_llegada": datetime.fromisoformat(when), "distancia_recorrida": km,
            "calle": "Calle 1", "numero_exterior": "10", "estado": estado, "pais": "MEX",
            "codigo_postal": cp, **kw}  # fmt: skip


ORIGEN = ubicacion("Origen", "OR000001", "EKU9003173C9", "ESCUELA KEMPER URGATE",
                   "2025-06-02T09:00:00", None, "TAB", "86000")  # fmt: skip
DESTINO = ubicacion("Destino", "DE000001", "EKU9003173C9", "ESCUELA KEMPER URGATE",
                    "2025-06-03T07:30:00", D("1050.5"), "GUA", "36257")  # fmt: skip


def merc(clave: str, desc: str, qty: str, kg: str, **kw: Any) -> dict[str, Any]:
    return {"bienes_transp": clave, "descripcion": desc, "cantidad": D(qty),
            "clave_unidad": "H87", "unidad": "Pieza", "material_peligroso": "No",
            "peso_en_kg": D(kg), **kw}  # fmt: skip


OPERADOR = {"tipo_figura": "01", "rfc_figura": "VAAM130719H60", "num_licencia": "a234567890",
            "nombre_figura": "Miguel Vázquez"}  # fmt: skip
JUEGOS = merc("52161557", "Control de juego", "40", "24.000", cantidad_transporta=D("40"),
              id_origen="OR000001", id_destino="DE000001")  # fmt: skip


def insert_carta(
    conn: Any,
    db: Db,
    row_id: int,
    *,
    header: dict[str, Any] | None = None,
    carta: dict[str, Any] | None = None,
    ubicaciones: list[dict[str, Any]] | None = None,
    mercancias: list[dict[str, Any]] | None = None,
    remolques: list[tuple[str, str]] = (),  # type: ignore[assignment]
    figuras: list[dict[str, Any]] | None = None,
    lines: list[Any] | None = None,
    with_header_row: bool = True,
) -> None:
    if with_header_row:
        insert(conn, db, "cfdi_carta_porte", factura_id=row_id, **{**CARTA, **(carta or {})})
    children = (("cfdi_cp_ubicacion", ubicaciones or [ORIGEN, DESTINO]),
                ("cfdi_cp_mercancia", mercancias or [JUEGOS]),
                ("cfdi_cp_remolque", [{"sub_tipo_rem": s, "placa": p} for s, p in remolques]),
                ("cfdi_cp_figura", figuras or [OPERADOR]))  # fmt: skip
    for table, rows in children:
        for n, values in enumerate(rows, 1):
            insert(conn, db, table, factura_id=row_id, linea=n, **values)
    insert_invoice(conn, db, row_id, lines=lines or [GAMEPAD], **{**TRASLADO, **(header or {})})


def valid_cartas(conn: Any, db: Db, first: int) -> list[int]:
    """Five valid Carta Porte invoices, ids ``first``…``first + 4``."""
    i = first
    insert_carta(conn, db, i)
    insert_carta(conn, db, i + 1, lines=[FLETE], header={
        "tipo_comprobante": "I", "receptor_rfc": "CACX7605101P8",
        "receptor_nombre": "XOCHILT CASAS CHAVEZ", "receptor_cp": "36257",
        "receptor_regimen": "612", "uso_cfdi": "G03", "forma_pago": "03", "metodo_pago": "PUE",
    })  # fmt: skip
    insert_carta(
        conn, db, i + 2,
        carta={"transp_internac": "Sí", "entrada_salida_merc": "Salida",
               "pais_origen_destino": "USA", "via_entrada_salida": "01",
               "regimenes_aduaneros": "EXD", "config_vehicular": "T3S2",
               "asegura_med_ambiente": "Eco Seguros", "poliza_med_ambiente": "MA-1234"},
        ubicaciones=[ORIGEN, ubicacion("Destino", "DE000001", "XEXX010101000", "ACME INC",
                                       "2025-06-03T18:00:00", D("1200"), "TX", "78040",
                                       num_reg_id_trib="121585958", residencia_fiscal="USA",
                                       pais="USA")],
        mercancias=[merc("52161557", "Control de juego", "40", "24.000"),
                    merc("12352104", "Solvente", "2", "40.000", material_peligroso="Sí",
                         cve_material_peligroso="1266", embalaje="4G")],
        remolques=[("CTR004", "ABC1234")],
    )  # fmt: skip
    insert_carta(
        conn, db, i + 3,
        ubicaciones=[ORIGEN, DESTINO,
                     ubicacion("Destino", "DE000002", "CACX7605101P8", "XOCHILT CASAS CHAVEZ",
                               "2025-06-03T12:00:00", D("80.25"), "GUA", "38000")],
        mercancias=[JUEGOS,
                    merc("43211503", "Computadora portátil", "12", "28.800",
                         cantidad_transporta=D("12"), id_origen="OR000001",
                         id_destino="DE000002", unidad_peso_merc="KGM", peso_bruto=D("28.800"),
                         peso_neto=D("24.000"), peso_tara=D("4.800"), num_piezas=12)],
    )  # fmt: skip
    insert_carta(
        conn, db, i + 4,
        mercancias=[merc("43211503", "Computadora portátil", "12", "28.800",
                         numero_guia="GUIA000001", descrip_guia="Caja 1 de 1",
                         peso_guia=D("28.800"))],
        figuras=[OPERADOR,
                 {"tipo_figura": "02", "rfc_figura": "EKU9003173C9",
                  "nombre_figura": "ESCUELA KEMPER URGATE", "calle": "Av. Paseo Tabasco",
                  "numero_exterior": "1203", "estado": "TAB", "pais": "MEX",
                  "codigo_postal": "86000", "partes_transporte": "PT01, PT05"}],
    )  # fmt: skip
    return list(range(first, first + 5))
