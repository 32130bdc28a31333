"""CSV as two files: a header file and a lines file joined by key into one tree per invoice."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.adapters import FilePart, load_invoices, load_pair
from connector.adapters.csv import CsvAdapter
from tests.adapters.test_csv import HEAD, MAPPING, OPTS, _row

H_HEAD = "SERIE;FOLIO;FECHA;RFC;NOMBRE;CP\r\n"
D_HEAD = "SERIE;FOLIO;CLAVE;DESCRIPCION;CANTIDAD;PRECIO\r\n"


def _h(folio: str, serie: str = "A") -> str:
    return f"{serie};{folio};15/01/2025 10:00:00;CACX7605101P8;XOCHILT CASAS CHAVEZ;26015\r\n"


def _d(folio: str, desc: str = "Artículo", cantidad: str = "1", precio: str = "1.234,50") -> str:
    return f"A;{folio};43201800;{desc};{cantidad};{precio}\r\n"


def _pair(header: str, lines: str, options: dict | None = None, enc: str = "utf-8") -> list:
    return list(
        load_pair(
            FilePart("v_H.csv", header.encode(enc)),
            FilePart("v_D.csv", lines.encode(enc)),
            adapter="csv",
            options=options or OPTS,
            mapping=MAPPING,
        )
    )


def test_pair_joins_lines_by_key_like_the_one_file_form_cp1252_decimal_comma() -> None:
    header = H_HEAD + _h("1") + _h("2")
    # lines of one invoice need not be consecutive; their order is kept
    lines = D_HEAD + _d("1", "Cañón", "2") + _d("2", "Niño", "0,5", "10,00") + _d("1", "Año")
    out = _pair(header, lines, enc="cp1252")
    assert [(i.location, i.problems) for i in out] == [("v_H.csv:2", []), ("v_H.csv:3", [])]
    one_file = HEAD + _row("1", "Cañón", "2") + _row("1", "Año") + _row("2", "Niño", "0,5", "10,00")
    same = list(
        load_invoices(
            one_file.encode("cp1252"), "v.csv", adapter="csv", options=OPTS, mapping=MAPPING
        )
    )
    assert [i.comprobante for i in out] == [i.comprobante for i in same]  # the same mapping
    c = out[1].comprobante
    assert [(k.Descripcion, k.Cantidad, k.ValorUnitario) for k in c.Conceptos] == [
        ("Niño", Decimal("0.5"), Decimal("10.00"))
    ]


def test_errors_are_located_in_the_file_they_come_from() -> None:
    out = _pair(H_HEAD + _h("1") + _h("2"), D_HEAD + _d("1") + _d("2", cantidad="dos"))
    assert out[0].problems == []
    assert [(p.code, p.location) for p in out[1].problems] == [
        ("CONN-MAP-NUMBER", "v_D.csv:3:CANTIDAD")
    ]
    assert out[0].locator("Receptor.Rfc") == "v_H.csv:2:RFC"
    assert out[0].locator("Conceptos[0].ValorUnitario") == "v_D.csv:2:PRECIO"


def test_a_line_whose_key_has_no_header_is_a_problem_of_its_own() -> None:
    out = _pair(H_HEAD + _h("1"), D_HEAD + _d("1") + _d("9") + _d("9"))
    assert out[0].problems == [] and len(out[0].comprobante.Conceptos) == 1
    (orphan,) = out[1:]
    assert orphan.comprobante is None
    ((code, where, msg),) = [(p.code, p.location, p.message) for p in orphan.problems]
    assert (code, where) == ("CONN-CSV-KEY", "v_D.csv:3")
    assert "FOLIO='9'" in msg and "2 líneas" in msg and "v_H.csv" in msg


def test_a_header_without_lines_is_a_problem() -> None:
    out = _pair(H_HEAD + _h("1") + _h("2"), D_HEAD + _d("1"))
    assert out[0].problems == []
    codes = [(p.code, p.location) for p in out[1].problems]
    assert ("CONN-CSV-KEY", "v_H.csv:3") in codes
    assert "sin conceptos" in out[1].problems[0].message


def test_repeated_header_key_and_missing_key_columns() -> None:
    out = _pair(H_HEAD + _h("1") + _h("1"), D_HEAD + _d("1"))
    assert all(any(p.code == "CONN-CSV-KEY" for p in i.problems) for i in out)
    (inv,) = _pair(H_HEAD + _h("1"), "SERIE;CLAVE\r\nA;1\r\n")
    assert [(p.code, p.location) for p in inv.problems] == [("CONN-CSV-HEADER", "v_D.csv:1")]
    assert "FOLIO" in inv.problems[0].message


def test_configurable_key_lines_key_and_headerless_lines() -> None:
    lines = "X;1;43201800;Uno;1;5,00\r\n"
    options = {
        **OPTS,
        "key": ["FOLIO"],
        "lines_key": ["FOL"],
        "lines_columns": ["S", "FOL", "CLAVE", "DESCRIPCION", "CANTIDAD", "PRECIO"],
    }
    (inv,) = _pair(H_HEAD + _h("1"), lines, options)
    assert inv.problems == [] and inv.comprobante.Conceptos[0].Descripcion == "Uno"
    assert CsvAdapter(**options).check_pair() == []
    assert CsvAdapter(header=False, columns=["A"]).check_pair()  # lines_columns needed
    assert CsvAdapter(group_by=[]).check_pair()  # no key to join by
    with pytest.raises(ValueError, match="lines_key"):
        CsvAdapter(key=["SERIE", "FOLIO"], lines_key=["FOLIO"])


def test_a_missing_half_and_undecodable_bytes_are_problems_at_the_file() -> None:
    (inv,) = load_pair(
        FilePart("v_H.csv", (H_HEAD + _h("1")).encode()),
        FilePart("v_D.csv", None),
        adapter="csv",
        options=OPTS,
        mapping=MAPPING,
    )
    assert [(p.code, p.location) for p in inv.problems] == [("CONN-PAR-INCOMPLETO", "v_H.csv")]
    assert "v_D.csv" in inv.problems[0].message
    (inv,) = load_pair(
        FilePart("v_H.csv", None),
        FilePart("v_D.csv", b"x"),
        adapter="csv",
        options=OPTS,
        mapping=MAPPING,
    )
    assert inv.problems[0].location == "v_D.csv" and "encabezado" in inv.problems[0].message
    (inv,) = _pair(H_HEAD + _h("1"), "ñ", {**OPTS, "encoding": "ascii"}, enc="cp1252")
    assert [(p.code, p.location) for p in inv.problems] == [("CONN-DECODE", "v_D.csv:1")]
    (inv,) = load_pair(
        FilePart("v_H.csv", b"\xf1"),
        FilePart("v_D.csv", b""),
        adapter="csv",
        options={**OPTS, "encoding": "utf-8"},
        mapping=MAPPING,
    )
    assert [(p.code, p.location) for p in inv.problems] == [("CONN-DECODE", "v_H.csv:1")]


def test_adapters_without_pairs_say_so() -> None:
    (inv,) = load_pair(
        FilePart("v_H.dat", b"x"), FilePart("v_D.dat", b"y"), adapter="dat", mapping=None
    )
    assert inv.problems[0].code == "CONN-ADAPTER" and "pares" in inv.problems[0].message


@settings(max_examples=40, deadline=None)
@given(
    st.text(alphabet=';"\r\nA1,.x ñ', max_size=120), st.text(alphabet=';"\r\nA1,.x ñ', max_size=120)
)
def test_arbitrary_pairs_never_raise(header: str, lines: str) -> None:
    out = _pair(H_HEAD + header, D_HEAD + lines)
    assert out and all(i.comprobante is not None or i.problems for i in out)
