"""Nómina 1.2 from XML drops (issue 15): payroll software writes the CFDI with its Nómina
complement, the connector seals and stamps it (no mapping), validated by SAT's ``nomina12.xsd``
and SAT's CFDI 4.0 rules before anything reaches the PAC.

Five payroll documents of different kinds (ordinaria; with subsidio al empleo and IMSS;
extraordinaria of an aguinaldo; asimilados a salarios; horas extra with an incapacidad) go
through the real daemon to the sandbox PAC over HTTP and come back stamped: valid by SAT's XSD
with the complement, the cadena byte-identical to SAT's XSLT's (``nomina12.xslt`` included by
``cadenaoriginal_4_0.xslt``), the seal verifying. Twenty broken ones are refused locally, each
with its code and the field it names, and never reach the PAC.

The documents were written for these tests from SAT's ``nomina12.xsd``, ``catNomina.xsd`` and
the Anexo 20 rules for a payroll CFDI (TipoDeComprobante N, UsoCFDI CN01, régimen 605, no
FormaPago, SubTotal = percepciones + otros pagos, Descuento = deducciones): no published CFDI
4.0 document with Nómina 1.2 was found among the stored public test suites.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pypdf

from connector.cfdi.cadena import cadena_original, cadena_original_xslt
from connector.cfdi.seal import verify_seal
from connector.cfdi.xmlio import from_xml, validate_xsd
from tests.daemon.conftest import fecha, run_once, stamps_by_key

RECEPTOR = (
    'Curp="CACX760510MGTSHC04" NumSeguridadSocial="04078873454" '
    'FechaInicioRelLaboral="2019-01-01" Antigüedad="P315W" TipoContrato="01" TipoJornada="01" '
    'TipoRegimen="02" NumEmpleado="120" Departamento="Ventas" Puesto="Vendedora" '
    'RiesgoPuesto="1" PeriodicidadPago="04" SalarioBaseCotApor="700.00" '
    'SalarioDiarioIntegrado="700.00" ClaveEntFed="HID"'
)
ASIMILADO = (
    'Curp="CACX760510MGTSHC04" TipoContrato="99" TipoRegimen="09" NumEmpleado="A-7" '
    'PeriodicidadPago="04" ClaveEntFed="HID"'
)


def payroll(
    folio: str,
    *,
    subtotal: str,
    descuento: str,
    total: str,
    nomina: str,
    body: str,
    receptor: str = RECEPTOR,
    emisor: str = '<nomina12:Emisor RegistroPatronal="B5510768108"/>',
) -> str:
    """A payroll CFDI 4.0 (unsealed) of ESCUELA KEMPER URGATE to XOCHILT CASAS CHAVEZ."""
    desc = f' Descuento="{descuento}"' if descuento else ""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<cfdi:Comprobante xmlns:cfdi="http://www.sat.gob.mx/cfd/4" \
xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" \
xmlns:nomina12="http://www.sat.gob.mx/nomina12" \
xsi:schemaLocation="http://www.sat.gob.mx/cfd/4 \
http://www.sat.gob.mx/sitio_internet/cfd/4/cfdv40.xsd http://www.sat.gob.mx/nomina12 \
http://www.sat.gob.mx/sitio_internet/cfd/nomina/nomina12.xsd" \
Version="4.0" Serie="NOM" Folio="{folio}" Fecha="{fecha()}" SubTotal="{subtotal}"{desc} \
Moneda="MXN" Total="{total}" TipoDeComprobante="N" Exportacion="01" MetodoPago="PUE" \
LugarExpedicion="42501">
  <cfdi:Emisor Rfc="EKU9003173C9" Nombre="ESCUELA KEMPER URGATE" RegimenFiscal="601"/>
  <cfdi:Receptor Rfc="CACX7605101P8" Nombre="XOCHILT CASAS CHAVEZ" \
DomicilioFiscalReceptor="36257" RegimenFiscalReceptor="605" UsoCFDI="CN01"/>
  <cfdi:Conceptos>
    <cfdi:Concepto ClaveProdServ="84111505" Cantidad="1" ClaveUnidad="ACT" \
Descripcion="Pago de nómina" ValorUnitario="{subtotal}" Importe="{subtotal}"{desc} \
ObjetoImp="01"/>
  </cfdi:Conceptos>
  <cfdi:Complemento>
    <nomina12:Nomina Version="1.2" {nomina}>
      {emisor}
      <nomina12:Receptor {receptor}/>
{body}
    </nomina12:Nomina>
  </cfdi:Complemento>
</cfdi:Comprobante>
"""


