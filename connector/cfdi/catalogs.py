"""SAT catalogs for CFDI 4.0, read once from SAT's ``catCFDI.xsd`` and cached on disk.

``catalogs()`` returns one frozen :class:`Catalogs` per process. The first call in a process
loads a compact JSON cache from ``$XDG_CACHE_HOME/cfdi-connector/`` (default ``~/.cache``)
keyed by the XSD's path, size and mtime; when there is no usable cache it parses the 5 MB XSD
(``xs:enumeration`` values of each ``c_*`` simple type) and writes the cache. An unwritable cache
directory is not an error: the catalogs are then parsed on every start. JSON rather than pickle
so a tampered cache file cannot execute code.

The XSD has only the codes. The columns SAT publishes in its Excel catalog (``catCFDI_V_4``) but
not in the XSD are small hand-made tables below, each with its source.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

from lxml import etree

CATALOG_XSD = Path(__file__).resolve().parent / "sat" / "cfd" / "catalogos" / "catCFDI.xsd"
CACHE_FORMAT = 1

# The c_* simple types we read from catCFDI.xsd, and the attribute of Catalogs that holds each.
_XSD_TYPES: dict[str, str] = {
    "c_FormaPago": "FormaPago",
    "c_Moneda": "Moneda",
    "c_TipoDeComprobante": "TipoDeComprobante",
    "c_Exportacion": "Exportacion",
    "c_MetodoPago": "MetodoPago",
    "c_CodigoPostal": "CodigoPostal",
    "c_Periodicidad": "Periodicidad",
    "c_Meses": "Meses",
    "c_TipoRelacion": "TipoRelacion",
    "c_RegimenFiscal": "RegimenFiscal",
    "c_Pais": "Pais",
    "c_UsoCFDI": "UsoCFDI",
    "c_ClaveProdServ": "ClaveProdServ",
    "c_ClaveUnidad": "ClaveUnidad",
    "c_ObjetoImp": "ObjetoImp",
    "c_Impuesto": "Impuesto",
    "c_TipoFactor": "TipoFactor",
    "c_TasaOCuota": "TasaOCuotaXsd",  # absent from current catCFDI.xsd; kept if SAT adds it
}

# --- Hand-made tables (the XSD has no such columns) ---------------------------------------------


def _codes(text: str) -> list[str]:
    return text.split()


# ISO 4217 minor units ("Decimales" column of SAT's c_Moneda). Any code not listed: 2.
# Source: ISO 4217 list one (SIX Group), which is what SAT's c_Moneda "Decimales" column copies.
CURRENCY_DECIMALS: Mapping[str, int] = MappingProxyType(
    {
        **dict.fromkeys(
            _codes("BIF BYR CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"), 0
        ),
        **dict.fromkeys(_codes("XAG XAU XBA XBB XBC XBD XDR XPD XPT XSU XTS XUA XXX"), 0),
        **dict.fromkeys(_codes("BHD IQD JOD KWD LYD OMR TND"), 3),
        "CLF": 4,
        "UYW": 4,
    }
)
DEFAULT_DECIMALS = 2

# c_RegimenFiscal columns "Física" / "Moral" (SAT catCFDI_V_4, hoja c_RegimenFiscal).
# An RFC of 13 characters is a persona física, 12 a persona moral. 609 (Consolidación, no longer
# in force) appears with either column in published copies, so it is accepted for both.
REGIMEN_FISICA: frozenset[str] = frozenset(
    _codes("605 606 607 608 609 610 611 612 614 615 616 621 625 626 629 630")
)
REGIMEN_MORAL: frozenset[str] = frozenset(_codes("601 603 609 610 620 622 623 624 626 628"))

# c_UsoCFDI columns "Aplica para tipo persona Física / Moral" and "Régimen Fiscal Receptor"
# (SAT catCFDI_V_4, hoja c_UsoCFDI). P01 "Por definir" has no regime in CFDI 4.0.
_EMPRESARIAL = frozenset(_codes("601 603 606 612 620 621 622 623 624 625 626"))
_DEDUCCIONES = frozenset(_codes("605 606 607 608 611 612 614 615 625"))
_TODOS = frozenset(
    _codes("601 603 605 606 607 608 610 611 612 614 615 616 620 621 622 623 624 625 626")
)


@dataclass(frozen=True, slots=True)
class UsoCfdiRule:
    fisica: bool
    moral: bool
    regimenes: frozenset[str]


USO_CFDI_RULES: Mapping[str, UsoCfdiRule] = MappingProxyType(
    {
        "G01": UsoCfdiRule(True, True, _EMPRESARIAL),
        "G02": UsoCfdiRule(True, True, _EMPRESARIAL | {"616"}),
        "G03": UsoCfdiRule(True, True, _EMPRESARIAL),
        **{f"I0{n}": UsoCfdiRule(True, True, _EMPRESARIAL) for n in range(1, 9)},
        **{f"D{n:02d}": UsoCfdiRule(True, False, _DEDUCCIONES) for n in range(1, 11)},
        "S01": UsoCfdiRule(True, True, _TODOS),
        "CP01": UsoCfdiRule(True, True, _TODOS),
        "CN01": UsoCfdiRule(True, False, frozenset({"605"})),
        "P01": UsoCfdiRule(False, False, frozenset()),
    }
)


@dataclass(frozen=True, slots=True)
class TasaOCuota:
    """One row of SAT's c_TasaOCuota: a fixed value or a [minimum, maximum] range."""

    impuesto: str  # 001 ISR, 002 IVA, 003 IEPS
    factor: str  # Tasa, Cuota
    minimum: Decimal
    maximum: Decimal
    traslado: bool
    retencion: bool

    def accepts(self, value: Decimal) -> bool:
        return self.minimum <= value <= self.maximum


