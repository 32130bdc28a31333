"""The complements' child tables of a table source (issue 15): Comercio Exterior 2.0
(``cfdi_cce`` and its propietarios, destinatarios and mercancías) and Carta Porte 3.1
(``cfdi_carta_porte`` and its ubicaciones, mercancías, remolques and figuras), each joined to
``cfdi_factura`` by ``factura_id``. A source reads them only when configured
(``[sources.table] complementos = ["comercio_exterior", "carta_porte"]``).

Each child row becomes the records the default DAT layout has for the same data (``CCE``,
``CCE_MERCANCIA``, ``CARTAPORTE``, ``CP_UBICACION``…), their fields keyed by the table's column
names, so the complement sections of the DAT default mapping (``default.mapping.toml``) map them:
``mapping_sections`` gives those sections with each field reference renamed to its column (a
problem found by the mapping or SAT's rules then names the column, as the tables' own do).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from connector.adapters.base import ParsedRecord, problem

from .dialects import ddl_script
from .schema import Column, Table
from .values import _decode_problem, _fields

if TYPE_CHECKING:
    from connector.mappers import Mapping

COMERCIO_EXTERIOR = "comercio_exterior"
CARTA_PORTE = "carta_porte"
COMPLEMENTS = (COMERCIO_EXTERIOR, CARTA_PORTE)


@dataclass(frozen=True)
class Part:
    """One record made from each row: ``type`` (the DAT layout's record type), its columns
    (column → the DAT field name), the type of another part of the same row it hangs under
    (None: under the row's anchor); ``split``: one record per value of its one column
    (``"EXD, ITE"``); a part other than the first is made only when one of its columns has a
    value."""

    type: str
    columns: tuple[tuple[str, str], ...]
    parent: str | None = None
    split: bool = False


@dataclass(frozen=True, eq=False)  # a key by identity: hashed per invoice read
class ChildTable:
    """A complement's table: ``anchor`` is the record type its rows hang under (the
    complement's header record; None: this is the header, one row per invoice, under the
    invoice)."""

    complement: str
    table: Table
    parts: tuple[Part, ...]
    anchor: str | None = None

    @property
    def name(self) -> str:
        return self.table.name


_DOMICILIO = (("calle", "Calle", 100), ("numero_exterior", "NumeroExterior", 55),
              ("numero_interior", "NumeroInterior", 55), ("colonia", "Colonia", 120),
              ("localidad", "Localidad", 120), ("referencia", "Referencia", 250),
              ("municipio", "Municipio", 120), ("estado", "Estado", 30), ("pais", "Pais", 3),
              ("codigo_postal", "CodigoPostal", 12))  # fmt: skip

# (column, DAT field, kind, size or scale, required)
_Spec = tuple[str, str, str, int, bool]


def _t(text: str, attr: str, size: int, required: bool = False) -> _Spec:
    return (text, attr, "text", size, required)


def _m(name: str, attr: str, scale: int, required: bool = False) -> _Spec:
    return (name, attr, "money", scale, required)


def _dom(prefix: str = "") -> list[_Spec]:
    return [_t(prefix + c, a, n) for c, a, n in _DOMICILIO]


def _child(
    complement: str,
    name: str,
    parts: list[tuple[str, list[_Spec], str | None, bool]],
    *,
    anchor: str | None,
) -> ChildTable:
    """A child table from its parts' column specs: ``factura_id`` (and ``linea`` for the
    tables of many rows per invoice) first."""
    cols: list[Column] = [Column("factura_id", "ref", not_null=True)]
    key: tuple[str, ...] = ("factura_id",)
    if anchor is not None:
        cols.append(Column("linea", "int", not_null=True))
        key = ("factura_id", "linea")
    specs = [s for _, group, _, _ in parts for s in group]
    for col, _, kind, n, required in specs:
        if kind == "money":
            cols.append(Column(col, kind, scale=n, required=required))
        else:
            cols.append(Column(col, kind, n, required=required))
    made = tuple(
        Part(type_, tuple((s[0], s[1]) for s in group), parent, split)
        for type_, group, parent, split in parts
    )
    return ChildTable(complement, Table(name, tuple(cols), key), made, anchor)


_I = "int"
CCE = _child(
    COMERCIO_EXTERIOR, "cfdi_cce",
    [("CCE", [_t("exportacion", "Exportacion", 2, True),  # these 3: the CFDI's own
              _t("receptor_residencia_fiscal", "ResidenciaFiscal", 3),
              _t("receptor_num_reg_id_trib", "NumRegIdTrib", 40),
              _t("version", "Version", 3), _t("motivo_traslado", "MotivoTraslado", 2),
              _t("clave_de_pedimento", "ClaveDePedimento", 2),
              _t("certificado_origen", "CertificadoOrigen", 1),
              _t("num_certificado_origen", "NumCertificadoOrigen", 40),
              _t("numero_exportador_confiable", "NumeroExportadorConfiable", 50),
              _t("incoterm", "Incoterm", 3), _t("observaciones", "Observaciones", 300),
              _m("tipo_cambio_usd", "TipoCambioUSD", 6, True),
              _m("total_usd", "TotalUSD", 2, True)],
      None, False),
     ("CCE_EMISOR", [_t("emisor_curp", "Curp", 18), *_dom("emisor_")], "CCE", False),
     ("CCE_RECEPTOR", [_t("cce_receptor_num_reg_id_trib", "NumRegIdTrib", 40),
                       *_dom("receptor_")], "CCE", False)],
    anchor=None,
)  # fmt: skip
CCE_PROPIETARIO = _child(
    COMERCIO_EXTERIOR, "cfdi_cce_propietario",
    [("CCE_PROPIETARIO", [_t("num_reg_id_trib", "NumRegIdTrib", 40, True),
                          _t("residencia_fiscal", "ResidenciaFiscal", 3, True)], None, False)],
    anchor="CCE",
)  # fmt: skip
CCE_DESTINATARIO = _child(
    COMERCIO_EXTERIOR, "cfdi_cce_destinatario",
    [("CCE_DESTINATARIO", [_t("num_reg_id_trib", "NumRegIdTrib", 40),
                           _t("nombre", "Nombre", 300)], None, False),
     ("CCE_DESTINATARIO_DOMICILIO", _dom(), "CCE_DESTINATARIO", False)],
    anchor="CCE",
)  # fmt: skip
CCE_MERCANCIA = _child(
    COMERCIO_EXTERIOR, "cfdi_cce_mercancia",
    [("CCE_MERCANCIA", [_t("no_identificacion", "NoIdentificacion", 100, True),
                        _t("fraccion_arancelaria", "FraccionArancelaria", 10),
                        _m("cantidad_aduana", "CantidadAduana", 3),
                        _t("unidad_aduana", "UnidadAduana", 2),
                        _m("valor_unitario_aduana", "ValorUnitarioAduana", 6),
                        _m("valor_dolares", "ValorDolares", 2, True)], None, False),
     ("CCE_DESCRIPCIONES", [_t("marca", "Marca", 35), _t("modelo", "Modelo", 80),
                            _t("sub_modelo", "SubModelo", 50),
                            _t("numero_serie", "NumeroSerie", 40)], "CCE_MERCANCIA", False)],
    anchor="CCE",
)  # fmt: skip

CARTA = _child(
    CARTA_PORTE, "cfdi_carta_porte",
    [("CARTAPORTE", [_t("version", "Version", 3), _t("id_ccp", "IdCCP", 36),
                     _t("transp_internac", "TranspInternac", 2, True),
                     _t("entrada_salida_merc", "EntradaSalidaMerc", 7),
                     _t("pais_origen_destino", "PaisOrigenDestino", 3),
                     _t("via_entrada_salida", "ViaEntradaSalida", 2),
                     _m("total_dist_rec", "TotalDistRec", 2),
                     _t("registro_istmo", "RegistroISTMO", 2),
                     _t("ubicacion_polo_origen", "UbicacionPoloOrigen", 2),
                     _t("ubicacion_polo_destino", "UbicacionPoloDestino", 2),
                     _m("peso_bruto_total", "PesoBrutoTotal", 3),
                     _t("unidad_peso", "UnidadPeso", 3),
                     _m("peso_neto_total", "PesoNetoTotal", 3),
                     ("num_total_mercancias", "NumTotalMercancias", _I, 0, False),
                     _m("cargo_por_tasacion", "CargoPorTasacion", 2),
                     _t("logistica_inversa", "LogisticaInversaRecoleccionDevolucion", 2)],
      None, False),
     ("CP_REGIMENADUANERO", [_t("regimenes_aduaneros", "RegimenAduanero", 60)], "CARTAPORTE",
      True),
     ("CP_AUTOTRANSPORTE", [_t("perm_sct", "PermSCT", 8),
                            _t("num_permiso_sct", "NumPermisoSCT", 50),
                            _t("config_vehicular", "ConfigVehicular", 10),
                            _m("peso_bruto_vehicular", "PesoBrutoVehicular", 2),
                            _t("placa_vm", "PlacaVM", 10),
                            ("anio_modelo_vm", "AnioModeloVM", _I, 0, False),
                            _t("asegura_resp_civil", "AseguraRespCivil", 50),
                            _t("poliza_resp_civil", "PolizaRespCivil", 30),
                            _t("asegura_med_ambiente", "AseguraMedAmbiente", 50),
                            _t("poliza_med_ambiente", "PolizaMedAmbiente", 30),
                            _t("asegura_carga", "AseguraCarga", 50),
                            _t("poliza_carga", "PolizaCarga", 30),
                            _m("prima_seguro", "PrimaSeguro", 2)], "CARTAPORTE", False)],
    anchor=None,
)  # fmt: skip
CP_UBICACION = _child(
    CARTA_PORTE, "cfdi_cp_ubicacion",
    [("CP_UBICACION", [_t("tipo_ubicacion", "TipoUbicacion", 7, True),
                       _t("id_ubicacion", "IDUbicacion", 8),
                       _t("rfc_remitente_destinatario", "RFCRemitenteDestinatario", 13),
                       _t("nombre_remitente_destinatario", "NombreRemitenteDestinatario", 254),
                       _t("num_reg_id_trib", "NumRegIdTrib", 40),
                       _t("residencia_fiscal", "ResidenciaFiscal", 3),
                       ("fecha_hora_salida_llegada", "FechaHoraSalidaLlegada", "timestamp", 0,
                        True),
                       _m("distancia_recorrida", "DistanciaRecorrida", 2), *_dom()], None, False)],
    anchor="CARTAPORTE",
)  # fmt: skip
CP_MERCANCIA = _child(
    CARTA_PORTE, "cfdi_cp_mercancia",
    [("CP_MERCANCIA", [_t("bienes_transp", "BienesTransp", 8, True),
                       _t("clave_stcc", "ClaveSTCC", 7),
                       _t("descripcion", "Descripcion", 1000, True),
                       _m("cantidad", "Cantidad", 6, True),
                       _t("clave_unidad", "ClaveUnidad", 3, True), _t("unidad", "Unidad", 20),
                       _t("dimensiones", "Dimensiones", 20),
                       _t("material_peligroso", "MaterialPeligroso", 2),
                       _t("cve_material_peligroso", "CveMaterialPeligroso", 4),
                       _t("embalaje", "Embalaje", 4),
                       _t("descrip_embalaje", "DescripEmbalaje", 100),
                       _m("peso_en_kg", "PesoEnKg", 3, True),
                       _m("valor_mercancia", "ValorMercancia", 2), _t("moneda", "Moneda", 3),
                       _t("fraccion_arancelaria", "FraccionArancelaria", 10),
                       _t("uuid_comercio_ext", "UUIDComercioExt", 36),
                       _t("tipo_materia", "TipoMateria", 2),
                       _t("descripcion_materia", "DescripcionMateria", 50)], None, False),
     ("CP_DOCUMENTACIONADUANERA", [_t("tipo_documento", "TipoDocumento", 2),
                                   _t("num_pedimento", "NumPedimento", 21),
                                   _t("ident_doc_aduanero", "IdentDocAduanero", 150),
                                   _t("rfc_impo", "RFCImpo", 13)], "CP_MERCANCIA", False),
     ("CP_GUIA", [_t("numero_guia", "NumeroGuiaIdentificacion", 30),
                  _t("descrip_guia", "DescripGuiaIdentificacion", 1000),
                  _m("peso_guia", "PesoGuiaIdentificacion", 3)], "CP_MERCANCIA", False),
     ("CP_CANTIDADTRANSPORTA", [_m("cantidad_transporta", "Cantidad", 6),
                                _t("id_origen", "IDOrigen", 8), _t("id_destino", "IDDestino", 8),
                                _t("cves_transporte", "CvesTransporte", 2)], "CP_MERCANCIA",
      False),
     ("CP_DETALLEMERCANCIA", [_t("unidad_peso_merc", "UnidadPesoMerc", 3),
                              _m("peso_bruto", "PesoBruto", 3), _m("peso_neto", "PesoNeto", 3),
                              _m("peso_tara", "PesoTara", 3),
                              ("num_piezas", "NumPiezas", _I, 0, False)], "CP_MERCANCIA", False)],
    anchor="CARTAPORTE",
)  # fmt: skip
CP_REMOLQUE = _child(
    CARTA_PORTE, "cfdi_cp_remolque",
    [("CP_REMOLQUE", [_t("sub_tipo_rem", "SubTipoRem", 6, True), _t("placa", "Placa", 10, True)],
      None, False)],
    anchor="CP_AUTOTRANSPORTE",
)  # fmt: skip
CP_FIGURA = _child(
    CARTA_PORTE, "cfdi_cp_figura",
    [("CP_FIGURA", [_t("tipo_figura", "TipoFigura", 2, True), _t("rfc_figura", "RFCFigura", 13),
                    _t("num_licencia", "NumLicencia", 16), _t("nombre_figura", "NombreFigura", 254),
                    _t("num_reg_id_trib_figura", "NumRegIdTribFigura", 40),
                    _t("residencia_fiscal_figura", "ResidenciaFiscalFigura", 3), *_dom()],
      None, False),
     ("CP_PARTETRANSPORTE", [_t("partes_transporte", "ParteTransporte", 60)], "CP_FIGURA", True)],
    anchor="CARTAPORTE",
)  # fmt: skip

CHILD_TABLES = (CCE, CCE_PROPIETARIO, CCE_DESTINATARIO, CCE_MERCANCIA,
                CARTA, CP_UBICACION, CP_MERCANCIA, CP_REMOLQUE, CP_FIGURA)  # fmt: skip
HEADER_OF = {COMERCIO_EXTERIOR: CCE, CARTA_PORTE: CARTA}


def child_tables(complements: Iterable[str]) -> list[ChildTable]:
    """The child tables of these complements, headers first."""
    wanted = set(complements)
    return [c for c in CHILD_TABLES if c.complement in wanted]


def complement_ddl(dialect: str, complements: Iterable[str]) -> str:
    """The CREATE statements of these complements' child tables (``tables-ddl --complemento``)."""
    return ddl_script(dialect, tables=tuple(c.table for c in child_tables(complements)))


