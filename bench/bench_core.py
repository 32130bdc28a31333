"""CFDI core benchmark: build + seal + serialize (+ XSD validation) per invoice, vs satcfdi.

Run from the repository root (satcfdi comes with ``pip install -e '.[bench]'``):

    python bench/bench_core.py --invoices 300 --rounds 3

Every invoice has 5 conceptos with IVA 16 %, different folios and amounts. Both libraries seal
with SAT's test CSD (EKU9003173C9) in the same process and run; the figure is the median time
per invoice. The two "ours" lines:

* same job as satcfdi: plain data → typed model (shape checked) → derived amounts → cadena →
  RSA signature → XML bytes. satcfdi's ``Comprobante(...)`` + ``sign`` + ``xml_bytes`` does the
  same (it computes the amounts, builds the XML, runs SAT's XSLT for the cadena, signs) and
  validates nothing (``xml_bytes(validate=False)`` is its default);
* with XSD validation: the same plus XSD validation of the sealed bytes (what the PAC would
  reject). satcfdi's own validation, ``xml_bytes(validate=True)`` (SAT's full XSD, with the
  catalog enumerations), is timed too, on ``--validated`` invoices (one round: it costs ~100×
  its build + sign), for the comparison with validation on both sides.

Every output of every line is checked after the timing (our seals verify with SAT's XSLT cadena
algorithm on the parsed XML, our XML is XSD-valid and reads back into the same model, satcfdi's
seal verifies too) so a fast but wrong result cannot pass unnoticed. Nothing is cached across
invoices: each call starts from the invoice's plain data.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from connector.cfdi import amounts  # noqa: E402
from connector.cfdi.cadena import cadena_original  # noqa: E402
from connector.cfdi.csd import Csd  # noqa: E402
from connector.cfdi.model import Comprobante, load_invoice  # noqa: E402
from connector.cfdi.seal import seal_invoice, seal_tree, verify_seal  # noqa: E402
from connector.cfdi.xmlio import (  # noqa: E402
    build_tree,
    from_xml,
    parse_xml_bytes,
    serialize,
    validate_limits,
    validate_xsd,
    xml_and_cadena,
)

SAME = "ours: same job as satcfdi (dict->sealed bytes)"
WITH_XSD = "ours: same + XSD validation of the bytes"
SATCFDI = "satcfdi: build+sign+xml_bytes"
SATCFDI_XSD = "satcfdi: same + xml_bytes(validate=True) (XSD)"
SHARED = Path(os.environ.get("CFDI_SHARED_DIR", REPO.parent / "shared"))
CSD_BASE = SHARED / "testcsd" / "eku9003173c9_csd_2023_30001000000500003416"
PASSWORD = "12345678a"


def invoice_data(i: int) -> dict:
    """Plain data for invoice i, as a mapper would hand it over (derived amounts missing)."""
    return {
        "Serie": "A",
        "Folio": str(i),
        "Fecha": "2025-06-02T10:15:00",
        "FormaPago": "03",
        "Moneda": "MXN",
        "TipoDeComprobante": "I",
        "Exportacion": "01",
        "MetodoPago": "PUE",
        "LugarExpedicion": "86000",
        "Emisor": {
            "Rfc": "EKU9003173C9",
            "Nombre": "ESCUELA KEMPER URGATE",
            "RegimenFiscal": "601",
        },
        "Receptor": {
            "Rfc": "MCI7306249Y1",
            "Nombre": "MUNICIPIO DE CUAUTITLAN IZCALLI",
            "DomicilioFiscalReceptor": "54700",
            "RegimenFiscalReceptor": "603",
            "UsoCFDI": "G03",
        },
        "Conceptos": [
            {
                "ClaveProdServ": "43211503",
                "NoIdentificacion": f"ART-{k}",
                "Cantidad": str(k + 1),
                "ClaveUnidad": "H87",
                "Unidad": "Pieza",
                "Descripcion": f"Artículo número {k} de la factura {i}",
                "ValorUnitario": str(Decimal("100.50") + k + i % 97),
                "ObjetoImp": "02",
                "Impuestos": {
                    "Traslados": [
                        {"Impuesto": "002", "TipoFactor": "Tasa", "TasaOCuota": "0.160000"}
                    ]
                },
            }
            for k in range(5)
        ],
    }


def ours_build(data: dict) -> Comprobante:
    c, problems = load_invoice(data)
    assert c is not None, problems
    return c


def satcfdi_invoice(data: dict, signer: object, *, validate: bool = False) -> bytes:
    from satcfdi.create.cfd import cfdi40

    inv = cfdi40.Comprobante(
        emisor=cfdi40.Emisor(
            rfc=data["Emisor"]["Rfc"],
            nombre=data["Emisor"]["Nombre"],
            regimen_fiscal=data["Emisor"]["RegimenFiscal"],
        ),
        lugar_expedicion=data["LugarExpedicion"],
        receptor=cfdi40.Receptor(
            rfc=data["Receptor"]["Rfc"],
            nombre=data["Receptor"]["Nombre"],
            uso_cfdi=data["Receptor"]["UsoCFDI"],
            domicilio_fiscal_receptor=data["Receptor"]["DomicilioFiscalReceptor"],
            regimen_fiscal_receptor=data["Receptor"]["RegimenFiscalReceptor"],
        ),
        metodo_pago=data["MetodoPago"],
        forma_pago=data["FormaPago"],
        serie=data["Serie"],
        folio=data["Folio"],
        fecha=datetime.fromisoformat(data["Fecha"]),
        conceptos=[
            cfdi40.Concepto(
                clave_prod_serv=k["ClaveProdServ"],
                no_identificacion=k["NoIdentificacion"],
                cantidad=Decimal(k["Cantidad"]),
                clave_unidad=k["ClaveUnidad"],
                unidad=k["Unidad"],
                descripcion=k["Descripcion"],
                valor_unitario=Decimal(k["ValorUnitario"]),
                objeto_imp=k["ObjetoImp"],
                impuestos=cfdi40.Impuestos(
                    traslados=cfdi40.Traslado(
                        impuesto="002", tipo_factor="Tasa", tasa_o_cuota=Decimal("0.160000")
                    )
                ),
            )
            for k in data["Conceptos"]
        ],
    )
    inv.sign(signer)
    return inv.xml_bytes(validate=validate)


def measure(
    stages: list[tuple[str, Callable[[int], object]]], n: int, rounds: int
) -> dict[str, list[float]]:
    """Seconds per call for each stage. For every invoice all stages run back to back, so each
    contender sees the same machine load (the machine is shared with other work)."""
    samples: dict[str, list[float]] = {name: [] for name, _ in stages}
    clock = time.perf_counter
    for _ in range(rounds):
        gc.collect()
        for i in range(n):
            for name, fn in stages:
                t0 = clock()
                fn(i)
                samples[name].append(clock() - t0)
    return samples


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--invoices", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument(
        "--validated", type=int, default=50, help="invoices for satcfdi's validate=True line"
    )
    args = ap.parse_args()
    n, rounds = args.invoices, args.rounds

    t0 = time.perf_counter()
    csd = Csd.from_files(CSD_BASE.with_suffix(".cer"), CSD_BASE.with_suffix(".key"), PASSWORD)
    load_csd = time.perf_counter() - t0
    t0 = time.perf_counter()
    validate_xsd(build_tree(amounts.complete(ours_build(invoice_data(0)))))
    first_xsd = time.perf_counter() - t0

    datas = [invoice_data(i) for i in range(n)]
    models = [ours_build(d) for d in datas]
    completed = [amounts.complete(c) for c in models]
    sealed_roots = [seal_tree(c, csd) for c in completed]
    sealed_bytes = [serialize(r) for r in sealed_roots]
    out_same: list[bytes] = [b""] * n
    out_xsd: list[bytes] = [b""] * n
    out_sat: list[bytes] = [b""] * n

    def ours_same_job(i: int) -> None:
        out_same[i] = seal_invoice(ours_build(datas[i]), csd)

    def ours_with_xsd(i: int) -> None:
        data = seal_invoice(ours_build(datas[i]), csd)
        problems = validate_xsd(data)
        assert not problems, problems
        out_xsd[i] = data

    rows: list[tuple[str, float, float, float]] = []
    stages: list[tuple[str, Callable[[int], object]]] = [
        (SAME, ours_same_job),
        (WITH_XSD, ours_with_xsd),
        ("  stage: load_invoice (dict -> model)", lambda i: ours_build(datas[i])),
        ("  stage: amounts.complete", lambda i: amounts.complete(models[i])),
        (
            "  stage: xml_and_cadena (model -> XML text + cadena)",
            lambda i: xml_and_cadena(completed[i]),
        ),
        ("  stage: cadena_original (fast, model)", lambda i: cadena_original(completed[i])),
        ("  stage: cadena_original (fast, tree)", lambda i: cadena_original(sealed_roots[i])),
        ("  stage: RSA-2048 SHA-256 sign", lambda i: csd.sign(b"||4.0|x||" + str(i).encode())),
        ("  stage: validate_xsd (bytes: parse + XSD)", lambda i: validate_xsd(sealed_bytes[i])),
        ("  stage: validate_xsd (tree)", lambda i: validate_xsd(sealed_roots[i])),
        (
            "  stage: validate_limits (model -> XML text -> XSD, before sealing)",
            lambda i: validate_limits(completed[i]),
        ),
        ("  stage: parse_xml_bytes", lambda i: parse_xml_bytes(sealed_bytes[i])),
        ("  stage: build_tree (model -> lxml)", lambda i: build_tree(completed[i])),
        ("  stage: serialize (tree -> bytes)", lambda i: serialize(sealed_roots[i])),
    ]
    try:
        from satcfdi.models import Signer

        signer = Signer.load(
            certificate=CSD_BASE.with_suffix(".cer").read_bytes(),
            key=CSD_BASE.with_suffix(".key").read_bytes(),
            password=PASSWORD,
        )

        def satcfdi_job(i: int) -> None:
            out_sat[i] = satcfdi_invoice(datas[i], signer)

        stages.insert(2, (SATCFDI, satcfdi_job))
    except ImportError:
        print("satcfdi not installed: pip install -e '.[bench]'", file=sys.stderr)

    samples = measure(stages, n, rounds)
    if SATCFDI in samples:
        # satcfdi's own XSD validation costs ~100x its build+sign, so it is timed on a subset
        # (one round) instead of inside the loop above.
        k = min(n, args.validated)
        out_sat_xsd: list[bytes] = []
        samples[SATCFDI_XSD] = measure(
            [
                (
                    SATCFDI_XSD,
                    lambda i: out_sat_xsd.append(satcfdi_invoice(datas[i], signer, validate=True)),
                )
            ],  # fmt: skip
            k,
            1,
        )[SATCFDI_XSD]
        assert all(verify_seal(x) == [] for x in out_sat_xsd)
    # paired: the same invoice, back to back (less sensitive to the load drifting during a run)
    paired: dict[str, float] = {}
    if SATCFDI in samples:
        for name in (SAME, WITH_XSD):
            paired[name] = statistics.median(
                o / s for o, s in zip(samples[name], samples[SATCFDI], strict=True)
            )
    for name, values in samples.items():
        values.sort()
        rows.append(
            (
                name,
                values[len(values) // 4],
                statistics.median(values),
                values[int(len(values) * 0.95)],
            )
        )

    # correctness of everything that was measured (every output, after the timing)
    for i in range(n):
        assert out_same[i] == out_xsd[i], i
        assert verify_seal(out_same[i]) == [], i
        assert validate_xsd(out_same[i]) == [], i
        back = from_xml(out_same[i])  # reads back into the model it was made from
        assert back == completed[i].model_copy(
            update={
                "NoCertificado": csd.no_certificado,
                "Certificado": csd.certificado_b64,
                "Sello": back.Sello,
            }
        ), i
        if out_sat[i]:
            assert verify_seal(out_sat[i]) == [], i
    loadavg = os.getloadavg() if hasattr(os, "getloadavg") else None

    print(
        f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, {platform.machine()}"
    )
    print(f"invoices: {n} × {rounds} rounds, 5 conceptos each; load average at the end {loadavg}")
    print(
        f"one-time: CSD load {load_csd * 1000:.1f} ms; first XSD compile+validate {first_xsd * 1000:.0f} ms"
    )
    print(f"{'what':56s} {'p25 ms':>8s} {'median ms':>10s} {'p95 ms':>8s}")
    for name, p25, med, p95 in rows:
        print(f"{name:56s} {p25 * 1000:8.3f} {med * 1000:10.3f} {p95 * 1000:8.3f}")
    byname = {name: med for name, _, med, _ in rows}
    sat = byname.get(SATCFDI)
    if sat:
        print(
            f"ratio ours/satcfdi (median): same job {byname[SAME] / sat:.2f}; "
            f"with XSD validation {byname[WITH_XSD] / sat:.2f} (target: <= 0.50)"
        )
        print(
            f"median of per-invoice ratios: same job {paired[SAME]:.2f}; "
            f"with XSD validation {paired[WITH_XSD]:.2f}"
        )
        print(
            f"ratio with XSD validation on both sides (ours + validate_xsd vs satcfdi "
            f"validate=True): {byname[WITH_XSD] / byname[SATCFDI_XSD]:.4f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
