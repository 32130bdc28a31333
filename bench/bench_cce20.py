"""Comercio Exterior 2.0 benchmark: build + seal of an export invoice with 20 mercancías.

Run from the repository root:

    python bench/bench_cce20.py --invoices 200 --rounds 3

Each invoice: 20 conceptos (IVA 0 %) in USD and a cce20 complement with 20 mercancías (fracción
arancelaria, cantidad/unidad/valor aduana, valor en dólares; every fifth with descripciones
específicas), emisor and receptor domicilios; different folios and amounts. Stages per invoice,
from plain data each time (nothing cached across invoices):

* build + seal: plain data → typed model → derived amounts → cadena (fast path, with the
  complement) → RSA signature → XML bytes (``seal_invoice``);
* rules: SAT's CFDI 4.0 rules plus the complement's (``rules.validate``);
* validate_limits: the document checked against SAT's XSD (with ComercioExterior20.xsd and its
  26,000-code c_FraccionArancelaria) before sealing.

After timing, every sealed document is checked: the seal verifies, the XML is XSD-valid, and the
cadena equals SAT's XSLT output.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.bench_core import measure  # noqa: E402
from connector.cfdi import rules  # noqa: E402
from connector.cfdi.amounts import complete  # noqa: E402
from connector.cfdi.cadena import cadena_original, cadena_original_xslt  # noqa: E402
from connector.cfdi.cce20 import comext_catalogs  # noqa: E402
from connector.cfdi.csd import Csd  # noqa: E402
from connector.cfdi.model import load_invoice  # noqa: E402
from connector.cfdi.seal import seal_invoice, verify_seal  # noqa: E402
from connector.cfdi.xmlio import validate_limits, validate_xsd  # noqa: E402

CSD_BASE = REPO / "connector" / "demo" / "csd" / "eku9003173c9_csd_2023_30001000000500003416"
MERCANCIAS = 20


def invoice_data(i: int) -> dict:
    fracciones = sorted(comext_catalogs().FraccionArancelaria)
    conceptos, mercancias = [], []
    for j in range(MERCANCIAS):
        cantidad = Decimal(1 + (i + j) % 40)
        precio = Decimal(1000 + 37 * j + i) / 100
        conceptos.append(
            {
                "ClaveProdServ": "43201800",
                "NoIdentificacion": f"ART{j:03d}",
                "Cantidad": str(cantidad),
                "ClaveUnidad": "H87",
                "Descripcion": f"Artículo de exportación {j}",
                "ValorUnitario": str(precio),
                "ObjetoImp": "02",
                "Impuestos": {
                    "Traslados": [
                        {"Impuesto": "002", "TipoFactor": "Tasa", "TasaOCuota": "0.000000"}
                    ]
                },
            }
        )
        mercancias.append(
            {
                "NoIdentificacion": f"ART{j:03d}",
                "FraccionArancelaria": fracciones[(i * 7 + j * 131) % len(fracciones)],
                "CantidadAduana": str(cantidad),
                "UnidadAduana": "06",
                "ValorUnitarioAduana": str(precio),
                "ValorDolares": str(cantidad * precio),
                "DescripcionesEspecificas": (
                    [{"Marca": "ACME", "Modelo": f"M{j}", "NumeroSerie": f"SN-{i}-{j}"}]
                    if j % 5 == 0 else []
                ),
            }
        )  # fmt: skip
    total = sum(Decimal(m["ValorDolares"]) for m in mercancias)
    return {
        "Serie": "EX",
        "Folio": str(1000 + i),
        "Fecha": "2026-06-15T10:00:00",
        "FormaPago": "03",
        "Moneda": "USD",
        "TipoCambio": "17.5000",
        "TipoDeComprobante": "I",
        "Exportacion": "02",
        "MetodoPago": "PUE",
        "LugarExpedicion": "86000",
        "Emisor": {"Rfc": "EKU9003173C9", "Nombre": "ESCUELA KEMPER URGATE", "RegimenFiscal": "601"},
        "Receptor": {
            "Rfc": "XEXX010101000",
            "Nombre": "ACME INC",
            "DomicilioFiscalReceptor": "86000",
            "ResidenciaFiscal": "USA",
            "NumRegIdTrib": "121585958",
            "RegimenFiscalReceptor": "616",
            "UsoCFDI": "S01",
        },
        "Conceptos": conceptos,
        "ComercioExterior": {
            "CertificadoOrigen": "0",
            "Incoterm": "FOB",
            "TipoCambioUSD": "17.5000",
            "TotalUSD": str(total),
            "Emisor": {
                "Domicilio": {
                    "Calle": "Av. Paseo Tabasco", "NumeroExterior": "1203", "Estado": "TAB",
                    "Pais": "MEX", "CodigoPostal": "86000",
                }
            },
            "Receptor": {
                "Domicilio": {
                    "Calle": "Main St", "NumeroExterior": "1", "Estado": "TX", "Pais": "USA",
                    "CodigoPostal": "73301",
                }
            },
            "Mercancias": mercancias,
        },
    }  # fmt: skip


def build(data: dict):  # type: ignore[no-untyped-def]
    c, problems = load_invoice(data)
    assert c is not None, problems
    return c


def run_complement(
    invoice: Callable[[int], dict], labels: tuple[str, str, str], description: str
) -> int:
    """The three timed stages (build + seal, rules, validate_limits) on ``--invoices`` invoices
    made by ``invoice(i)``, every sealed document checked, a Markdown table printed."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--invoices", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    n = args.invoices
    csd = Csd.from_files(CSD_BASE.with_suffix(".cer"), CSD_BASE.with_suffix(".key"), "12345678a")
    datas = [invoice(i) for i in range(n)]
    completed = [complete(build(d)) for d in datas]
    # warm-up: catalogs, schema, XSLT compiled once per process (not part of the figures)
    validate_limits(completed[0])
    assert rules.validate(completed[0]) == []
    sealed: list[bytes] = [b""] * n

    def build_seal(i: int) -> None:
        sealed[i] = seal_invoice(build(datas[i]), csd)

    def check_rules(i: int) -> None:
        problems = rules.validate(completed[i])
        assert not problems, problems

    def check_limits(i: int) -> None:
        problems = validate_limits(completed[i])
        assert not problems, problems

    stages = list(zip(labels, (build_seal, check_rules, check_limits), strict=True))
    samples = measure(stages, n, args.rounds)
    for xml in sealed:
        assert verify_seal(xml) == [] and validate_xsd(xml) == []
    assert cadena_original(sealed[0]) == cadena_original_xslt(sealed[0])
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",)
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}, load {load}")  # fmt: skip
    print(
        f"# {n} invoices x {args.rounds} rounds, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )
    print("| stage | p25 | median | p95 |")
    print("| --- | --- | --- | --- |")
    for name, values in samples.items():
        q = statistics.quantiles(values, n=20)
        print(f"| {name} | {q[4] * 1e3:.2f} ms | **{statistics.median(values) * 1e3:.2f} ms** "
              f"| {q[18] * 1e3:.2f} ms |")  # fmt: skip
    return 0


def main() -> int:
    labels = (
        "build + seal (20 mercancías)",
        "rules.validate (CFDI 4.0 + CCE 2.0)",
        "validate_limits (XSD with cce20)",
    )
    return run_complement(invoice_data, labels, __doc__.splitlines()[0])


if __name__ == "__main__":
    raise SystemExit(main())