def table_name(child: ChildTable, factura_table: str) -> str:
    """A child table's name beside the header table (``dbo.cfdi_factura`` → ``dbo.cfdi_cce``)."""
    schema, dot, _ = factura_table.rpartition(".")
    return f"{schema}{dot}{child.name}"


# --- rows → records -----------------------------------------------------------------------------

_SPLIT = re.compile(r"[\s,;]+")


def _exact(value: Any, col: Column) -> Any:
    """A decimal read with more decimals than its column's scale, all of them zeros (the ERP's
    NUMERIC(18,6) for a weight in kg), to the scale: the same number, as SAT's pattern wants."""
    if not isinstance(value, Decimal) or col.kind != "money" or not value.is_finite():
        return value
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -col.scale:
        short = value.quantize(Decimal(1).scaleb(-col.scale))
        return short if short == value else value
    return value


def attach(
    root: ParsedRecord,
    row_id: int,
    rows: dict[ChildTable, list[Any]],
    names: dict[ChildTable, str],
    *,
    required: bool,
    encoding: str | None,
) -> None:
    """Hang the records of an invoice's child rows under its ``root``; each bad value, a child
    row without its complement's header row or a second header row is a coded problem."""
    anchors: dict[str, ParsedRecord] = {}
    for child, found in rows.items():
        name = names[child]
        where = f"{name}(factura_id={row_id})"
        if child.anchor is None and len(found) > 1:
            root.problems.append(problem(
                "CONN-BD-COMPLEMENTO",
                f"La factura tiene {len(found)} filas en {name}; debe tener una sola.", where,
            ))  # fmt: skip
            found = found[:1]
        parent = root
        if child.anchor is not None and found:
            header = names.get(HEADER_OF[child.complement], HEADER_OF[child.complement].name)
            anchor = anchors.get(child.anchor) or anchors.get(
                HEADER_OF[child.complement].parts[0].type
            )
            if anchor is None:
                root.problems.append(problem(
                    "CONN-BD-COMPLEMENTO",
                    f"Hay filas en {name} para la factura {row_id}, pero no su fila en {header} "
                    f"(factura_id = {row_id}): el ERP debe escribir la fila de {header} del "
                    "complemento junto con sus filas.", where,
                ))  # fmt: skip
                continue
            parent = anchor
        for n, row in enumerate(found, 1):
            if isinstance(row, UnicodeError):
                root.problems.append(_decode_problem(row, where, encoding))
                continue
            line = int(row.get("linea") or n) if child.anchor is not None else row_id
            loc = where if child.anchor is not None else name
            known = set(child.table.names)
            row = {k: _exact(v, child.table.column(k)) if k in known else v
                   for k, v in row.items()}  # fmt: skip
            values = _fields(row, child.table, f"{loc}:{line}", root.problems, required)
            _records(child, values, line, loc, parent, anchors)


