"""The Nómina 1.2 section of the representación impresa (``pdf``): the payroll receipt an
employee or an accountant reads — the period and totals, the employer's registro patronal, the
employee's data (CURP, NSS, número de empleado, puesto, antigüedad, contrato, salario), and every
percepción, deducción, otro pago and incapacidad with their details (horas extra, subsidio al
empleo, jubilación, separación…). Nómina arrives in XML drops from payroll software and is kept
verbatim in ``Comprobante.OtrosComplementos``: every attribute of every node of the complement is
drawn, in the document's order, under SAT's attribute names (nothing is left out). Drawn with
the renderer's own ``section`` and ``fields`` (this module does not import ``pdf``)."""

from __future__ import annotations

from typing import Any

from lxml import etree

NS_NOMINA12 = "http://www.sat.gob.mx/nomina12"
TAG = f"{{{NS_NOMINA12}}}Nomina"

# node → its title on the page (a repeated node is numbered)
TITLES = {
    "Nomina": "Nómina",
    "Emisor": "Patrón",
    "EntidadSNCF": "Entidad SNCF",
    "Receptor": "Trabajador",
    "SubContratacion": "Subcontratación",
    "Percepciones": "Percepciones",
    "Percepcion": "Percepción",
    "AccionesOTitulos": "Acciones o títulos",
    "HorasExtra": "Horas extra",
    "JubilacionPensionRetiro": "Jubilación, pensión o retiro",
    "SeparacionIndemnizacion": "Separación o indemnización",
    "Deducciones": "Deducciones",
    "Deduccion": "Deducción",
    "OtrosPagos": "Otros pagos",
    "OtroPago": "Otro pago",
    "SubsidioAlEmpleo": "Subsidio para el empleo",
    "CompensacionSaldosAFavor": "Compensación de saldos a favor",
    "Incapacidades": "Incapacidades",
    "Incapacidad": "Incapacidad",
}
_REPEATED = ("Percepcion", "Deduccion", "OtroPago", "Incapacidad", "HorasExtra", "SubContratacion")
TIPO_NOMINA = {"O": "O - Ordinaria", "E": "E - Extraordinaria"}


def is_nomina(raw: bytes) -> bool:
    """Whether a complement kept verbatim is Nómina 1.2."""
    return raw.lstrip().startswith(b"<nomina12:Nomina") or _root(raw).tag == TAG


def _root(raw: bytes) -> Any:
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    return etree.fromstring(raw, parser)


def draw(r: Any, raw: bytes) -> None:
    """The section on renderer ``r`` (``pdf._Renderer``) for the complement's XML ``raw``."""
    root = _root(raw)
    r.section("Complemento de Nómina 1.2")
    counts: dict[str, int] = {}
    for el in root.iter(etree.Element):
        name = etree.QName(el).localname
        if not el.attrib:
            continue
        title = TITLES.get(name, name)
        if name in _REPEATED:
            counts[name] = counts.get(name, 0) + 1
            title = f"{title} {counts[name]}"
        pairs = []
        for i, (attr, value) in enumerate(el.attrib.items()):
            attr = etree.QName(attr).localname
            if name == "Nomina" and attr == "TipoNomina":
                value = TIPO_NOMINA.get(value, value)
            pairs.append((f"{title}: {attr}" if i == 0 else attr, value))
        r.fields(pairs, 4)
