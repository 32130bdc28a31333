"""Carta Porte 3.1 benchmark: build + seal of a traslado with 20 mercancías.

Run from the repository root:

    python bench/bench_cp31.py --invoices 200 --rounds 3

Each invoice: a tipo T of the emisor's own goods with 20 conceptos and a Carta Porte 3.1
(autotransporte federal) with 20 mercancías (BienesTransp from c_ClaveProdServCP, weights, every
fourth with DetalleMercancia and a CantidadTransporta), an origen and two destinos with
domicilios, a T3S2 with remolque, seguros and an operador; different folios and amounts. IdCCP,
TotalDistRec, PesoBrutoTotal and NumTotalMercancias are left to the connector. Stages per
invoice, from plain data each time (nothing cached across invoices):

* build + seal: plain data → typed model → derived amounts, IdCCP and totals → cadena (fast
  path, with the complement) → RSA signature → XML bytes (``seal_invoice``);
* rules: SAT's CFDI 4.0 rules plus the complement's (``rules.validate``);
* validate_limits: the document checked against SAT's XSD (with CartaPorte31.xsd; the big
  c_ClaveProdServCP, c_MaterialPeligroso and c_Estaciones as sets) before sealing.

After timing, every sealed document is checked: the seal verifies, the XML is XSD-valid, and the
cadena equals SAT's XSLT output.
"""

from __future__ import annotations

import sys
from decimal import Decimal
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.bench_cce20 import run_complement  # noqa: E402
from connector.cfdi.cp31 import cp_catalogs  # noqa: E402

MERCANCIAS = 20
EMISOR = {"Rfc": "EKU9003173C9", "Nombre": "ESCUELA KEMPER URGATE", "RegimenFiscal": "601"}


def _ubicacion(tipo: str, ident: str, fecha: str, estado: str, cp: str, km: str = "") -> dict:
    return {
        "TipoUbicacion": tipo, "IDUbicacion": ident, "RFCRemitenteDestinatario": EMISOR["Rfc"],
        "NombreRemitenteDestinatario": EMISOR["Nombre"], "FechaHoraSalidaLlegada": fecha,
        "DistanciaRecorrida": km or None,
        "Domicilio": {"Calle": "Calle 1", "NumeroExterior": "10", "Estado": estado, "Pais": "MEX",
                      "CodigoPostal": cp},
    }  # fmt: skip


def invoice_data(i: int) -> dict:
    claves = sorted(cp_catalogs()["c_ClaveProdServCP"])
    conceptos, mercancias = [], []
    for j in range(MERCANCIAS):
        clave = claves[(i * 7 + j * 131) % len(claves)]
        cantidad = Decimal(1 + (i + j) % 40)
        kg = Decimal(1000 + 37 * j + i) / 1000 * cantidad
        conceptos.append({
            "ClaveProdServ": "52161557", "NoIdentificacion": f"ART{j:03d}",
            "Cantidad": str(cantidad), "ClaveUnidad": "H87", "Descripcion": f"Artículo {j}",
            "ValorUnitario": "0", "ObjetoImp": "01",
        })  # fmt: skip
        merc: dict = {
            "BienesTransp": clave, "Descripcion": f"Artículo {j}", "Cantidad": str(cantidad),
            "ClaveUnidad": "H87", "MaterialPeligroso": "No", "PesoEnKg": f"{kg:.3f}",
        }  # fmt: skip
        if j % 4 == 0:
            merc["CantidadTransporta"] = [
                {"Cantidad": str(cantidad), "IDOrigen": "OR000001", "IDDestino": "DE000002"}
            ]
            merc["DetalleMercancia"] = {"UnidadPesoMerc": "KGM", "PesoBruto": f"{kg:.3f}",
                                        "PesoNeto": f"{kg - Decimal('0.001'):.3f}",
                                        "PesoTara": "0.001"}  # fmt: skip
        mercancias.append(merc)
    return {
        "Serie": "CP", "Folio": str(1000 + i), "Fecha": "2026-06-15T10:00:00", "Moneda": "XXX",
        "TipoDeComprobante": "T", "Exportacion": "01", "LugarExpedicion": "86000",
        "Emisor": EMISOR,
        "Receptor": {"Rfc": EMISOR["Rfc"], "Nombre": EMISOR["Nombre"],
                     "DomicilioFiscalReceptor": "86000", "RegimenFiscalReceptor": "601",
                     "UsoCFDI": "S01"},
        "Conceptos": conceptos,
        "CartaPorte": {
            "TranspInternac": "No",
            "Ubicaciones": [
                _ubicacion("Origen", "OR000001", "2026-06-15T11:00:00", "TAB", "86000"),
                _ubicacion("Destino", "DE000001", "2026-06-16T07:00:00", "GUA", "36257",
                           f"{850 + i % 100}.5"),
                _ubicacion("Destino", "DE000002", "2026-06-16T12:00:00", "QUE", "76000", "200"),
            ],
            "Mercancias": {
                "Mercancia": mercancias,
                "Autotransporte": {
                    "PermSCT": "TPAF01", "NumPermisoSCT": "0X2XTXZ0X5X0X3X2X1X0",
                    "IdentificacionVehicular": {"ConfigVehicular": "T3S2",
                                                "PesoBrutoVehicular": "30.00",
                                                "PlacaVM": "501AAA", "AnioModeloVM": "2020"},
                    "Seguros": {"AseguraRespCivil": "SW Seguros", "PolizaRespCivil": "123456"},
                    "Remolques": [{"SubTipoRem": "CTR004", "Placa": "ABC1234"}],
                },
            },
            "FiguraTransporte": [{"TipoFigura": "01", "RFCFigura": "VAAM130719H60",
                                  "NumLicencia": "a234567890", "NombreFigura": "Miguel Vázquez"}],
        },
    }  # fmt: skip


def main() -> int:
    labels = (
        "build + seal (20 mercancías)",
        "rules.validate (CFDI 4.0 + Carta Porte 3.1)",
        "validate_limits (XSD with cartaporte31)",
    )
    return run_complement(invoice_data, labels, __doc__.splitlines()[0])


if __name__ == "__main__":
    raise SystemExit(main())