def _periodo(tipo: str = "O", dias: str = "15.000") -> str:
    return (
        f'TipoNomina="{tipo}" FechaPago="2025-01-15" FechaInicialPago="2025-01-01" '
        f'FechaFinalPago="2025-01-15" NumDiasPagados="{dias}"'
    )


ORDINARIA = payroll(
    "1", subtotal="10000.00", descuento="1500.00", total="8500.00",
    nomina=_periodo() + ' TotalPercepciones="10000.00" TotalDeducciones="1500.00"',
    body="""      <nomina12:Percepciones TotalSueldos="10000.00" TotalGravado="10000.00" TotalExento="0.00">
        <nomina12:Percepcion TipoPercepcion="001" Clave="001" Concepto="Sueldo" \
ImporteGravado="10000.00" ImporteExento="0.00"/>
      </nomina12:Percepciones>
      <nomina12:Deducciones TotalImpuestosRetenidos="1500.00">
        <nomina12:Deduccion TipoDeduccion="002" Clave="002" Concepto="ISR" Importe="1500.00"/>
      </nomina12:Deducciones>""",
)  # fmt: skip

VALID = {
    "ordinaria": ORDINARIA,
    "subsidio_e_imss": payroll(
        "2", subtotal="8150.00", descuento="900.00", total="7250.00",
        nomina=_periodo() + ' TotalPercepciones="8000.00" TotalDeducciones="900.00" '
        'TotalOtrosPagos="150.00"',
        body="""      <nomina12:Percepciones TotalSueldos="8000.00" TotalGravado="8000.00" TotalExento="0.00">
        <nomina12:Percepcion TipoPercepcion="001" Clave="001" Concepto="Sueldo" \
ImporteGravado="8000.00" ImporteExento="0.00"/>
      </nomina12:Percepciones>
      <nomina12:Deducciones TotalOtrasDeducciones="200.00" TotalImpuestosRetenidos="700.00">
        <nomina12:Deduccion TipoDeduccion="001" Clave="001" Concepto="IMSS" Importe="200.00"/>
        <nomina12:Deduccion TipoDeduccion="002" Clave="002" Concepto="ISR" Importe="700.00"/>
      </nomina12:Deducciones>
      <nomina12:OtrosPagos>
        <nomina12:OtroPago TipoOtroPago="002" Clave="002" Concepto="Subsidio para el empleo" \
Importe="150.00">
          <nomina12:SubsidioAlEmpleo SubsidioCausado="150.00"/>
        </nomina12:OtroPago>
      </nomina12:OtrosPagos>""",
    ),
    "aguinaldo_extraordinaria": payroll(
        "3", subtotal="5000.00", descuento="450.00", total="4550.00",
        nomina=_periodo("E", "1.000") + ' TotalPercepciones="5000.00" TotalDeducciones="450.00"',
        receptor=RECEPTOR.replace('PeriodicidadPago="04"', 'PeriodicidadPago="99"'),
        body="""      <nomina12:Percepciones TotalSueldos="5000.00" TotalGravado="3000.00" TotalExento="2000.00">
        <nomina12:Percepcion TipoPercepcion="002" Clave="002" Concepto="Aguinaldo" \
ImporteGravado="3000.00" ImporteExento="2000.00"/>
      </nomina12:Percepciones>
      <nomina12:Deducciones TotalImpuestosRetenidos="450.00">
        <nomina12:Deduccion TipoDeduccion="002" Clave="002" Concepto="ISR" Importe="450.00"/>
      </nomina12:Deducciones>""",
    ),
    "asimilados": payroll(
        "4", subtotal="20000.00", descuento="4000.00", total="16000.00",
        nomina=_periodo() + ' TotalPercepciones="20000.00" TotalDeducciones="4000.00"',
        receptor=ASIMILADO, emisor="",
        body="""      <nomina12:Percepciones TotalSueldos="20000.00" TotalGravado="20000.00" TotalExento="0.00">
        <nomina12:Percepcion TipoPercepcion="046" Clave="046" \
Concepto="Ingresos asimilados a salarios" ImporteGravado="20000.00" ImporteExento="0.00"/>
      </nomina12:Percepciones>
      <nomina12:Deducciones TotalImpuestosRetenidos="4000.00">
        <nomina12:Deduccion TipoDeduccion="002" Clave="002" Concepto="ISR" Importe="4000.00"/>
      </nomina12:Deducciones>""",
    ),
    "horas_extra_e_incapacidad": payroll(
        "5", subtotal="6600.00", descuento="1250.00", total="5350.00",
        nomina=_periodo() + ' TotalPercepciones="6600.00" TotalDeducciones="1250.00"',
        body="""      <nomina12:Percepciones TotalSueldos="6600.00" TotalGravado="6300.00" TotalExento="300.00">
        <nomina12:Percepcion TipoPercepcion="001" Clave="001" Concepto="Sueldo" \
ImporteGravado="6000.00" ImporteExento="0.00"/>
        <nomina12:Percepcion TipoPercepcion="019" Clave="019" Concepto="Horas extra" \
ImporteGravado="300.00" ImporteExento="300.00">
          <nomina12:HorasExtra Dias="2" TipoHoras="01" HorasExtra="4" ImportePagado="600.00"/>
        </nomina12:Percepcion>
      </nomina12:Percepciones>
      <nomina12:Deducciones TotalOtrasDeducciones="350.00" TotalImpuestosRetenidos="900.00">
        <nomina12:Deduccion TipoDeduccion="006" Clave="006" Concepto="Descuento por incapacidad" \
Importe="350.00"/>
        <nomina12:Deduccion TipoDeduccion="002" Clave="002" Concepto="ISR" Importe="900.00"/>
      </nomina12:Deducciones>
      <nomina12:Incapacidades>
        <nomina12:Incapacidad DiasIncapacidad="2" TipoIncapacidad="02" ImporteMonetario="350.00"/>
      </nomina12:Incapacidades>""",
    ),
}  # fmt: skip

