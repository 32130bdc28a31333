"""Rules of the Complemento para Comercio Exterior 2.0 checked before anything reaches the PAC.

They run inside ``rules.validate`` (one more rule of the list) and alone through
``validate_cce20(c)``, which the sandbox PAC applies to every document carrying the complement.

Codes: SAT's CFDI 4.0 matrix already has the codes of the CFDI-level ties to the complement
(CFDI40122, CFDI40222, CFDI40153/CFDI40155, CFDI40195: ``rules``). SAT's own matrix of errors
for Comercio Exterior 2.0 was not available when this module was written (it is not among the
SAT files this project ships, and no public validator implementing it was found), so the
complement's rules carry our codes, ``CONN-CCE-nnn``, each with the rule as SAT's Guía de
llenado of the complement states it. See docs/comercio_exterior.md for the list.

Amounts are ``Decimal``; the tolerance of ``ValorDolares = CantidadAduana × ValorUnitarioAduana``
is one unit of the last decimal ValorDolares is written with, plus what rounding the product to
those decimals can take (½ unit): SAT's guide rounds the product to the decimals written.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal

from .cce20 import ComercioExterior, ComExtCatalogs, Domicilio, comext_catalogs
from .errors import Problem
from .model import Comprobante
from .rules import MESSAGES, _Ctx, _fmt, decimals_of, num, rule, validate_one

# c_Estado's rows by its c_Pais column (the XSD has the codes only, not that column)
ESTADOS = {
    "MEX": frozenset(
        [
            "AGU",
            "BCN",
            "BCS",
            "CAM",
            "CHP",
            "CHH",
            "COA",
            "COL",
            "DIF",
            "CMX",
            "DUR",
            "GUA",
            "GRO",
            "HID",
            "JAL",
            "MEX",
            "MIC",
            "MOR",
            "NAY",
            "NLE",
            "OAX",
            "PUE",
            "QUE",
            "ROO",
            "SLP",
            "SIN",
            "SON",
            "TAB",
            "TAM",
            "TLA",
            "VER",
            "YUC",
            "ZAC",
        ]
    ),
    "USA": frozenset(
        [
            "AL",
            "AK",
            "AZ",
            "AR",
            "CA",
            "NC",
            "SC",
            "CO",
            "CT",
            "ND",
            "SD",
            "DE",
            "FL",
            "GA",
            "HI",
            "ID",
            "IL",
            "IN",
            "IA",
            "KS",
            "KY",
            "LA",
            "ME",
            "MD",
            "MA",
            "MI",
            "MN",
            "MS",
            "MO",
            "MT",
            "NE",
            "NV",
            "NJ",
            "NY",
            "NH",
            "NM",
            "OH",
            "OK",
            "OR",
            "PA",
            "RI",
            "TN",
            "TX",
            "UT",
            "VT",
            "VA",
            "WV",
            "WA",
            "WI",
            "WY",
        ]
    ),
    "CAN": frozenset(
        ["ON", "QC", "NS", "NB", "MB", "BC", "PE", "SK", "AB", "NL", "NT", "YT", "UN"]
    ),
}
UNIDAD_SERVICIO = "99"  # c_UnidadAduana "Servicio"
MOTIVO_PROPIETARIO = "05"  # c_MotivoTraslado "Envío de mercancías propiedad de terceros"

MESSAGES_CCE: dict[str, str] = {
    "CONN-CCE-001": "El complemento de Comercio Exterior sólo se admite en comprobantes de "
    'tipo "I" (ingreso) o "T" (traslado).',
    "CONN-CCE-002": 'El campo Exportacion debe tener el valor "02" (definitiva con clave A1) '
    "cuando el comprobante incluye el complemento de Comercio Exterior.",
    "CONN-CCE-003": 'El campo Moneda no puede ser "XXX" cuando el comprobante incluye el '
    "complemento de Comercio Exterior.",
    "CONN-CCE-004": 'Cuando la Moneda del comprobante es "USD", TipoCambioUSD debe ser igual al '
    "TipoCambio del comprobante.",
    "CONN-CCE-005": "El campo TotalUSD debe ser igual a la suma de los ValorDolares de las "
    "mercancías, redondeada a 2 decimales.",
    "CONN-CCE-006": "El campo ValorDolares debe ser igual al producto de CantidadAduana por "
    "ValorUnitarioAduana, redondeado a los decimales registrados.",
    "CONN-CCE-007": "Los campos CantidadAduana, UnidadAduana y ValorUnitarioAduana se registran "
    "los tres juntos o ninguno.",
    "CONN-CCE-008": "El NoIdentificacion de cada mercancía debe ser el de al menos un concepto "
    "del comprobante.",
    "CONN-CCE-009": "Cada concepto debe tener NoIdentificacion y al menos una mercancía del "
    "complemento con ese NoIdentificacion.",
    "CONN-CCE-010": "No se puede repetir una mercancía con el mismo NoIdentificacion y la misma "
    "FraccionArancelaria.",
    "CONN-CCE-011": "El campo FraccionArancelaria no contiene un valor del catálogo "
    "c_FraccionArancelaria.",
    "CONN-CCE-012": "El campo UnidadAduana no contiene un valor del catálogo c_UnidadAduana.",
    "CONN-CCE-013": 'El campo MotivoTraslado debe registrarse cuando el comprobante es de tipo "T".',
    "CONN-CCE-014": "El campo MotivoTraslado no debe registrarse cuando el comprobante es de tipo "
    '"I".',
    "CONN-CCE-015": 'El nodo Propietario debe registrarse cuando MotivoTraslado es "05" y no debe '
    "registrarse con otro motivo.",
    "CONN-CCE-016": 'El campo NumCertificadoOrigen sólo se registra cuando CertificadoOrigen es "1".',
    "CONN-CCE-017": "El nodo Emisor del complemento, con su Domicilio, debe registrarse.",
    "CONN-CCE-018": 'El Pais del domicilio del emisor debe ser "MEX".',
    "CONN-CCE-019": "El campo Estado del domicilio debe ser una clave del catálogo c_Estado del "
    "país registrado en Pais.",
    "CONN-CCE-020": "El campo CodigoPostal del domicilio en México debe ser una clave del "
    "catálogo c_CodigoPostal.",
    "CONN-CCE-021": "El campo Curp sólo se registra cuando el emisor es persona física (RFC de 13 "
    "caracteres).",
    "CONN-CCE-022": "El receptor del comprobante es residente en el extranjero: el complemento debe "
    "registrar el domicilio del receptor.",
    "CONN-CCE-023": "El campo ClaveDePedimento no contiene un valor del catálogo c_ClavePedimento.",
    "CONN-CCE-024": "El campo Incoterm no contiene un valor del catálogo c_INCOTERM.",
    "CONN-CCE-025": "El campo MotivoTraslado no contiene un valor del catálogo c_MotivoTraslado.",
    "CONN-CCE-026": "El complemento de Comercio Exterior debe tener al menos una mercancía.",
    "CONN-CCE-027": "La suma de los ValorDolares de las mercancías de un NoIdentificacion debe "
    "corresponder a los importes de sus conceptos convertidos a dólares (Importe × TipoCambio ÷ "
    "TipoCambioUSD).",
}
MESSAGES.update(MESSAGES_CCE)


@rule
def _comercio_exterior(x: _Ctx) -> None:
    cce = x.c.ComercioExterior
    if cce is None:
        return
    _check(x, cce, comext_catalogs())


def _check(x: _Ctx, cce: ComercioExterior, cats: ComExtCatalogs) -> None:
    c = x.c
    p = "ComercioExterior"
    if c.TipoDeComprobante not in ("I", "T"):
        x.add("CONN-CCE-001", "TipoDeComprobante", f"Valor: {_fmt(c.TipoDeComprobante)}.")
    if c.Exportacion not in ("01", "02", "03"):  # 01/03 are CFDI40222 (rules)
        x.add("CONN-CCE-002", "Exportacion", f"Valor: {_fmt(c.Exportacion)}.")
    if c.Moneda == "XXX":
        x.add("CONN-CCE-003", "Moneda")
    tc_usd = num(cce.TipoCambioUSD)
    usd = c.Moneda == "USD" and tc_usd is not None and num(c.TipoCambio) is not None
    if usd and c.TipoCambio != tc_usd:
        x.add(
            "CONN-CCE-004",
            f"{p}.TipoCambioUSD",
            f"TipoCambioUSD: {tc_usd}; TipoCambio: {c.TipoCambio}.",
        )
    # catalogs of the root
    if cce.ClaveDePedimento not in cats.ClavePedimento:
        x.add("CONN-CCE-023", f"{p}.ClaveDePedimento", f"Valor: {_fmt(cce.ClaveDePedimento)}; "
              f"permitidos: {', '.join(sorted(cats.ClavePedimento))}.")  # fmt: skip
    if cce.Incoterm is not None and cce.Incoterm not in cats.INCOTERM:
        x.add("CONN-CCE-024", f"{p}.Incoterm", f"Valor: {_fmt(cce.Incoterm)}.")
    _motivo(x, cce, cats)
    if cce.NumCertificadoOrigen is not None and cce.CertificadoOrigen != "1":
        x.add(
            "CONN-CCE-016",
            f"{p}.NumCertificadoOrigen",
            f"CertificadoOrigen: {_fmt(cce.CertificadoOrigen)}.",
        )
    _domicilios(x, cce)
    _mercancias(x, cce, cats)


def _motivo(x: _Ctx, cce: ComercioExterior, cats: ComExtCatalogs) -> None:
    p = "ComercioExterior.MotivoTraslado"
    tipo = x.c.TipoDeComprobante
    if cce.MotivoTraslado is None:
        if tipo == "T":
            x.add("CONN-CCE-013", p)
    elif tipo == "I":
        x.add("CONN-CCE-014", p, f"Valor: {_fmt(cce.MotivoTraslado)}.")
    elif cce.MotivoTraslado not in cats.MotivoTraslado:
        x.add("CONN-CCE-025", p, f"Valor: {_fmt(cce.MotivoTraslado)}; permitidos: "
              f"{', '.join(sorted(cats.MotivoTraslado))}.")  # fmt: skip
    wants = tipo == "T" and cce.MotivoTraslado == MOTIVO_PROPIETARIO
    if wants and not cce.Propietario:
        x.add("CONN-CCE-015", "ComercioExterior.Propietario", "No se registró ninguno.")
    elif cce.Propietario and not wants:
        x.add(
            "CONN-CCE-015",
            "ComercioExterior.Propietario[0]",
            f"Tipo de comprobante: {_fmt(tipo)}; MotivoTraslado: {_fmt(cce.MotivoTraslado)}.",
        )


def check_domicilio(
    x: _Ctx, path: str, d: Domicilio, codes: tuple[str, str] = ("CONN-CCE-019", "CONN-CCE-020")
) -> None:
    """Estado in c_Estado of its Pais and, in Mexico, CodigoPostal in c_CodigoPostal; ``codes``
    are the complement's codes of both (Carta Porte's domicilio has the same attributes)."""
    estados = ESTADOS.get(d.Pais) if d.Pais is not None else None
    if estados is not None and d.Estado not in estados:
        x.add(codes[0], f"{path}.Estado", f"Valor: {_fmt(d.Estado)}; Pais: {_fmt(d.Pais)}.")
    if d.Pais == "MEX" and d.CodigoPostal not in x.cats.CodigoPostal:
        x.add(codes[1], f"{path}.CodigoPostal", f"Valor: {_fmt(d.CodigoPostal)}.")


def _domicilios(x: _Ctx, cce: ComercioExterior) -> None:
    p = "ComercioExterior"
    e = cce.Emisor
    if e is None or e.Domicilio is None:
        x.add("CONN-CCE-017", f"{p}.Emisor" if e is None else f"{p}.Emisor.Domicilio")
    else:
        if e.Domicilio.Pais != "MEX":
            x.add("CONN-CCE-018", f"{p}.Emisor.Domicilio.Pais", f"Valor: {_fmt(e.Domicilio.Pais)}.")
        check_domicilio(x, f"{p}.Emisor.Domicilio", e.Domicilio)
        if e.Curp is not None and len(x.c.Emisor.Rfc) != 13:
            x.add("CONN-CCE-021", f"{p}.Emisor.Curp", f"RFC del emisor: {_fmt(x.c.Emisor.Rfc)}.")
    r = cce.Receptor
    if r is not None and r.Domicilio is not None:
        check_domicilio(x, f"{p}.Receptor.Domicilio", r.Domicilio)
    elif x.c.TipoDeComprobante == "I" and x.c.Receptor.ResidenciaFiscal is not None:
        x.add("CONN-CCE-022", f"{p}.Receptor.Domicilio")
    for i, dest in enumerate(cce.Destinatario):
        for j, dom in enumerate(dest.Domicilio):
            check_domicilio(x, f"{p}.Destinatario[{i}].Domicilio[{j}]", dom)


def _round_to(value: Decimal, places: int) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def _mercancias(x: _Ctx, cce: ComercioExterior, cats: ComExtCatalogs) -> None:
    p = "ComercioExterior.Mercancias"
    if not cce.Mercancias:
        x.add("CONN-CCE-026", p)
        return
    ids = {k.NoIdentificacion for k in x.c.Conceptos if k.NoIdentificacion is not None}
    seen: set[tuple[str | None, str | None]] = set()
    dolares: dict[str | None, Decimal] = defaultdict(Decimal)
    total = Decimal(0)
    for i, m in enumerate(cce.Mercancias):
        mp = f"{p}[{i}]"
        if m.NoIdentificacion not in ids:
            x.add("CONN-CCE-008", f"{mp}.NoIdentificacion", f"Valor: {_fmt(m.NoIdentificacion)}.")
        key = (m.NoIdentificacion, m.FraccionArancelaria)
        if key in seen:
            x.add("CONN-CCE-010", mp, f"NoIdentificacion: {_fmt(m.NoIdentificacion)}; "
                  f"FraccionArancelaria: {_fmt(m.FraccionArancelaria)}.")  # fmt: skip
        seen.add(key)
        if (
            m.FraccionArancelaria is not None
            and m.FraccionArancelaria not in cats.FraccionArancelaria
        ):
            x.add("CONN-CCE-011", f"{mp}.FraccionArancelaria",
                  f"Valor: {_fmt(m.FraccionArancelaria)}.")  # fmt: skip
        if m.UnidadAduana is not None and m.UnidadAduana not in cats.UnidadAduana:
            x.add("CONN-CCE-012", f"{mp}.UnidadAduana", f"Valor: {_fmt(m.UnidadAduana)}.")
        aduana = (m.CantidadAduana, m.UnidadAduana, m.ValorUnitarioAduana)
        given = [v is not None for v in aduana]
        if any(given) and not all(given):
            names = ("CantidadAduana", "UnidadAduana", "ValorUnitarioAduana")
            missing = [n for n, g in zip(names, given, strict=True) if not g]
            x.add("CONN-CCE-007", f"{mp}.{missing[0]}", f"Falta: {', '.join(missing)}.")
        vd = num(m.ValorDolares)
        cant, vu = num(m.CantidadAduana), num(m.ValorUnitarioAduana)
        if vd is not None:
            total += vd
            dolares[m.NoIdentificacion] += vd
            if cant is not None and vu is not None and m.UnidadAduana != UNIDAD_SERVICIO:
                places = decimals_of(vd)
                want = _round_to(cant * vu, places)
                if abs(vd - want) > Decimal(1).scaleb(-places):
                    x.add(
                        "CONN-CCE-006",
                        f"{mp}.ValorDolares",
                        f"Valor: {vd}; CantidadAduana × ValorUnitarioAduana = {cant} × {vu} = "
                        f"{want}.",
                    )
    for j, k in enumerate(x.c.Conceptos):
        if k.NoIdentificacion is None or k.NoIdentificacion not in dolares:
            x.add("CONN-CCE-009", f"Conceptos[{j}].NoIdentificacion",
                  f"Valor: {_fmt(k.NoIdentificacion)}.")  # fmt: skip
    total_usd = num(cce.TotalUSD)
    if total_usd is not None and total_usd != _round_to(total, 2):
        x.add("CONN-CCE-005", "ComercioExterior.TotalUSD",
              f"Valor: {total_usd}; suma de ValorDolares: {total}.")  # fmt: skip
    _importes(x, cce, dolares)


def _importes(x: _Ctx, cce: ComercioExterior, dolares: dict[str | None, Decimal]) -> None:
    """Σ ValorDolares of a NoIdentificacion against its conceptos' Importe − Descuento in
    dollars, for a tipo I (a traslado's amounts are zero); tolerance one cent per concepto and
    mercancía involved, the roundings on both sides."""
    c = x.c
    tc_usd = num(cce.TipoCambioUSD)
    if c.TipoDeComprobante != "I" or not tc_usd:
        return
    tc = Decimal(1) if c.Moneda == "MXN" else num(c.TipoCambio)
    if tc is None:
        return
    importes: dict[str, Decimal] = defaultdict(Decimal)
    count: dict[str, int] = defaultdict(int)
    for k in c.Conceptos:
        imp = num(k.Importe)
        if k.NoIdentificacion is None or imp is None:
            return  # not computed yet or broken: other rules say so
        importes[k.NoIdentificacion] += imp - (num(k.Descuento) or 0)
        count[k.NoIdentificacion] += 1
    n_merc: dict[str | None, int] = defaultdict(int)
    for m in cce.Mercancias:
        n_merc[m.NoIdentificacion] += 1
    for ident, vd in dolares.items():
        if ident not in importes:
            continue
        want = _round_to(importes[ident] * tc / tc_usd, 2)
        tolerance = Decimal("0.01") * (count[ident] + n_merc[ident])
        if abs(vd - want) > tolerance:
            i = next(i for i, m in enumerate(cce.Mercancias) if m.NoIdentificacion == ident)
            x.add(
                "CONN-CCE-027",
                f"ComercioExterior.Mercancias[{i}].ValorDolares",
                f"NoIdentificacion {_fmt(ident)}: suma de ValorDolares {vd}; importes "
                f"{importes[ident]} × {tc} ÷ {tc_usd} = {want}.",
            )


def validate_cce20(c: Comprobante) -> list[Problem]:
    """The Comercio Exterior 2.0 rules alone, on a document as given (e.g. a sealed XML)."""
    return validate_one(c, _comercio_exterior, "ComercioExterior", "comercio exterior")


__all__ = ["ESTADOS", "MESSAGES_CCE", "check_domicilio", "validate_cce20"]
