"""Time per PDF: our render_pdf against satcfdi's PDF rendering (WeasyPrint), same invoices.

    python bench/bench_pdf.py [--rounds 40] [--satcfdi-rounds 3]

Invoices: the shared stamped sample (one concepto, a symbol that needs the fallback font), the
shared Pagos 2.0 sample (unstamped) and a 60-concepto invoice built from the stamped sample
(several pages). For each, wall time (min and median) and CPU time of this process (median),
after one warm-up render. satcfdi runs on the same XML in the same process.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pypdf

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from connector.cfdi.model import Comprobante, Concepto, ImpuestosConcepto, Traslado  # noqa: E402
from connector.cfdi.pdf import render_pdf  # noqa: E402
from connector.cfdi.xmlio import from_xml, to_xml  # noqa: E402

SHARED = Path(os.environ.get("CFDI_SHARED_DIR", REPO.parent / "shared"))
SAMPLES = SHARED / "samples"


def _sixty(base: Comprobante) -> Comprobante:
    conceptos = []
    for i in range(1, 61):
        price = Decimal(i) * 10 + Decimal("0.5")
        conceptos.append(
            Concepto(
                ClaveProdServ="01010101",
                NoIdentificacion=f"ART-{i:03d}",
                Cantidad=Decimal("1"),
                ClaveUnidad="H87",
                Unidad="Pieza",
                Descripcion=f"Artículo número {i:03d} con acentos, ñandú y una descripción",
                ValorUnitario=price,
                Importe=price,
                ObjetoImp="02",
                Impuestos=ImpuestosConcepto(
                    Traslados=[
                        Traslado(
                            Base=price,
                            Impuesto="002",
                            TipoFactor="Tasa",
                            TasaOCuota=Decimal("0.160000"),
                            Importe=(price * Decimal("0.16")).quantize(Decimal("0.01")),
                        )
                    ]
                ),
            )
        )
    return base.model_copy(update={"Serie": "F", "Folio": "60", "Conceptos": conceptos})


def _time(fn: Callable[[], object], rounds: int) -> tuple[float, float, float]:
    fn()  # warm-up: fonts parsed, caches filled
    walls, cpus = [], []
    for _ in range(rounds):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        cpus.append(time.process_time() - c0)
        walls.append(time.perf_counter() - w0)
    return min(walls) * 1000, statistics.median(walls) * 1000, statistics.median(cpus) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--satcfdi-rounds", type=int, default=3)
    args = parser.parse_args()

    stamped = from_xml((SAMPLES / "cfdi40-valid_CfdiUtils.xml").read_bytes())
    pagos = from_xml((SAMPLES / "cfdi40-pago20-valid_CfdiUtils.xml").read_bytes())
    sixty = _sixty(stamped)
    cases = [
        (
            "stamped sample (1 concepto)",
            stamped,
            (SAMPLES / "cfdi40-valid_CfdiUtils.xml").read_bytes(),
        ),
        ("Pagos 2.0 sample", pagos, (SAMPLES / "cfdi40-pago20-valid_CfdiUtils.xml").read_bytes()),
        ("60 conceptos (stamped)", sixty, to_xml(sixty)),
    ]
    print(
        f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, {platform.machine()}"
    )
    try:
        from satcfdi.cfdi import CFDI
        from satcfdi.render import pdf_bytes
    except Exception as exc:  # noqa: BLE001 - the comparison is optional
        print(f"satcfdi not available ({exc!r}): our figures only")
        CFDI = pdf_bytes = None  # noqa: N806

    print(
        f"{'invoice':30} {'ours min':>9} {'ours med':>9} {'ours cpu':>9} "
        f"{'satcfdi min':>12} {'satcfdi cpu':>12} {'wall ratio':>10} {'cpu ratio':>9}"
    )
    for name, c, xml in cases:
        pages = len(pypdf.PdfReader(io.BytesIO(render_pdf(c))).pages)
        o_min, o_med, o_cpu = _time(lambda c=c: render_pdf(c), args.rounds)
        s_text, s_cpu_text, ratio, cpu_ratio = "n/a", "", "", ""
        if CFDI is not None:
            try:
                import tempfile

                with tempfile.NamedTemporaryFile(suffix=".xml", delete=False) as fh:
                    fh.write(xml)
                sat = CFDI.from_file(fh.name)
                os.unlink(fh.name)
                s_min, _, s_cpu = _time(lambda sat=sat: pdf_bytes(sat), args.satcfdi_rounds)
                s_text, s_cpu_text = f"{s_min:10.1f}ms", f"{s_cpu:10.1f}ms"
                ratio = f"1/{s_min / o_min:.0f}"
                cpu_ratio = f"1/{s_cpu / o_cpu:.0f}"
            except Exception as exc:  # noqa: BLE001
                s_text = f"failed: {exc.__class__.__name__}"
        print(
            f"{name:30} {o_min:7.1f}ms {o_med:7.1f}ms {o_cpu:7.1f}ms {s_text:>12} "
            f"{s_cpu_text:>12} {ratio:>10} {cpu_ratio:>9}   ({pages} page(s))"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