def _fixed(imp: str, factor: str, value: str, traslado: bool, retencion: bool) -> TasaOCuota:
    return TasaOCuota(imp, factor, Decimal(value), Decimal(value), traslado, retencion)


# c_TasaOCuota (SAT catCFDI_V_4, hoja c_TasaOCuota): IVA 16 %, 8 % (región fronteriza) and 0 %
# trasladados; IVA retenido in the range 0-16 %; ISR retenido 0-35 %; IEPS tasas of Ley del IEPS
# art. 2 (traslado and, for the first seven, retención); IEPS cuota in a range (SAT updates the
# upper bound yearly with the fuel quotas; 59.1449 is the published maximum we use).
TASA_O_CUOTA: tuple[TasaOCuota, ...] = (
    _fixed("002", "Tasa", "0.160000", True, False),
    _fixed("002", "Tasa", "0.080000", True, False),
    _fixed("002", "Tasa", "0.000000", True, False),
    TasaOCuota("002", "Tasa", Decimal("0"), Decimal("0.160000"), False, True),
    TasaOCuota("001", "Tasa", Decimal("0"), Decimal("0.350000"), False, True),
    *(
        _fixed("003", "Tasa", v, True, True)
        for v in (
            "0.265000",
            "0.300000",
            "0.530000",
            "0.500000",
            "1.600000",
            "0.304000",
            "0.250000",
        )
    ),
    *(
        _fixed("003", "Tasa", v, True, False)
        for v in ("0.090000", "0.080000", "0.070000", "0.060000", "0.030000", "0.000000")
    ),
    TasaOCuota("003", "Cuota", Decimal("0"), Decimal("59.144900"), True, True),
)

# c_Impuesto columns "Traslado" / "Retención": ISR is only withheld.
IMPUESTO_TRASLADO: frozenset[str] = frozenset({"002", "003"})
IMPUESTO_RETENCION: frozenset[str] = frozenset({"001", "002", "003"})


@dataclass(frozen=True, slots=True)
class Catalogs:
    """SAT CFDI 4.0 catalogs: sets of codes, and the hand-made columns the XSD lacks."""

    FormaPago: frozenset[str]
    Moneda: Mapping[str, int]  # code -> decimals
    TipoDeComprobante: frozenset[str]
    Exportacion: frozenset[str]
    MetodoPago: frozenset[str]
    CodigoPostal: frozenset[str]
    Periodicidad: frozenset[str]
    Meses: frozenset[str]
    TipoRelacion: frozenset[str]
    RegimenFiscal: frozenset[str]
    Pais: frozenset[str]
    UsoCFDI: frozenset[str]
    ClaveProdServ: frozenset[str]
    ClaveUnidad: frozenset[str]
    ObjetoImp: frozenset[str]
    Impuesto: frozenset[str]
    TipoFactor: frozenset[str]
    TasaOCuota: tuple[TasaOCuota, ...] = TASA_O_CUOTA
    RegimenFisica: frozenset[str] = REGIMEN_FISICA
    RegimenMoral: frozenset[str] = REGIMEN_MORAL
    UsoCFDIRules: Mapping[str, UsoCfdiRule] = field(default_factory=lambda: USO_CFDI_RULES)

    def decimals(self, moneda: str | None) -> int:
        """Decimals the currency supports (ISO 4217 minor units); 2 for unknown codes."""
        if moneda is None:
            return DEFAULT_DECIMALS
        return self.Moneda.get(moneda, CURRENCY_DECIMALS.get(moneda, DEFAULT_DECIMALS))

    def tasa_valida(self, impuesto: str, factor: str, value: Decimal, *, traslado: bool) -> bool:
        """True when c_TasaOCuota has a row for (impuesto, factor) that accepts ``value``."""
        try:
            for row in self.TasaOCuota:
                if row.impuesto != impuesto or row.factor != factor:
                    continue
                if (row.traslado if traslado else row.retencion) and row.accepts(value):
                    return True
        except (InvalidOperation, TypeError):
            return False
        return False

    def regimen_aplica(self, regimen: str, rfc: str) -> bool:
        """c_RegimenFiscal Física/Moral columns against the RFC length (13 física, 12 moral)."""
        if len(rfc) == 13:
            return regimen in self.RegimenFisica
        if len(rfc) == 12:
            return regimen in self.RegimenMoral
        return True  # a malformed RFC is reported by its own pattern rule

    def uso_cfdi_aplica(self, uso: str, regimen: str, rfc: str) -> bool:
        rule = self.UsoCFDIRules.get(uso)
        if rule is None:
            return uso in self.UsoCFDI  # a catalog code we have no column data for
        if len(rfc) == 13 and not rule.fisica:
            return False
        if len(rfc) == 12 and not rule.moral:
            return False
        return regimen in rule.regimenes


