"""Hypothesis strategies that generate CFDI 4.0 ``Comprobante`` instances of many shapes.

Shared by every area's tests: import ``comprobantes()`` (amounts completed with
``amounts.complete``, ready to build/seal) or ``comprobantes_raw()`` (derived amounts left
``None``, what an ERP record maps to). Shapes covered: several conceptos; IVA 16/8/0/exento; IEPS;
retenciones ISR/IVA; discounts; USD with TipoCambio; público en general (XAXX010101000 +
InformacionGlobal); tipo E with CfdiRelacionados; tipo T; Pagos 2.0 (tipo P); ACuentaTerceros,
InformacionAduanera, CuentaPredial, Parte; free text with accents, symbols and odd whitespace.

Every generated invoice is issued by EKU9003173C9 (SAT's test CSD) and dated while that CSD is
valid, so it can be sealed with the shared test CSD. Values respect SAT's XSD patterns and
catalogs; the business rules are satisfied as far as a generator reasonably can.
"""

from __future__ import annotations

import os
from decimal import ROUND_DOWN, ROUND_UP, Decimal
from pathlib import Path

from hypothesis import strategies as st

from connector.cfdi.model import (
    ACuentaTerceros,
    CfdiRelacionados,
    Comprobante,
    Concepto,
    DoctoRelacionado,
    Emisor,
    ImpuestosConcepto,
    ImpuestosDR,
    InformacionGlobal,
    Pago,
    Pagos,
    Parte,
    Receptor,
    Retencion,
    RetencionDR,
    Traslado,
    TrasladoDR,
)

__all__ = [
    "SAMPLES",
    "SHARED",
    "TESTCSD",
    "shared_test_csd",
    "EMISOR",
    "comprobantes",
    "comprobantes_raw",
    "conceptos",
    "fechas",
    "free_text",
]

# Same resolution as tests/conftest.py (importable from here without relying on sys.path).
SHARED = Path(
    os.environ.get("CFDI_SHARED_DIR", Path(__file__).resolve().parents[2].parent / "shared")
).resolve()
TESTCSD = SHARED / "testcsd"
SAMPLES = SHARED / "samples"
CSD_PASSWORD = "12345678a"

EMISOR = Emisor(Rfc="EKU9003173C9", Nombre="ESCUELA KEMPER URGATE", RegimenFiscal="601")

RECEPTORES = [
    Receptor(
        Rfc="MCI7306249Y1",
        Nombre="MUNICIPIO DE CUAUTITLAN IZCALLI",
        DomicilioFiscalReceptor="54700",
        RegimenFiscalReceptor="603",
        UsoCFDI="G03",
    ),
    Receptor(
        Rfc="COSC8001137NA",
        Nombre="CARLOS CORTES SOTO",
        DomicilioFiscalReceptor="52000",
        RegimenFiscalReceptor="605",
        UsoCFDI="S01",
    ),
    Receptor(
        Rfc="URE180429TM6",
        Nombre="UNIVERSIDAD ROBOTICA ESPAÑOLA",
        DomicilioFiscalReceptor="86991",
        RegimenFiscalReceptor="601",
        UsoCFDI="G01",
    ),
]

# c_UsoCFDI: G02 (devoluciones, descuentos o bonificaciones) is not for régimen 605 (CFDI40161)
RECEPTORES_G02 = [r for r in RECEPTORES if r.RegimenFiscalReceptor != "605"]

LUGARES = ["86000", "52000", "06600", "44100", "64000"]
PRODUCTOS = [("01010101", "H87"), ("52161557", "H87"), ("43211503", "H87"), ("81111500", "E48")]
UNIDADES_TEXTO = ["PIEZA", "Servicio", "Kilo gramo", None]

