"""The Comercio Exterior 2.0 section of the representación impresa (``pdf``): what a customs
broker reads — the complement's data (pedimento, certificado de origen, Incoterm, tipo de cambio
and total in dollars), the domicilios of emisor, receptor and destinatarios, the propietarios,
and every mercancía with its fracción arancelaria, customs quantity, unit and values, and its
descripciones específicas. Drawn with the renderer's own ``section`` and ``fields`` (this module
does not import ``pdf``: it is handed the renderer)."""

from __future__ import annotations

from typing import Any

from .cce20 import ComercioExterior, Domicilio, Mercancia

MOTIVO_TRASLADO = {
    "01": "Envío de mercancías facturadas con anterioridad",
    "02": "Reubicación de mercancías propias",
    "03": "Envío de mercancías objeto de contrato de consignación",
    "04": "Envío de mercancías para posterior enajenación",
    "05": "Envío de mercancías propiedad de terceros",
    "99": "Otros",
}
UNIDAD_ADUANA = {
    "01": "Kilo", "02": "Gramo", "03": "Metro lineal", "04": "Metro cuadrado",
    "05": "Metro cúbico", "06": "Pieza", "07": "Cabeza", "08": "Litro", "09": "Par",
    "10": "Kilowatt", "11": "Millar", "12": "Juego", "13": "Kilowatt/hora", "14": "Tonelada",
    "15": "Barril", "16": "Gramo neto", "17": "Decenas", "18": "Cientos", "19": "Docenas",
    "20": "Caja", "21": "Botella", "22": "Carat", "99": "Servicio",
}  # fmt: skip


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _with(code: str | None, names: dict[str, str]) -> str:
    if code is None:
        return ""
    return f"{code} - {names[code]}" if code in names else code


def domicilio_text(d: Domicilio) -> str:
    """One line: street and numbers, colonia, localidad, municipio, referencia, state, country
    and postal code, every field given."""
    street = " ".join(x for x in (_text(d.Calle), _text(d.NumeroExterior)) if x) + (
        f" int. {d.NumeroInterior}" if d.NumeroInterior else ""
    )
    parts = [street, d.Colonia, d.Localidad, d.Municipio, d.Referencia]
    place = ", ".join(p for p in (_text(d.Estado), _text(d.Pais)) if p)
    tail = f"{place} C.P. {d.CodigoPostal}" if d.CodigoPostal else place
    return ", ".join(p for p in [*parts, tail] if p)


def _mercancia(r: Any, n: int, m: Mercancia) -> None:
    r.fields(
        [
            (f"Mercancía {n}: No. identificación", _text(m.NoIdentificacion)),
            ("Fracción arancelaria", _text(m.FraccionArancelaria)),
            ("Cantidad aduana", _text(m.CantidadAduana)),
            ("Unidad aduana", _with(m.UnidadAduana, UNIDAD_ADUANA)),
            ("Valor unitario aduana (USD)", _text(m.ValorUnitarioAduana)),
            ("Valor en dólares", _text(m.ValorDolares)),
        ],
        6,
    )
    for d in m.DescripcionesEspecificas:
        r.fields(
            [
                ("Marca", _text(d.Marca)),
                ("Modelo", _text(d.Modelo)),
                ("Submodelo", _text(d.SubModelo)),
                ("Número de serie", _text(d.NumeroSerie)),
            ],
            6,
        )


def draw(r: Any, cce: ComercioExterior) -> None:
    """The section on renderer ``r`` (``pdf._Renderer``)."""
    r.section("Complemento de Comercio Exterior 2.0")
    r.fields(
        [
            ("Versión", _text(cce.Version)),
            ("Clave de pedimento", _text(cce.ClaveDePedimento)),
            ("Motivo de traslado", _with(cce.MotivoTraslado, MOTIVO_TRASLADO)),
            ("Certificado de origen", {"0": "0 - No funge", "1": "1 - Funge"}.get(
                cce.CertificadoOrigen or "", _text(cce.CertificadoOrigen))),
            ("Núm. certificado de origen", _text(cce.NumCertificadoOrigen)),
            ("Núm. exportador confiable", _text(cce.NumeroExportadorConfiable)),
            ("Incoterm", _text(cce.Incoterm)),
            ("Tipo de cambio USD", _text(cce.TipoCambioUSD)),
            ("Total USD", _text(cce.TotalUSD)),
        ],
        5,
    )  # fmt: skip
    if cce.Observaciones:
        r.fields([("Observaciones", cce.Observaciones)], 1)
    if cce.Emisor is not None:
        pairs = [("CURP del emisor", _text(cce.Emisor.Curp))]
        if cce.Emisor.Domicilio is not None:
            pairs.append(("Domicilio del emisor", domicilio_text(cce.Emisor.Domicilio)))
        r.fields(pairs, 4, spans={"Domicilio del emisor": 3})
    for p in cce.Propietario:
        r.fields(
            [
                ("Propietario: núm. registro tributario", _text(p.NumRegIdTrib)),
                ("Residencia fiscal", _text(p.ResidenciaFiscal)),
            ],
            4,
        )
    if cce.Receptor is not None:
        pairs = [("Receptor: núm. registro tributario", _text(cce.Receptor.NumRegIdTrib))]
        if cce.Receptor.Domicilio is not None:
            pairs.append(("Domicilio del receptor", domicilio_text(cce.Receptor.Domicilio)))
        r.fields(pairs, 4, spans={"Domicilio del receptor": 3})
    for i, dest in enumerate(cce.Destinatario, start=1):
        r.fields(
            [
                (f"Destinatario {i}", _text(dest.Nombre)),
                ("Núm. registro tributario", _text(dest.NumRegIdTrib)),
            ],
            4,
        )
        for dom in dest.Domicilio:
            r.fields([("Domicilio del destinatario", domicilio_text(dom))], 1)
    for n, m in enumerate(cce.Mercancias, start=1):
        _mercancia(r, n, m)