def _records(
    child: ChildTable,
    values: dict[str, str],
    line: int,
    loc: str,
    parent: ParsedRecord,
    anchors: dict[str, ParsedRecord],
) -> None:
    made: dict[str, ParsedRecord] = {}
    for i, part in enumerate(child.parts):
        fields = {c: values[c] for c, _ in part.columns if c in values}
        if i and not fields:
            continue
        under = made.get(part.parent, parent) if part.parent else parent
        if part.split:
            ((col, _),) = part.columns
            for value in _SPLIT.split(fields.get(col, "")):
                if value:
                    under.add(ParsedRecord(part.type, {col: value}, line, loc))
            continue
        rec = under.add(ParsedRecord(part.type, fields, line, loc))
        made[part.type] = rec
        if child.anchor is None:
            anchors[part.type] = rec


# --- the DAT default mapping's complement sections, with the tables' column names --------------

_SECTIONS = ("ComercioExterior", "CartaPorte")


def table_mapping(path: Path) -> Mapping:
    """The tables' mapping file ``path`` with the complement sections of the DAT default
    mapping beside it (``default.mapping.toml``), read again when either file changes."""
    dat = path.with_name("default.mapping.toml")
    return _table_mapping(path, path.stat().st_mtime_ns, dat.stat().st_mtime_ns)