IVA16 = Traslado(Impuesto="002", TipoFactor="Tasa", TasaOCuota=Decimal("0.160000"))
IVA8 = Traslado(Impuesto="002", TipoFactor="Tasa", TasaOCuota=Decimal("0.080000"))
IVA0 = Traslado(Impuesto="002", TipoFactor="Tasa", TasaOCuota=Decimal("0.000000"))
IVA_EXENTO = Traslado(Impuesto="002", TipoFactor="Exento")
IEPS = Traslado(Impuesto="003", TipoFactor="Tasa", TasaOCuota=Decimal("0.265000"))
RET_ISR10 = Retencion(
    Impuesto="001", TipoFactor="Tasa", TasaOCuota=Decimal("0.100000")
)  # honorarios
RET_IVA = Retencion(Impuesto="002", TipoFactor="Tasa", TasaOCuota=Decimal("0.106667"))
RET_ISR_RESICO = Retencion(Impuesto="001", TipoFactor="Tasa", TasaOCuota=Decimal("0.012500"))


def free_text(min_size: int = 1, max_size: int = 40) -> st.SearchStrategy[str]:
    """Text SAT accepts ([^|]): accents, XML specials, non-breaking and double spaces, tabs."""
    alphabet = st.one_of(
        st.sampled_from(list("ABCXYZabcxyz0123456789 .,-_/#()&<>\"'ñÑáéíóúü")),
        st.sampled_from([" ", "\t", "\n", "\r", "\xa0", "\u2003", "€", "⏻", "😀"]),
        st.characters(
            blacklist_categories=("Cs", "Cc", "Cn", "Co"),
            blacklist_characters="|\ufffe\uffff",
        ),
    )
    return st.text(alphabet, min_size=min_size, max_size=max_size).filter(
        lambda s: s.strip(" \t\r\n") != ""
    )


@st.composite
def fechas(draw: st.DrawFn) -> str:
    """A Fecha (local time) while the test CSD is valid (2023-05-19 … 2027-05-17)."""
    year = draw(st.integers(2024, 2026))
    month = draw(st.integers(1, 12))
    day = draw(st.integers(1, 28))
    h, m, s = draw(st.integers(0, 23)), draw(st.integers(0, 59)), draw(st.integers(0, 59))
    return f"{year:04d}-{month:02d}-{day:02d}T{h:02d}:{m:02d}:{s:02d}"


def _money(min_value: str, max_value: str, places: int = 2) -> st.SearchStrategy[Decimal]:
    return st.decimals(
        min_value=Decimal(min_value),
        max_value=Decimal(max_value),
        places=places,
        allow_nan=False,
        allow_infinity=False,
    )


_TAX_SETS = [
    ([IVA16], []),
    ([IVA8], []),
    ([IVA0], []),
    ([IVA_EXENTO], []),
    ([IEPS, IVA16], []),
    ([IVA16], [RET_ISR10, RET_IVA]),
    ([IVA16], [RET_ISR_RESICO]),
]


