"""CSV sets with the complements' files (issue 15): names, the claim of a whole set, and the
joining of the complements' rows to their invoices with coded errors at file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.adapters.base import FilePart, load_pair
from connector.adapters.csv_complements import FILES, check_files, complement_mapping
from connector.adapters.folder import FolderSource, PairSpec
from connector.cfdi import rules
from connector.cfdi.amounts import complete
from tests.adapters.test_folder import Clock, _touch
from tests.conftest import REPO

EXAMPLES = REPO / "config" / "examples"
SET = PairSpec("_H", "_D", 600, (("cce", "_CCE"), ("cce_mercancia", "_CCEM")))
USED = ["cce", "cce_mercancia", "carta_porte", "cp_ubicacion", "cp_mercancia", "cp_figura"]


def test_set_names() -> None:
    assert SET.split("ventas_0415_CCEM.csv") == ("cce_mercancia", "ventas_0415", ".csv")
    assert SET.split("ventas_0415_cce.CSV") == ("cce", "ventas_0415", ".CSV")
    assert SET.members("ventas_0415_CCE.csv") == [
        "ventas_0415_H.csv", "ventas_0415_D.csv", "ventas_0415_CCEM.csv"
    ]  # fmt: skip
    assert SET.partner("ventas_0415_CCEM.csv") == "ventas_0415_H.csv"
    assert SET.order("ventas_0415_H.csv") < SET.order("ventas_0415_CCEM.csv")
    with pytest.raises(ValueError, match="se confunden"):  # "X_CE" ends with "_CE"
        PairSpec("_H", "_D", 600, (("cce", "_CE"), ("cce_mercancia", "X_CE")))
    with pytest.raises(ValueError, match="dos veces"):
        PairSpec("_H", "_D", 600, (("cce", "_CCE"), ("cce", "_CCF")))
    assert check_files(["cce", "cce_mercancia"]) == []
    (unknown,) = check_files(["cce", "cce_mercanci"])
    assert "cce_mercanci" in unknown and "cce_mercancia" in unknown
    (needs,) = check_files(["cp_ubicacion"])
    assert "carta_porte" in needs


def test_a_set_is_taken_only_whole_and_claimed_together(tmp_path: Path) -> None:
    clock = Clock()
    (tmp_path / "in").mkdir()
    src = FolderSource(tmp_path / "in", tmp_path / "work", include=["*.csv"], stable_seconds=2.0,
                       pair=SET, clock=clock)  # fmt: skip
    for suffix in ("_H", "_D", "_CCE"):
        _touch(tmp_path / "in" / f"v1{suffix}.csv")
    assert src.scan() == []
    clock.now += 5
    assert src.scan() == []  # the mercancías file is missing: the set waits
    _touch(tmp_path / "in" / "v1_CCEM.csv")
    clock.now += 1
    assert src.scan() == []
    clock.now += 5
    (first,) = src.scan()
    assert first.name == "v1_H.csv"
    claimed = src.claim(first)
    assert claimed is not None and claimed.name.endswith("--v1_H.csv")
    members = src.members_in_work(claimed)
    assert [src.original_name(m) for m in members] == ["v1_D.csv", "v1_CCE.csv", "v1_CCEM.csv"]
    assert {m.name.split("--")[0] for m in members} == {claimed.name.split("--")[0]}
    assert list((tmp_path / "in").iterdir()) == []


def test_an_incomplete_set_is_taken_after_orphan_seconds_all_its_files_together(
    tmp_path: Path,
) -> None:
    clock = Clock()
    (tmp_path / "in").mkdir()
    spec = PairSpec("_H", "_D", 30, SET.extras)
    src = FolderSource(tmp_path / "in", tmp_path / "work", include=["*.csv"], stable_seconds=2.0,
                       pair=spec, clock=clock)  # fmt: skip
    for suffix in ("_D", "_CCE", "_CCEM"):
        _touch(tmp_path / "in" / f"v2{suffix}.csv")
    src.scan()
    clock.now += 10
    assert src.scan() == []
    clock.now += 30
    (first,) = src.scan()
    assert first.name == "v2_D.csv"  # no header: the lines file carries the set
    claimed = src.claim(first)
    assert claimed is not None
    assert [src.original_name(m) for m in src.members_in_work(claimed)] == [
        "v2_CCE.csv", "v2_CCEM.csv"
    ]  # fmt: skip


def _example(suffix: str) -> FilePart:
    name = f"complementos-csv{suffix}.csv"
    return FilePart(name, (EXAMPLES / name).read_bytes())


def _load(extras: dict[str, FilePart]) -> list:
    mapping = complement_mapping(EXAMPLES / "complementos-csv.mapping.toml", USED)
    return list(load_pair(_example("_H"), _example("_D"), adapter="csv", mapping=mapping,
                          extras=extras))  # fmt: skip


def _extras(**replace: bytes) -> dict[str, FilePart]:
    out = {n: _example(FILES[n]) for n in USED}
    for n, data in replace.items():
        out[n] = FilePart(out[n].name, data)
    return out


def test_the_shipped_example_set_is_valid() -> None:
    ec, cp = _load(_extras())
    assert ec.problems == [] and cp.problems == []
    c = complete(ec.comprobante)
    assert c.ComercioExterior is not None and len(c.ComercioExterior.Mercancias) == 2
    assert c.ComercioExterior.Emisor.Domicilio.CodigoPostal == "86000"
    t = complete(cp.comprobante)
    assert t.CartaPorte is not None and t.CartaPorte.TotalDistRec is not None
    assert [u.IDUbicacion for u in t.CartaPorte.Ubicaciones] == ["OR000001", "DE000001"]
    assert rules.validate(c) == [] and rules.validate(t) == []


def test_a_second_complement_row_and_rows_of_an_invoice_without_it_are_coded() -> None:
    cce = _example("_CCE").data
    assert cce is not None
    row = cce.splitlines()[1]
    twice = cce + row + b"\r\n"
    ec, cp = _load(_extras(cce=twice))
    assert [(p.code, p.location) for p in ec.problems] == [
        ("CONN-CSV-COMPLEMENTO", "complementos-csv_CCE.csv:3")
    ]
    assert "una sola" in ec.problems[0].message
    header_only = cce.splitlines(keepends=True)[0]
    ec, cp = _load(_extras(cce=header_only))
    assert [(p.code, p.location) for p in ec.problems] == [
        ("CONN-CSV-COMPLEMENTO", "complementos-csv_CCEM.csv:2"),
        ("CONN-CSV-COMPLEMENTO", "complementos-csv_CCEM.csv:3"),
    ]


def test_a_broken_or_empty_complement_file() -> None:
    broken = b'SERIE,FOLIO,tipo_figura\r\nCP,701,"' + b"x" * 200_000 + b'"\r\n'  # too big
    (only,) = _load(_extras(cp_figura=broken))
    assert only.comprobante is None
    assert [p.code for p in only.problems] == ["CONN-CSV-FORMAT"]
    assert only.problems[0].location == "complementos-csv_CPF.csv:2"
    (only,) = _load(_extras(cp_figura=b"SERIE,FOLIO,tipo_figura\r\nCP,701,\x81\x8d\r\n"))
    assert only.comprobante is None and only.problems[0].code == "CONN-DECODE"
    # an empty file (no rows, not even the header row) is a file with no rows
    ec, cp = _load(_extras(cce_mercancia=b""))
    assert ec.problems == [] and cp.problems == []
    assert ec.comprobante.ComercioExterior is not None
    assert ec.comprobante.ComercioExterior.Mercancias == []


def test_a_missing_key_column_in_a_complement_file() -> None:
    (only,) = _load(_extras(cp_mercancia=b"SERIE,bienes_transp\r\nCP,52161557\r\n"))
    assert [(p.code, p.location) for p in only.problems] == [
        ("CONN-CSV-HEADER", "complementos-csv_CPM.csv:1")
    ]
    assert "FOLIO" in only.problems[0].message


def test_with_done_markers_a_set_waits_for_every_files_marker(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    src = FolderSource(tmp_path / "in", tmp_path / "work", include=["*.csv"], stable_seconds=0,
                       done_marker=".done", pair=SET)  # fmt: skip
    for suffix in ("_H", "_D", "_CCE", "_CCEM"):
        _touch(tmp_path / "in" / f"v3{suffix}.csv")
    for suffix in ("_H", "_D", "_CCE"):
        _touch(tmp_path / "in" / f"v3{suffix}.csv.done", b"")
    assert src.scan() == []  # the mercancías file has no marker yet
    _touch(tmp_path / "in" / "v3_CCEM.csv.done", b"")
    (first,) = src.scan()
    claimed = src.claim(first)
    assert claimed is not None
    work = sorted(p.name.split("--", 1)[1] for p in (tmp_path / "work").iterdir())
    assert work == sorted(f"v3{s}.csv{m}" for s in ("_H", "_D", "_CCE", "_CCEM")
                          for m in ("", ".done"))  # fmt: skip
    assert list((tmp_path / "in").iterdir()) == []


def test_an_export_invoice_without_its_complement_rows_is_refused_by_the_cfdi_rules() -> None:
    """The ERP marked the invoice as an export (Exportacion 02) but wrote no row for it in the
    complement's files (present, with their column rows only): SAT's CFDI40122."""
    cce, ccem = _example("_CCE").data, _example("_CCEM").data
    assert cce is not None and ccem is not None
    ec, cp = _load(_extras(cce=cce.splitlines(keepends=True)[0],
                           cce_mercancia=ccem.splitlines(keepends=True)[0]))  # fmt: skip
    assert ec.problems == [] and ec.comprobante.ComercioExterior is None
    assert "CFDI40122" in [p.code for p in rules.validate(complete(ec.comprobante))]