# name → (what is replaced in ORDINARIA, by what, the code, the field the error names)
INVALID: dict[str, tuple[str, str, str, str]] = {
    "tipo_nomina": ('TipoNomina="O"', 'TipoNomina="X"', "CONN-XSD", "Nomina.TipoNomina"),
    "version": ('Version="1.2"', 'Version="1.1"', "CONN-XSD", "Nomina.Version"),
    "atributo_ajeno": ('Version="1.2" ', 'Version="1.2" Quincena="1" ', "CONN-XSD",
                       "Nomina.Quincena"),
    "fecha_pago": ('FechaPago="2025-01-15"', 'FechaPago="2025-13-01"', "CONN-XSD",
                   "Nomina.FechaPago"),
    "dias_pagados": ('NumDiasPagados="15.000"', 'NumDiasPagados="15.0001"', "CONN-XSD",
                     "Nomina.NumDiasPagados"),
    "total_percepciones": ('TotalPercepciones="10000.00"', 'TotalPercepciones="10000.001"',
                           "CONN-XSD", "Nomina.TotalPercepciones"),
    "registro_patronal": ('RegistroPatronal="B5510768108"',
                          'RegistroPatronal="B5510768108B5510768108"', "CONN-XSD",
                          "Nomina.Emisor.RegistroPatronal"),
    "curp": ('Curp="CACX760510MGTSHC04"', 'Curp="CACX760510"', "CONN-XSD",
             "Nomina.Receptor.Curp"),
    "sin_curp": ('Curp="CACX760510MGTSHC04" ', "", "CONN-XSD", "Nomina.Receptor.Curp"),
    "sin_num_empleado": (' NumEmpleado="120"', "", "CONN-XSD", "Nomina.Receptor.NumEmpleado"),
    "tipo_contrato": ('TipoContrato="01"', 'TipoContrato="77"', "CONN-XSD",
                      "Nomina.Receptor.TipoContrato"),
    "riesgo_puesto": ('RiesgoPuesto="1"', 'RiesgoPuesto="9"', "CONN-XSD",
                      "Nomina.Receptor.RiesgoPuesto"),
    "periodicidad": ('PeriodicidadPago="04"', 'PeriodicidadPago="77"', "CONN-XSD",
                     "Nomina.Receptor.PeriodicidadPago"),
    "entidad": ('ClaveEntFed="HID"', 'ClaveEntFed="XXX"', "CONN-XSD",
                "Nomina.Receptor.ClaveEntFed"),
    "tipo_percepcion": ('TipoPercepcion="001"', 'TipoPercepcion="999"', "CONN-XSD",
                        "Nomina.Percepciones[0].TipoPercepcion"),
    "percepcion_sin_concepto": (' Concepto="Sueldo"', "", "CONN-XSD",
                                "Nomina.Percepciones[0].Concepto"),
    "tipo_deduccion": ('TipoDeduccion="002"', 'TipoDeduccion="999"', "CONN-XSD",
                       "Nomina.Deducciones[0].TipoDeduccion"),
    "deduccion_sin_importe": (' Importe="1500.00"/>', "/>", "CONN-XSD",
                              "Nomina.Deducciones[0].Importe"),
    # SAT's CFDI 4.0 rules on a payroll CFDI
    "uso_cfdi": ('UsoCFDI="CN01"', 'UsoCFDI="G03"', "CFDI40161", "Receptor.UsoCFDI"),
    "forma_pago": ('TipoDeComprobante="N"', 'TipoDeComprobante="N" FormaPago="03"', "CFDI40103",
                   "FormaPago"),
    "total": ('Total="8500.00"', 'Total="8600.00"', "CFDI40119", "Total"),
}  # fmt: skip