@st.composite
def conceptos(draw: st.DrawFn, *, taxes: bool = True, descuentos: bool = True) -> Concepto:
    clave, unidad = draw(st.sampled_from(PRODUCTOS))
    cantidad = draw(
        st.one_of(
            st.integers(1, 50).map(Decimal),
            _money("0.001", "100", places=3),
            _money("0.000001", "2", places=6),
        ).filter(lambda d: d > 0)
    )
    valor = draw(st.one_of(_money("0.01", "50000"), _money("0.000001", "10", places=6)))
    if cantidad * valor < 1:  # keep every tax Base above SAT's minimum (0.000001)
        valor = (Decimal(1) / cantidad).quantize(Decimal("0.000001"), rounding=ROUND_UP)
    importe_aprox = (cantidad * valor).quantize(Decimal("0.01"), rounding=ROUND_DOWN)
    descuento = None
    if descuentos and importe_aprox > 0 and draw(st.booleans()):
        pct = draw(st.sampled_from([Decimal("0.05"), Decimal("0.10"), Decimal("0.25")]))
        descuento = (importe_aprox * pct).quantize(Decimal("0.01"), rounding=ROUND_DOWN)
    objeto = "01"
    impuestos = None
    if taxes and draw(st.integers(0, 5)) > 0:
        traslados, retenciones = draw(st.sampled_from(_TAX_SETS))
        objeto = "02"
        impuestos = ImpuestosConcepto(
            Traslados=[t.model_copy() for t in traslados],
            Retenciones=[r.model_copy() for r in retenciones],
        )
    acuenta = None
    if draw(st.integers(0, 9)) == 0:
        acuenta = ACuentaTerceros(
            RfcACuentaTerceros="CACX7605101P8",
            NombreACuentaTerceros="XOCHILT CASAS CHAVEZ",
            RegimenFiscalACuentaTerceros="612",
            DomicilioFiscalACuentaTerceros="10740",
        )
    aduana = draw(
        st.lists(st.sampled_from(["23  47  3807  3002563", "24  16  1721  4001234"]), max_size=1)
    )
    predial = draw(st.lists(st.sampled_from(["1234567890", "CP000123"]), max_size=1))
    partes = []
    if draw(st.integers(0, 14)) == 0:  # rare: a concepto made of parts (fast cadena → XSLT)
        partes = [
            Parte(
                ClaveProdServ=clave,
                Cantidad=Decimal(draw(st.integers(1, 5))),
                Unidad=draw(st.none() | st.just("Pieza")),
                Descripcion=draw(free_text(1, 30)),
                InformacionAduanera=aduana,
            )
        ]
    return Concepto(
        ClaveProdServ=clave,
        NoIdentificacion=draw(st.none() | free_text(1, 20)),
        Cantidad=cantidad,
        ClaveUnidad=unidad,
        Unidad=draw(st.sampled_from(UNIDADES_TEXTO)),
        Descripcion=draw(free_text(1, 60)),
        ValorUnitario=valor,
        Descuento=descuento,
        ObjetoImp=objeto,
        Impuestos=impuestos,
        ACuentaTerceros=acuenta,
        InformacionAduanera=aduana,
        CuentaPredial=predial,
        Parte=partes,
    )


def _uuid() -> st.SearchStrategy[str]:
    return st.uuids().map(lambda u: str(u).upper())


@st.composite
def _ingreso(draw: st.DrawFn) -> Comprobante:
    usd = draw(st.booleans())
    ppd = draw(st.booleans())
    return Comprobante(
        Serie=draw(st.none() | st.sampled_from(["A", "FAC", "F-2025"])),
        Folio=draw(st.none() | st.integers(1, 10**9).map(str)),
        Fecha=draw(fechas()),
        FormaPago="99" if ppd else draw(st.sampled_from(["01", "03", "04", "28"])),
        CondicionesDePago=draw(st.none() | free_text(1, 30)),
        Moneda="USD" if usd else "MXN",
        TipoCambio=draw(_money("15", "22", places=4)) if usd else None,
        TipoDeComprobante="I",
        Exportacion="01",
        MetodoPago="PPD" if ppd else "PUE",
        LugarExpedicion=draw(st.sampled_from(LUGARES)),
        Emisor=EMISOR,
        Receptor=draw(st.sampled_from(RECEPTORES)),
        Conceptos=draw(st.lists(conceptos(), min_size=1, max_size=6)),
    )


@st.composite
def _publico_general(draw: st.DrawFn) -> Comprobante:
    lugar = draw(st.sampled_from(LUGARES))
    fecha = draw(fechas())
    return Comprobante(
        Serie="PG",
        Folio=str(draw(st.integers(1, 99999))),
        Fecha=fecha,
        FormaPago="01",
        Moneda="MXN",
        TipoDeComprobante="I",
        Exportacion="01",
        MetodoPago="PUE",
        LugarExpedicion=lugar,
        InformacionGlobal=InformacionGlobal(
            Periodicidad=draw(st.sampled_from(["01", "02", "04"])),
            Meses=draw(st.sampled_from([f"{m:02d}" for m in range(1, 13)])),
            Anio=int(fecha[:4]) - draw(st.integers(0, 1)),  # CFDI40136: not after Fecha's year
        ),
        Emisor=EMISOR,
        Receptor=Receptor(
            Rfc="XAXX010101000",
            Nombre="PUBLICO EN GENERAL",
            DomicilioFiscalReceptor=lugar,
            RegimenFiscalReceptor="616",
            UsoCFDI="S01",
        ),
        Conceptos=draw(st.lists(conceptos(descuentos=False), min_size=1, max_size=4)),
    )


