"""SAT catalogs: read from catCFDI.xsd, cached on disk, with the hand-made columns."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from connector.cfdi import catalogs as cat_mod
from connector.cfdi.catalogs import Catalogs, catalogs, load_catalogs


@pytest.fixture(scope="module")
def cats() -> Catalogs:
    return catalogs()


@pytest.mark.parametrize(
    ("attr", "code"),
    [
        ("ClaveProdServ", "01010101"),
        ("ClaveProdServ", "84111506"),
        ("ClaveUnidad", "H87"),
        ("ClaveUnidad", "ACT"),
        ("ClaveUnidad", "E48"),
        ("CodigoPostal", "06000"),
        ("CodigoPostal", "36257"),
        ("FormaPago", "99"),
        ("TipoDeComprobante", "P"),
        ("Exportacion", "01"),
        ("MetodoPago", "PPD"),
        ("RegimenFiscal", "601"),
        ("RegimenFiscal", "612"),
        ("UsoCFDI", "G03"),
        ("UsoCFDI", "CP01"),
        ("ObjetoImp", "08"),
        ("Impuesto", "002"),
        ("TipoFactor", "Exento"),
        ("Periodicidad", "05"),
        ("Meses", "18"),
        ("TipoRelacion", "04"),
        ("Pais", "USA"),
    ],
)
def test_known_members_present(cats: Catalogs, attr: str, code: str) -> None:
    assert code in getattr(cats, attr)


@pytest.mark.parametrize(
    ("attr", "code"),
    [
        ("ClaveProdServ", "99999999"),
        ("ClaveUnidad", "XYZ1"),
        ("CodigoPostal", "00001"),
        ("FormaPago", "07"),
        ("RegimenFiscal", "600"),
        ("Moneda", "MXP"),
    ],
)
def test_unknown_codes_absent(cats: Catalogs, attr: str, code: str) -> None:
    assert code not in getattr(cats, attr)


def test_catalog_sizes_are_whole(cats: Catalogs) -> None:
    # the XSD holds tens of thousands of product keys and postal codes
    assert len(cats.ClaveProdServ) > 50_000
    assert len(cats.CodigoPostal) > 90_000
    assert len(cats.Moneda) > 150


@pytest.mark.parametrize(
    ("moneda", "decimals"),
    [
        ("MXN", 2),
        ("USD", 2),
        ("EUR", 2),
        ("JPY", 0),
        ("CLF", 4),
        ("KWD", 3),
        ("BHD", 3),
        ("XXX", 0),
        ("ZZZ", 2),
    ],
)
def test_currency_decimals(cats: Catalogs, moneda: str, decimals: int) -> None:
    assert cats.decimals(moneda) == decimals


def test_catalogs_is_frozen_and_cached_per_process(cats: Catalogs) -> None:
    assert catalogs() is cats
    with pytest.raises(AttributeError):
        cats.FormaPago = frozenset()  # type: ignore[misc]
    with pytest.raises(TypeError):
        cats.Moneda["MXN"] = 5  # type: ignore[index]


def test_disk_cache_written_then_used_without_parsing(tmp_path: Path) -> None:
    before = cat_mod.PARSE_COUNT
    first = load_catalogs(cache_dir=tmp_path)
    assert before + 1 == cat_mod.PARSE_COUNT
    files = list(tmp_path.glob("catCFDI-*.json"))
    assert len(files) == 1
    second = load_catalogs(cache_dir=tmp_path)
    assert before + 1 == cat_mod.PARSE_COUNT  # the XSD was not parsed again
    assert second == first


def test_cache_is_what_is_read(tmp_path: Path) -> None:
    load_catalogs(cache_dir=tmp_path)
    (cache,) = tmp_path.glob("catCFDI-*.json")
    data = json.loads(cache.read_text())
    data["c_FormaPago"].append("77")  # a marker only the cache holds
    cache.write_text(json.dumps(data))
    assert "77" in load_catalogs(cache_dir=tmp_path).FormaPago


def test_corrupt_cache_is_reparsed_and_rewritten(tmp_path: Path) -> None:
    load_catalogs(cache_dir=tmp_path)
    (cache,) = tmp_path.glob("catCFDI-*.json")
    cache.write_text("{not json")
    before = cat_mod.PARSE_COUNT
    cats = load_catalogs(cache_dir=tmp_path)
    assert before + 1 == cat_mod.PARSE_COUNT
    assert "H87" in cats.ClaveUnidad
    assert json.loads(cache.read_text())["c_ClaveUnidad"]


def test_unwritable_cache_dir_falls_back_to_parsing(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")  # a file where the cache directory should be
    cats = load_catalogs(cache_dir=blocker / "sub")
    assert "84111506" in cats.ClaveProdServ


def test_cache_key_changes_with_the_xsd(tmp_path: Path) -> None:
    xsd = tmp_path / "catCFDI.xsd"
    xsd.write_text(
        '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">'
        '<xs:simpleType name="c_FormaPago"><xs:restriction base="xs:string">'
        '<xs:enumeration value="01"/></xs:restriction></xs:simpleType></xs:schema>'
    )
    cache_dir = tmp_path / "cache"
    assert load_catalogs(xsd, cache_dir).FormaPago == {"01"}
    xsd.write_text(
        xsd.read_text().replace('value="01"/>', 'value="01"/><xs:enumeration value="02"/>')
    )
    assert load_catalogs(xsd, cache_dir).FormaPago == {"01", "02"}


def test_xdg_cache_home_is_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cat_mod.default_cache_dir() == tmp_path / "cfdi-connector"
    load_catalogs()
    assert list((tmp_path / "cfdi-connector").glob("catCFDI-*.json"))


@pytest.mark.parametrize(
    ("regimen", "rfc", "ok"),
    [
        ("601", "EKU9003173C9", True),
        ("601", "CACX7605101P8", False),
        ("612", "CACX7605101P8", True),
        ("612", "EKU9003173C9", False),
        ("626", "EKU9003173C9", True),
        ("626", "CACX7605101P8", True),
    ],
)
def test_regimen_por_tipo_de_persona(cats: Catalogs, regimen: str, rfc: str, ok: bool) -> None:
    assert cats.regimen_aplica(regimen, rfc) is ok


@pytest.mark.parametrize(
    ("uso", "regimen", "rfc", "ok"),
    [
        ("G03", "612", "CACX7605101P8", True),
        ("G03", "601", "EKU9003173C9", True),
        ("D01", "605", "CACX7605101P8", True),
        ("D01", "601", "EKU9003173C9", False),
        ("G03", "616", "XAXX010101000", False),
        ("S01", "616", "XAXX010101000", True),
        ("CN01", "605", "CACX7605101P8", True),
        ("CN01", "612", "CACX7605101P8", False),
        ("P01", "601", "EKU9003173C9", False),
    ],
)
def test_uso_cfdi_por_regimen(cats: Catalogs, uso: str, regimen: str, rfc: str, ok: bool) -> None:
    assert cats.uso_cfdi_aplica(uso, regimen, rfc) is ok


@pytest.mark.parametrize(
    ("imp", "factor", "value", "traslado", "ok"),
    [
        ("002", "Tasa", "0.160000", True, True),
        ("002", "Tasa", "0.080000", True, True),
        ("002", "Tasa", "0.000000", True, True),
        ("002", "Tasa", "0.150000", True, False),
        ("002", "Tasa", "0.106667", False, True),
        ("002", "Tasa", "0.170000", False, False),
        ("001", "Tasa", "0.100000", False, True),
        ("001", "Tasa", "0.100000", True, False),
        ("003", "Tasa", "0.265000", True, True),
        ("003", "Tasa", "0.270000", True, False),
        ("003", "Cuota", "1.500000", True, True),
        ("002", "Cuota", "1.000000", True, False),
    ],
)
def test_tasa_o_cuota(
    cats: Catalogs, imp: str, factor: str, value: str, traslado: bool, ok: bool
) -> None:
    assert cats.tasa_valida(imp, factor, Decimal(value), traslado=traslado) is ok


def test_no_home_directory_still_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_home() -> Path:
        raise RuntimeError("Could not determine home directory")

    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setattr(Path, "home", staticmethod(no_home))
    before = cat_mod.PARSE_COUNT
    cats = load_catalogs()
    assert "MXN" in cats.Moneda
    assert before + 1 == cat_mod.PARSE_COUNT  # parsed, no cache to use
