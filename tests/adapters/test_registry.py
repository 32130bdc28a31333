"""A third party registers an adapter through the entry-point group ``connector.adapters``."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.adapters import available_adapters, get_adapter, load_invoices

MODULE = '''
from connector.adapters.base import Adapter, ParsedRecord


class KeyValueAdapter(Adapter):
    """Toy format: blocks of KEY=VALUE lines separated by blank lines, one invoice each."""

    name = "kv"

    def parse(self, data, filename):
        line_no, fields, start = 0, {}, 1
        for line_no, line in enumerate(data.decode().splitlines(), start=1):
            if not line.strip():
                if fields:
                    yield ParsedRecord("KV", fields, start, filename)
                fields, start = {}, line_no + 1
                continue
            key, _, value = line.partition("=")
            fields[key.strip()] = value.strip()
        if fields:
            yield ParsedRecord("KV", fields, start, filename)


class BrokenAdapter(Adapter):
    name = "broken"

    def parse(self, data, filename):
        yield ParsedRecord("KV", {}, 1, filename)
        raise RuntimeError("boom")
'''

MAPPING = """
[Comprobante]
Serie = "SERIE"
Folio = "FOLIO"
Fecha = "FECHA"
Moneda = { default = "MXN" }
TipoDeComprobante = { default = "I" }
Exportacion = { default = "01" }
LugarExpedicion = { value = "42501" }
[Comprobante.Emisor]
Rfc = { value = "EKU9003173C9" }
Nombre = { value = "ESCUELA KEMPER URGATE" }
RegimenFiscal = { value = "601" }
[Comprobante.Receptor]
Rfc = "RFC"
Nombre = "NOMBRE"
DomicilioFiscalReceptor = "CP"
RegimenFiscalReceptor = "REGIMEN"
UsoCFDI = "USO"
"""


@pytest.fixture
def third_party(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "kv_adapter_pkg.py").write_text(MODULE, encoding="utf-8")
    dist = tmp_path / "kv_adapter_pkg-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: kv-adapter-pkg\nVersion: 1.0\n", encoding="utf-8"
    )
    (dist / "entry_points.txt").write_text(
        "[connector.adapters]\nkv = kv_adapter_pkg:KeyValueAdapter\nbroken = kv_adapter_pkg:BrokenAdapter\n",
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(tmp_path))


def test_an_installed_third_party_adapter_is_found_and_used(third_party: None) -> None:
    from connector.mappers import Mapping

    assert {"kv", "broken", "dat", "csv", "xml"} <= set(available_adapters())
    assert type(get_adapter("kv")).__name__ == "KeyValueAdapter"
    data = (
        b"SERIE=K\nFOLIO=1\nFECHA=2025-01-15T10:00:00\nRFC=CACX7605101P8\nNOMBRE=XOCHILT CASAS CHAVEZ\n"
        b"CP=26015\nREGIMEN=612\nUSO=G03\n\nSERIE=K\nFOLIO=2\n"
    )
    out = list(load_invoices(data, "x.kv", adapter="kv", mapping=Mapping.from_string(MAPPING)))
    assert out[0].problems == [] and out[0].comprobante.business_key == ("EKU9003173C9", "K", "1")
    assert out[1].comprobante is None
    assert {p.location for p in out[1].problems} >= {"x.kv:10:FECHA"}


def test_a_crashing_adapter_becomes_a_problem(third_party: None) -> None:
    out = list(load_invoices(b"", "x.kv", adapter="broken", mapping=None))
    assert len(out) == 2
    assert out[0].problems[0].code == "CONN-MAP-NONE"
    assert out[1].problems[0].code == "CONN-ADAPTER" and "boom" in out[1].problems[0].message


def test_check_adapter_reports_configuration_problems(tmp_path: Path) -> None:
    from connector.adapters.base import check_adapter

    assert check_adapter("dat", {}) == []
    assert check_adapter("csv", {"delimiter": ";", "encoding": "cp1252"}) == []
    (p,) = check_adapter("sap", {})
    assert p.code == "CONN-ADAPTER" and "dat" in p.message
    (p,) = check_adapter("csv", {"separador": ";"})
    assert "separador" in p.message
    bad = tmp_path / "layout.toml"
    bad.write_text('[layout]\nstart = "X"\n[records.Y]\nfields = []\n', encoding="utf-8")
    problems = check_adapter("dat", {"layout": str(bad)})
    assert {p.code for p in problems} == {"CONN-LAYOUT"} and len(problems) >= 2
    assert all(p.location.startswith("layout.toml: ") for p in problems)