@st.composite
def _egreso(draw: st.DrawFn) -> Comprobante:
    return Comprobante(
        Serie="NC",
        Folio=str(draw(st.integers(1, 99999))),
        Fecha=draw(fechas()),
        FormaPago=draw(st.sampled_from(["01", "03", "15"])),
        Moneda="MXN",
        TipoDeComprobante="E",
        Exportacion="01",
        MetodoPago="PUE",
        LugarExpedicion=draw(st.sampled_from(LUGARES)),
        CfdiRelacionados=[
            CfdiRelacionados(
                TipoRelacion=draw(st.sampled_from(["01", "03"])),
                UUIDs=draw(st.lists(_uuid(), min_size=1, max_size=3)),
            )
        ],
        Emisor=EMISOR,
        Receptor=draw(st.sampled_from(RECEPTORES_G02)).model_copy(update={"UsoCFDI": "G02"}),
        Conceptos=[
            Concepto(
                ClaveProdServ="84111506",
                Cantidad=Decimal("1"),
                ClaveUnidad="ACT",
                Descripcion=draw(free_text(1, 40)),
                ValorUnitario=draw(_money("1", "9999")),
                ObjetoImp="02",
                Impuestos=ImpuestosConcepto(Traslados=[IVA16.model_copy()]),
            )
        ],
    )


@st.composite
def _traslado(draw: st.DrawFn) -> Comprobante:
    receptor = draw(st.sampled_from(RECEPTORES)).model_copy(update={"UsoCFDI": "S01"})
    return Comprobante(
        Serie="T",
        Folio=str(draw(st.integers(1, 99999))),
        Fecha=draw(fechas()),
        Moneda="XXX",
        TipoDeComprobante="T",
        Exportacion="01",
        LugarExpedicion=draw(st.sampled_from(LUGARES)),
        Emisor=EMISOR,
        Receptor=receptor,
        Conceptos=[
            Concepto(
                ClaveProdServ=clave,
                Cantidad=Decimal(draw(st.integers(1, 100))),
                ClaveUnidad=unidad,
                Descripcion=draw(free_text(1, 40)),
                ValorUnitario=Decimal("0"),
                ObjetoImp="01",
            )
            for clave, unidad in draw(st.lists(st.sampled_from(PRODUCTOS), min_size=1, max_size=3))
        ],
    )