@cache
def _table_mapping(path: Path, mtime_ns: int, dat_mtime_ns: int) -> Mapping:
    import tomllib

    from connector.mappers import Mapping

    data = tomllib.loads(path.read_text(encoding="utf-8"))
    dat = tomllib.loads(path.with_name("default.mapping.toml").read_text(encoding="utf-8"))
    data["Comprobante"].update(mapping_sections(dat["Comprobante"]))
    return Mapping.from_data(data, source=path.name, base_dir=path.parent)


def mapping_sections(dat_comprobante: dict[str, Any]) -> dict[str, Any]:
    """The ``ComercioExterior`` and ``CartaPorte`` tables of the DAT default mapping, each
    reference ``TYPE.Field`` (or a bare ``Field`` of the record in scope) renamed to the column
    the tables keep that field in."""
    columns: dict[str, dict[str, str]] = {}
    for child in CHILD_TABLES:
        for part in child.parts:
            columns.setdefault(part.type, {}).update({a: c for c, a in part.columns})
    return {k: _rename(dat_comprobante[k], None, columns) for k in _SECTIONS}


def _ref(ref: str, scope: str | None, columns: dict[str, dict[str, str]]) -> str:
    type_, dot, name = ref.rpartition(".")
    if dot:
        return f"{type_}.{columns.get(type_, {}).get(name, name)}"
    return columns.get(scope or "", {}).get(ref, ref)


def _rename(node: Any, scope: str | None, columns: dict[str, dict[str, str]]) -> Any:
    if isinstance(node, list):
        return [_rename(n, scope, columns) for n in node]
    if not isinstance(node, dict):
        return node
    here = node.get("each") or node.get("record") or scope
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("each", "record"):
            out[key] = value
        elif isinstance(value, str):
            out[key] = _ref(value, here, columns)
        elif isinstance(value, dict) and ("field" in value or "value" in value):
            item = dict(value)
            if isinstance(item.get("field"), str):
                item["field"] = _ref(item["field"], item.get("each") or here, columns)
            out[key] = item
        else:
            out[key] = _rename(value, here, columns)
    return out
