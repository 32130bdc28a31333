"""Rules of the Complemento Carta Porte 3.1 (autotransporte federal) checked before anything
reaches the PAC.

They run inside ``rules.validate`` (one more rule of the list) and alone through
``validate_cp31(c)``, which the sandbox PAC applies to every document carrying the complement.

Codes: SAT's matrix of errors for Carta Porte (``CP1xx``) is not among the SAT files this project
ships and no public validator implementing it was found, so the rules carry our codes,
``CONN-CP-nnn``, each with the rule as SAT's Guía de llenado of Carta Porte 3.1 states it (see
docs/carta_porte.md). Codes come from ``catCartaPorte.xsd`` (``cp31.cp_catalogs``). Only
autotransporte federal is issued: maritime, air and rail transport are refused (``CONN-CP-002``).
"""

from __future__ import annotations

import re
from collections import Counter
from decimal import Decimal

from .cp31 import NS_CP31, CartaPorte, MercanciasCP, TiposFigura, cp_catalogs, total_distancia
from .errors import Problem
from .model import RFC_EXTRANJERO, Comprobante
from .rules import MESSAGES, _Ctx, _fmt, num, rule, validate_one
from .rules_cce20 import check_domicilio

P = "CartaPorte"
AUTOTRANSPORTE = "01"  # c_CveTransporte
IDCCP = re.compile(
    r"CCC[0-9a-fA-F]{5}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
# c_ConfigAutotransporte: a tractor with semirremolque (T2S1…) or a truck with remolque (C2R2…)
# pulls one; a plain truck (C2, C3) or a light vehicle (VL) does not
WITH_TRAILER = re.compile(r"[CT][0-9][SR]")
WITHOUT_TRAILER = frozenset({"C2", "C3", "VL"})
# c_TipoPermiso of autotransporte federal (TPAF01-TPAF20) and "permiso no contemplado" (TPXX00)
AUTO_PERMISO = re.compile(r"TPAF[0-9]{2}|TPXX00")
OPERADOR = "01"  # c_FiguraTransporte
FIGURAS_CON_PARTES = frozenset({"02", "03", "04"})  # propietario, arrendador, notificado
PEDIMENTO = "01"  # c_DocumentoAduanero

MESSAGES_CP: dict[str, str] = {
    "CONN-CP-001": 'El complemento Carta Porte sólo se admite en comprobantes de tipo "I" '
    '(ingreso) o "T" (traslado).',
    "CONN-CP-002": "Este conector sólo emite Carta Porte de autotransporte federal: el transporte "
    "marítimo, aéreo, ferroviario o por ducto todavía no se admite.",
    "CONN-CP-003": "El nodo Autotransporte, con IdentificacionVehicular y Seguros, debe "
    "registrarse en Mercancias.",
    "CONN-CP-004": 'El campo IdCCP debe tener 36 caracteres con el formato del SAT: "CCC" '
    "seguido de los últimos 33 caracteres de un UUID (CCCxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx).",
    "CONN-CP-005": 'Las ubicaciones deben incluir al menos un "Origen" y un "Destino".',
    "CONN-CP-006": 'El IDUbicacion debe empezar con "OR" en un origen y con "DE" en un destino, '
    "y no repetirse.",
    "CONN-CP-007": "El campo DistanciaRecorrida debe registrarse en cada destino y no en un "
    "origen.",
    "CONN-CP-008": "El campo TotalDistRec debe ser igual a la suma de las DistanciaRecorrida de "
    "las ubicaciones.",
    "CONN-CP-009": "La FechaHoraSalidaLlegada de un destino debe ser posterior a la del origen.",
    "CONN-CP-010": 'Cuando TranspInternac es "Sí" deben registrarse EntradaSalidaMerc, '
    'PaisOrigenDestino y ViaEntradaSalida; cuando es "No", ninguno de ellos ni '
    "RegimenesAduaneros.",
    "CONN-CP-011": "Un remitente o destinatario residente en el extranjero (RFC XEXX010101000) "
    "debe registrar NumRegIdTrib y ResidenciaFiscal distinta de MEX.",
    "CONN-CP-012": "El campo Estado del domicilio debe ser una clave del catálogo c_Estado del "
    "país registrado en Pais.",
    "CONN-CP-013": "El campo CodigoPostal del domicilio en México debe ser una clave del catálogo "
    "c_CodigoPostal.",
    "CONN-CP-014": "El campo PesoBrutoTotal debe ser igual a la suma de los PesoEnKg de las "
    'mercancías cuando UnidadPeso es "KGM".',
    "CONN-CP-015": "El campo NumTotalMercancias debe ser igual al número de mercancías "
    "registradas.",
    "CONN-CP-016": 'Una mercancía con MaterialPeligroso "Sí" debe registrar CveMaterialPeligroso '
    "y Embalaje; sin material peligroso no se registra CveMaterialPeligroso.",
    "CONN-CP-017": "Cuando se transporta material peligroso, los Seguros deben registrar "
    "AseguraMedAmbiente y PolizaMedAmbiente.",
    "CONN-CP-018": "La configuración vehicular no corresponde a los remolques registrados: un "
    "tractocamión o camión con remolque (T2S1, C2R2…) registra Remolques; C2, C3 y VL no.",
    "CONN-CP-019": 'La FiguraTransporte debe incluir al menos un operador (TipoFigura "01") con '
    "RFCFigura y NumLicencia.",
    "CONN-CP-020": 'Una figura de tipo propietario, arrendador o notificado ("02", "03", "04") '
    'debe registrar PartesTransporte; un operador ("01") no.',
    "CONN-CP-021": "Una figura sin RFCFigura (residente en el extranjero) debe registrar "
    "NumRegIdTribFigura, ResidenciaFiscalFigura y Domicilio.",
    "CONN-CP-022": "Los IDOrigen e IDDestino de CantidadTransporta deben ser IDUbicacion de un "
    "origen y de un destino registrados.",
    "CONN-CP-023": "El valor no está en el catálogo del SAT para Carta Porte (catCartaPorte).",
    "CONN-CP-024": "El campo PermSCT debe ser un permiso de autotransporte federal (TPAF01 a "
    "TPAF20, o TPXX00).",
    "CONN-CP-025": 'Cuando la mercancía entra al país (EntradaSalidaMerc "Entrada"), cada '
    "mercancía debe registrar su DocumentacionAduanera.",
    "CONN-CP-026": 'Un documento aduanero de tipo pedimento ("01") registra NumPedimento; los '
    "demás tipos registran IdentDocAduanero.",
    "CONN-CP-027": 'Cuando RegistroISTMO es "Sí" deben registrarse UbicacionPoloOrigen y '
    "UbicacionPoloDestino; si no, ninguno de los dos.",
    "CONN-CP-028": "En DetalleMercancia, PesoBruto debe ser igual a PesoNeto más PesoTara.",
}
MESSAGES.update(MESSAGES_CP)


@rule
def _carta_porte(x: _Ctx) -> None:
    for i, raw in enumerate(x.c.OtrosComplementos or ()):
        if isinstance(raw, bytes) and NS_CP31.encode() in raw:  # read verbatim: not autotransporte
            x.add("CONN-CP-002", f"OtrosComplementos[{i}]", "Se recibió otro medio de transporte.")
    cp = x.c.CartaPorte
    if cp is None:
        return
    if x.c.TipoDeComprobante not in ("I", "T"):
        x.add("CONN-CP-001", "TipoDeComprobante", f"Valor: {_fmt(x.c.TipoDeComprobante)}.")
    if cp.IdCCP is None or not IDCCP.fullmatch(cp.IdCCP):
        x.add("CONN-CP-004", f"{P}.IdCCP", f"Valor: {_fmt(cp.IdCCP)}.")
    _internacional(x, cp)
    _ubicaciones(x, cp)
    if cp.Mercancias is not None:
        _mercancias(x, cp, cp.Mercancias)
    _figuras(x, cp.FiguraTransporte)


def _catalog(x: _Ctx, path: str, value: str | None, catalog: str) -> None:
    if value is not None and value not in cp_catalogs()[catalog]:
        x.add("CONN-CP-023", path, f"Valor: {_fmt(value)}; catálogo {catalog}.")


def _internacional(x: _Ctx, cp: CartaPorte) -> None:
    fields = {
        "EntradaSalidaMerc": cp.EntradaSalidaMerc,
        "PaisOrigenDestino": cp.PaisOrigenDestino,
        "ViaEntradaSalida": cp.ViaEntradaSalida,
    }
    if cp.TranspInternac == "Sí":
        missing = [n for n, v in fields.items() if v is None]
        if missing:
            x.add("CONN-CP-010", f"{P}.{missing[0]}", f"Falta: {', '.join(missing)}.")
    else:
        given = [n for n, v in fields.items() if v is not None]
        if cp.RegimenesAduaneros:
            given.append("RegimenesAduaneros")
        if given:
            x.add("CONN-CP-010", f"{P}.{given[0]}", f"TranspInternac: {_fmt(cp.TranspInternac)}.")
    if cp.ViaEntradaSalida is not None and cp.ViaEntradaSalida != AUTOTRANSPORTE:
        x.add("CONN-CP-002", f"{P}.ViaEntradaSalida", f"Valor: {_fmt(cp.ViaEntradaSalida)}.")
    for i, reg in enumerate(cp.RegimenesAduaneros):
        _catalog(x, f"{P}.RegimenesAduaneros[{i}]", reg, "c_RegimenAduanero")
    polos = (cp.UbicacionPoloOrigen, cp.UbicacionPoloDestino)
    if (cp.RegistroISTMO == "Sí") != all(v is not None for v in polos) or (
        cp.RegistroISTMO != "Sí" and any(v is not None for v in polos)
    ):
        x.add("CONN-CP-027", f"{P}.RegistroISTMO", f"Valor: {_fmt(cp.RegistroISTMO)}.")


def _ubicaciones(x: _Ctx, cp: CartaPorte) -> None:
    tipos = Counter(u.TipoUbicacion for u in cp.Ubicaciones)
    if not tipos["Origen"] or not tipos["Destino"]:
        x.add("CONN-CP-005", f"{P}.Ubicaciones", f"Orígenes: {tipos['Origen']}; destinos: "
              f"{tipos['Destino']}.")  # fmt: skip
    salidas = [u.FechaHoraSalidaLlegada for u in cp.Ubicaciones if u.TipoUbicacion == "Origen"]
    salida = min((f for f in salidas if f), default=None)
    seen: set[str] = set()
    for i, u in enumerate(cp.Ubicaciones):
        up = f"{P}.Ubicaciones[{i}]"
        prefix = {"Origen": "OR", "Destino": "DE"}.get(u.TipoUbicacion or "")
        if u.IDUbicacion is not None and (
            u.IDUbicacion in seen or (prefix and not u.IDUbicacion.startswith(prefix))
        ):
            x.add("CONN-CP-006", f"{up}.IDUbicacion", f"Valor: {_fmt(u.IDUbicacion)}; "
                  f"TipoUbicacion: {_fmt(u.TipoUbicacion)}.")  # fmt: skip
        if u.IDUbicacion is not None:
            seen.add(u.IDUbicacion)
        destino = u.TipoUbicacion == "Destino"
        if destino == (u.DistanciaRecorrida is None):
            x.add("CONN-CP-007", f"{up}.DistanciaRecorrida",
                  f"TipoUbicacion: {_fmt(u.TipoUbicacion)}.")  # fmt: skip
        llegada = u.FechaHoraSalidaLlegada
        if destino and salida and llegada and llegada <= salida:
            x.add("CONN-CP-009", f"{up}.FechaHoraSalidaLlegada",
                  f"Llegada: {_fmt(llegada)}; salida: {_fmt(salida)}.")  # fmt: skip
        rfc = u.RFCRemitenteDestinatario
        if rfc == RFC_EXTRANJERO and (
            u.NumRegIdTrib is None or u.ResidenciaFiscal in (None, "MEX")
        ):
            x.add("CONN-CP-011", f"{up}.NumRegIdTrib" if u.NumRegIdTrib is None
                  else f"{up}.ResidenciaFiscal", f"RFC: {_fmt(rfc)}.")  # fmt: skip
        if u.Domicilio is not None:
            check_domicilio(x, f"{up}.Domicilio", u.Domicilio, ("CONN-CP-012", "CONN-CP-013"))
    total, want = num(cp.TotalDistRec), total_distancia(cp)
    if total is not None and want is not None and total != want:
        x.add("CONN-CP-008", f"{P}.TotalDistRec", f"Valor: {total}; suma: {want}.")


def _mercancias(x: _Ctx, cp: CartaPorte, ms: MercanciasCP) -> None:
    mp = f"{P}.Mercancias"
    _catalog(x, f"{mp}.UnidadPeso", ms.UnidadPeso, "c_ClaveUnidadPeso")
    pesos = [kg for m in ms.Mercancia if (kg := num(m.PesoEnKg)) is not None]
    total = num(ms.PesoBrutoTotal)
    if ms.UnidadPeso == "KGM" and total is not None and len(pesos) == len(ms.Mercancia):
        suma = sum(pesos, Decimal(0))
        if total != suma:
            x.add("CONN-CP-014", f"{mp}.PesoBrutoTotal", f"Valor: {total}; suma: {suma}.")
    if ms.NumTotalMercancias is not None and ms.NumTotalMercancias != str(len(ms.Mercancia)):
        x.add("CONN-CP-015", f"{mp}.NumTotalMercancias", f"Valor: "
              f"{_fmt(ms.NumTotalMercancias)}; mercancías: {len(ms.Mercancia)}.")  # fmt: skip
    ids: dict[str | None, set[str | None]] = {u.TipoUbicacion: set() for u in cp.Ubicaciones}
    for u in cp.Ubicaciones:
        ids[u.TipoUbicacion].add(u.IDUbicacion)
    peligroso = False
    for i, m in enumerate(ms.Mercancia):
        p = f"{mp}.Mercancia[{i}]"
        if m.MaterialPeligroso == "Sí":
            peligroso = True
            if m.CveMaterialPeligroso is None or m.Embalaje is None:
                x.add("CONN-CP-016", f"{p}.CveMaterialPeligroso" if m.CveMaterialPeligroso is None
                      else f"{p}.Embalaje")  # fmt: skip
        elif m.CveMaterialPeligroso is not None:
            x.add("CONN-CP-016", f"{p}.CveMaterialPeligroso",
                  f"MaterialPeligroso: {_fmt(m.MaterialPeligroso)}.")  # fmt: skip
        _catalog(x, f"{p}.Embalaje", m.Embalaje, "c_TipoEmbalaje")
        if cp.EntradaSalidaMerc == "Entrada" and not m.DocumentacionAduanera:
            x.add("CONN-CP-025", f"{p}.DocumentacionAduanera")
        for j, doc in enumerate(m.DocumentacionAduanera):
            dp = f"{p}.DocumentacionAduanera[{j}]"
            _catalog(x, f"{dp}.TipoDocumento", doc.TipoDocumento, "c_DocumentoAduanero")
            pedimento = doc.TipoDocumento == PEDIMENTO
            if pedimento and doc.NumPedimento is None:
                x.add("CONN-CP-026", f"{dp}.NumPedimento")
            elif not pedimento and doc.IdentDocAduanero is None:
                x.add("CONN-CP-026", f"{dp}.IdentDocAduanero")
        for j, ct in enumerate(m.CantidadTransporta):
            if ct.IDOrigen not in ids.get("Origen", ()) or ct.IDDestino not in ids.get(
                "Destino", ()
            ):
                x.add("CONN-CP-022", f"{p}.CantidadTransporta[{j}]", f"IDOrigen: "
                      f"{_fmt(ct.IDOrigen)}; IDDestino: {_fmt(ct.IDDestino)}.")  # fmt: skip
            if ct.CvesTransporte is not None and ct.CvesTransporte != AUTOTRANSPORTE:
                x.add("CONN-CP-002", f"{p}.CantidadTransporta[{j}].CvesTransporte",
                      f"Valor: {_fmt(ct.CvesTransporte)}.")  # fmt: skip
        _detalle(x, p, m.DetalleMercancia)
    _autotransporte(x, ms, peligroso)


def _detalle(x: _Ctx, p: str, det: object) -> None:
    if det is None:
        return
    bruto, neto, tara = (num(getattr(det, n)) for n in ("PesoBruto", "PesoNeto", "PesoTara"))
    if bruto is not None and neto is not None and tara is not None and bruto != neto + tara:
        x.add("CONN-CP-028", f"{p}.DetalleMercancia.PesoBruto",
              f"PesoBruto: {bruto}; PesoNeto + PesoTara: {neto + tara}.")  # fmt: skip
    _catalog(x, f"{p}.DetalleMercancia.UnidadPesoMerc", getattr(det, "UnidadPesoMerc", None),
             "c_ClaveUnidadPeso")  # fmt: skip


def _autotransporte(x: _Ctx, ms: MercanciasCP, peligroso: bool) -> None:
    ap = f"{P}.Mercancias.Autotransporte"
    a = ms.Autotransporte
    if a is None or a.IdentificacionVehicular is None or a.Seguros is None:
        x.add("CONN-CP-003", ap if a is None else
              f"{ap}.{'IdentificacionVehicular' if a.IdentificacionVehicular is None else 'Seguros'}")  # fmt: skip
        if a is None:
            return
    if a.PermSCT is not None and not AUTO_PERMISO.fullmatch(a.PermSCT):
        if a.PermSCT in cp_catalogs()["c_TipoPermiso"]:
            x.add("CONN-CP-024", f"{ap}.PermSCT", f"Valor: {_fmt(a.PermSCT)}.")
        else:
            _catalog(x, f"{ap}.PermSCT", a.PermSCT, "c_TipoPermiso")
    s = a.Seguros
    if (
        peligroso
        and s is not None
        and (s.AseguraMedAmbiente is None or s.PolizaMedAmbiente is None)
    ):
        x.add("CONN-CP-017", f"{ap}.Seguros.AseguraMedAmbiente" if s.AseguraMedAmbiente is None
              else f"{ap}.Seguros.PolizaMedAmbiente")  # fmt: skip
    iv = a.IdentificacionVehicular
    config = iv.ConfigVehicular if iv is not None else None
    if config is not None:
        _catalog(x, f"{ap}.IdentificacionVehicular.ConfigVehicular", config,
                 "c_ConfigAutotransporte")  # fmt: skip
        if (WITH_TRAILER.match(config) and not a.Remolques) or (
            config in WITHOUT_TRAILER and a.Remolques
        ):
            x.add("CONN-CP-018", f"{ap}.IdentificacionVehicular.ConfigVehicular",
                  f"Valor: {_fmt(config)}; remolques: {len(a.Remolques)}.")  # fmt: skip
    for i, r in enumerate(a.Remolques):
        _catalog(x, f"{ap}.Remolques[{i}].SubTipoRem", r.SubTipoRem, "c_SubTipoRem")


def _figuras(x: _Ctx, figuras: list[TiposFigura]) -> None:
    fp = f"{P}.FiguraTransporte"
    operadores = [f for f in figuras if f.TipoFigura == OPERADOR]
    if not any(f.RFCFigura or f.NumRegIdTribFigura for f in operadores) or not all(
        f.NumLicencia for f in operadores
    ):
        x.add("CONN-CP-019", fp, f"Operadores: {len(operadores)}.")
    for i, f in enumerate(figuras):
        p = f"{fp}[{i}]"
        _catalog(x, f"{p}.TipoFigura", f.TipoFigura, "c_FiguraTransporte")
        partes = f.TipoFigura in FIGURAS_CON_PARTES
        if partes != bool(f.PartesTransporte) and f.TipoFigura in FIGURAS_CON_PARTES | {OPERADOR}:
            x.add("CONN-CP-020", f"{p}.PartesTransporte", f"TipoFigura: {_fmt(f.TipoFigura)}.")
        for j, parte in enumerate(f.PartesTransporte):
            _catalog(x, f"{p}.PartesTransporte[{j}]", parte, "c_ParteTransporte")
        if f.RFCFigura is None and (
            f.NumRegIdTribFigura is None or f.ResidenciaFiscalFigura is None or f.Domicilio is None
        ):
            x.add("CONN-CP-021", f"{p}.RFCFigura")
        if f.Domicilio is not None:
            check_domicilio(x, f"{p}.Domicilio", f.Domicilio, ("CONN-CP-012", "CONN-CP-013"))


def validate_cp31(c: Comprobante) -> list[Problem]:
    """The Carta Porte 3.1 rules alone, on a document as given (e.g. a sealed XML)."""
    return validate_one(c, _carta_porte, "CartaPorte", "carta porte")


__all__ = ["MESSAGES_CP", "validate_cp31"]