@st.composite
def _docto(draw: st.DrawFn) -> DoctoRelacionado:
    saldo = draw(_money("100", "100000"))
    pagado = draw(_money("1", str(saldo)))
    kind = draw(st.sampled_from(["iva16", "iva16ret", "exento", "none"]))
    if kind == "none":
        return DoctoRelacionado(
            IdDocumento=draw(_uuid()),
            MonedaDR="MXN",
            EquivalenciaDR=Decimal("1"),
            NumParcialidad=draw(st.integers(1, 12)),
            ImpSaldoAnt=saldo,
            ImpPagado=pagado,
            ImpSaldoInsoluto=saldo - pagado,
            ObjetoImpDR="01",
        )
    if kind == "exento":
        impuestos = ImpuestosDR(
            TrasladosDR=[TrasladoDR(BaseDR=pagado, ImpuestoDR="002", TipoFactorDR="Exento")]
        )
    else:
        base = (pagado / Decimal("1.16")).quantize(Decimal("0.01"))
        retenciones = []
        if kind == "iva16ret":
            retenciones = [
                RetencionDR(
                    BaseDR=base,
                    ImpuestoDR="001",
                    TipoFactorDR="Tasa",
                    TasaOCuotaDR=Decimal("0.100000"),
                    ImporteDR=(base * Decimal("0.1")).quantize(Decimal("0.01")),
                )
            ]
        impuestos = ImpuestosDR(
            RetencionesDR=retenciones,
            TrasladosDR=[
                TrasladoDR(
                    BaseDR=base,
                    ImpuestoDR="002",
                    TipoFactorDR="Tasa",
                    TasaOCuotaDR=Decimal("0.160000"),
                )
            ],
        )
    return DoctoRelacionado(
        IdDocumento=draw(_uuid()),
        Serie=draw(st.none() | st.just("A")),
        Folio=draw(st.none() | st.integers(1, 9999).map(str)),
        MonedaDR="MXN",
        EquivalenciaDR=Decimal("1"),
        NumParcialidad=draw(st.integers(1, 12)),
        ImpSaldoAnt=saldo,
        ImpPagado=pagado,
        ImpSaldoInsoluto=saldo - pagado,
        ObjetoImpDR="02",
        ImpuestosDR=impuestos,
    )


@st.composite
def _pago(draw: st.DrawFn) -> Comprobante:
    pagos = []
    for _ in range(draw(st.integers(1, 2))):
        doctos = draw(st.lists(_docto(), min_size=1, max_size=3))
        fecha = draw(fechas())
        pagos.append(
            Pago(
                FechaPago=fecha,
                FormaDePagoP=draw(st.sampled_from(["01", "03"])),
                MonedaP="MXN",
                TipoCambioP=Decimal("1"),
                Monto=sum((d.ImpPagado for d in doctos), Decimal("0")),
                NumOperacion=draw(st.none() | st.integers(1, 10**8).map(str)),
                DoctoRelacionado=doctos,
            )
        )
    return Comprobante(
        Serie="P",
        Folio=str(draw(st.integers(1, 99999))),
        Fecha=draw(fechas()),
        Moneda="XXX",
        TipoDeComprobante="P",
        Exportacion="01",
        LugarExpedicion=draw(st.sampled_from(LUGARES)),
        Emisor=EMISOR,
        Receptor=draw(st.sampled_from(RECEPTORES)).model_copy(update={"UsoCFDI": "CP01"}),
        Conceptos=[
            Concepto(
                ClaveProdServ="84111506",
                Cantidad=Decimal("1"),
                ClaveUnidad="ACT",
                Descripcion="Pago",
                ValorUnitario=Decimal("0"),
                ObjetoImp="01",
            )
        ],
        Pagos=Pagos(Pago=pagos),
    )


def comprobantes_raw() -> st.SearchStrategy[Comprobante]:
    """Invoices as an ERP record maps to them: derived amounts may be ``None``."""
    return st.one_of(_ingreso(), _publico_general(), _egreso(), _traslado(), _pago())


def _complete(c: Comprobante) -> Comprobante:
    from connector.cfdi.amounts import complete

    return complete(c)


def comprobantes() -> st.SearchStrategy[Comprobante]:
    """Invoices with every derived amount computed (``amounts.complete``)."""
    return comprobantes_raw().map(_complete)


_CSD_CACHE: list[object] = []


def shared_test_csd():  # noqa: ANN201 - returns connector.cfdi.csd.Csd (imported lazily)
    """SAT's valid test CSD for EKU9003173C9, loaded once per process."""
    if not _CSD_CACHE:
        from connector.cfdi.csd import Csd

        base = TESTCSD / "eku9003173c9_csd_2023_30001000000500003416"
        _CSD_CACHE.append(
            Csd.from_files(base.with_suffix(".cer"), base.with_suffix(".key"), CSD_PASSWORD)
        )
    return _CSD_CACHE[0]