def _order_swapped(text: str) -> str:
    """Deducciones before Percepciones: SAT's XSD fixes the order."""
    perc = text[
        text.index("      <nomina12:Percepciones") : text.index("      <nomina12:Deducciones")
    ]
    ded = text[text.index("      <nomina12:Deducciones") : text.index("    </nomina12:Nomina>")]
    return text.replace(perc + ded, ded.rstrip("\n") + "\n" + perc.rstrip("\n") + "\n")


def test_payroll_xml_drops_are_sealed_stamped_and_valid(workspace: Path, sandbox: Any) -> None:
    inbox = workspace.parent / "inbox"
    for name, text in VALID.items():
        (inbox / f"nomina-{name}.xml").write_text(text, encoding="utf-8")
    run_once(workspace)
    errors = list((workspace.parent / "failed").glob("*.error.txt"))
    assert errors == [], errors[0].read_text(encoding="utf-8") if errors else ""
    assert set(stamps_by_key(sandbox.store)) == {("NOM", str(i)) for i in range(1, 6)}
    paths = sorted((workspace.parent / "out" / "xml").glob("NOM*.xml"))
    assert len(paths) == 5
    for path in paths:
        xml = path.read_bytes()
        assert validate_xsd(xml) == [], path.name
        assert verify_seal(xml) == [], path.name
        assert cadena_original(xml) == cadena_original_xslt(xml), path.name
        assert b"<nomina12:Nomina" in xml and b"TimbreFiscalDigital" in xml
        c = from_xml(xml)
        assert c.TipoDeComprobante == "N" and c.Receptor.UsoCFDI == "CN01"
    # the representación impresa carries the payroll receipt
    pdfs = sorted((workspace.parent / "out" / "pdf").glob("NOM*.pdf"))
    assert len(pdfs) == 5
    text = "".join(
        p.extract_text() for p in pypdf.PdfReader(io.BytesIO(pdfs[0].read_bytes())).pages
    )
    assert "COMPLEMENTO DE NÓMINA 1.2" in text and "CACX760510MGTSHC04" in text
    # the complement reaches SAT's cadena: its totals and the employee's CURP are sealed
    one = next(p for p in paths if p.name.startswith("NOM2_")).read_bytes()
    cadena = cadena_original(one)
    assert "|1.2|O|2025-01-15|2025-01-01|2025-01-15|15.000|8000.00|900.00|150.00|" in cadena
    assert "|CACX760510MGTSHC04|" in cadena and "|150.00|150.00|" in cadena


def test_broken_payroll_drops_are_refused_locally_with_their_code(
    workspace: Path, sandbox: Any
) -> None:
    inbox = workspace.parent / "inbox"
    cases = dict(INVALID)
    for n, (name, (old, new, _, _)) in enumerate(cases.items(), 10):
        base = ORDINARIA.replace('Folio="1"', f'Folio="{n}"')
        assert old in base, name
        (inbox / f"mal-{name}.xml").write_text(base.replace(old, new, 1), encoding="utf-8")
    swapped = _order_swapped(ORDINARIA.replace('Folio="1"', 'Folio="99"'))
    (inbox / "mal-orden.xml").write_text(swapped, encoding="utf-8")
    cases["orden"] = ("", "", "CONN-XSD", "Nomina.Percepciones")
    run_once(workspace)
    texts = {
        p.name.split("--", 1)[-1].split(".")[0]: p.read_text(encoding="utf-8")
        for p in (workspace.parent / "failed").glob("*.error.txt")
    }
    assert set(texts) == {f"mal-{name}" for name in cases}, sorted(texts)
    for name, (_, _, code, field) in cases.items():
        text = texts[f"mal-{name}"]
        assert "Errores: 1\n" in text and f"\n{code}  factura NOM" in text, (name, text)
        assert f"campo {field}:" in text, (name, text)
    assert len(cases) >= 20
    assert (
        "campo Nomina.Version: El XML no cumple el esquema XSD del SAT (línea 9): Version de "
        "Nomina debe ser '1.2' (no '1.1')." in texts["mal-version"]
    )
    assert stamps_by_key(sandbox.store) == {}  # none reached the PAC