# --- Loading ------------------------------------------------------------------------------------

PARSE_COUNT = 0  # how many times this process parsed the XSD (tests check the cache is used)


def parse_catalog_xsd(xsd: Path = CATALOG_XSD) -> dict[str, list[str]]:
    """Every ``c_*`` simple type of the XSD we use, as its list of enumeration values."""
    global PARSE_COUNT
    PARSE_COUNT += 1
    out: dict[str, list[str]] = {}
    xs = "{http://www.w3.org/2001/XMLSchema}"
    for _event, elem in etree.iterparse(
        str(xsd),
        events=("end",),
        tag=f"{xs}simpleType",
        resolve_entities=False,
        no_network=True,
        huge_tree=True,
    ):
        name = elem.get("name", "")
        if name in _XSD_TYPES:
            out[name] = [e.get("value") for e in elem.iter(f"{xs}enumeration")]
        elem.clear()
    return out


def _build(raw: Mapping[str, list[str]]) -> Catalogs:
    sets: dict[str, Any] = {}
    for xsd_name, attr in _XSD_TYPES.items():
        if attr == "TasaOCuotaXsd":
            continue
        values = raw.get(xsd_name, [])
        if attr == "Moneda":
            sets[attr] = MappingProxyType(
                {v: CURRENCY_DECIMALS.get(v, DEFAULT_DECIMALS) for v in values}
            )
        else:
            sets[attr] = frozenset(values)
    return Catalogs(**sets)


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cfdi-connector"


def _cache_file(xsd: Path, cache_dir: Path) -> Path:
    st = xsd.stat()
    path_digest = hashlib.sha256(str(xsd).encode()).hexdigest()[:12]
    key = f"v{CACHE_FORMAT}-{st.st_size}-{st.st_mtime_ns}-{path_digest}"
    return cache_dir / f"catCFDI-{key}.json"


def _read_cache(path: Path) -> dict[str, list[str]] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not all(
        isinstance(v, list) and all(isinstance(s, str) for s in v) for v in data.values()
    ):
        return None
    if not set(data) >= {k for k in _XSD_TYPES if k != "c_TasaOCuota"}:
        return None
    return data


def _write_cache(path: Path, raw: Mapping[str, list[str]]) -> bool:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".catCFDI-", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(raw, fh, separators=(",", ":"))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError:
        return False
    return True


def load_catalogs(xsd: Path = CATALOG_XSD, cache_dir: Path | None = None) -> Catalogs:
    """Load the catalogs from the disk cache, or parse the XSD and write the cache.

    ``cache_dir=None`` uses :func:`default_cache_dir`. Never fails because of the cache: an
    unreadable/corrupt cache is re-parsed, an unwritable directory is skipped.
    """
    try:
        cache = _cache_file(xsd, default_cache_dir() if cache_dir is None else cache_dir)
    except (OSError, RuntimeError):  # no home directory, unreadable XSD metadata
        cache = None
    raw = _read_cache(cache) if cache is not None else None
    if raw is None:
        raw = parse_catalog_xsd(xsd)
        if cache is not None:
            _write_cache(cache, raw)
    return _build(raw)


@lru_cache(maxsize=1)
def catalogs() -> Catalogs:
    """The SAT catalogs, loaded once per process (from the disk cache when possible)."""
    return load_catalogs()
