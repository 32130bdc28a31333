"""amount_in_words: the table of Mexican invoice conventions, and a round trip property."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.cfdi.errors import CfdiError
from connector.cfdi.pdf import amount_in_words
from connector.cfdi.words import integer_in_words

TABLE = [
    ("1160", "MXN", "UN MIL CIENTO SESENTA PESOS 00/100 M.N."),
    ("0", "MXN", "CERO PESOS 00/100 M.N."),
    ("0.5", "MXN", "CERO PESOS 50/100 M.N."),
    ("1", "MXN", "UN PESO 00/100 M.N."),
    ("1.01", "MXN", "UN PESO 01/100 M.N."),
    ("2", "MXN", "DOS PESOS 00/100 M.N."),
    ("15", "MXN", "QUINCE PESOS 00/100 M.N."),
    ("16", "MXN", "DIECISÉIS PESOS 00/100 M.N."),
    ("21", "MXN", "VEINTIÚN PESOS 00/100 M.N."),
    ("22", "MXN", "VEINTIDÓS PESOS 00/100 M.N."),
    ("31", "MXN", "TREINTA Y UN PESOS 00/100 M.N."),
    ("100", "MXN", "CIEN PESOS 00/100 M.N."),
    ("101", "MXN", "CIENTO UN PESOS 00/100 M.N."),
    ("115", "MXN", "CIENTO QUINCE PESOS 00/100 M.N."),
    ("500", "MXN", "QUINIENTOS PESOS 00/100 M.N."),
    ("777", "MXN", "SETECIENTOS SETENTA Y SIETE PESOS 00/100 M.N."),
    ("999", "MXN", "NOVECIENTOS NOVENTA Y NUEVE PESOS 00/100 M.N."),
    ("1000", "MXN", "UN MIL PESOS 00/100 M.N."),
    ("2001", "MXN", "DOS MIL UN PESOS 00/100 M.N."),
    ("21000", "MXN", "VEINTIÚN MIL PESOS 00/100 M.N."),
    ("100000", "MXN", "CIEN MIL PESOS 00/100 M.N."),
    ("101000", "MXN", "CIENTO UN MIL PESOS 00/100 M.N."),
    ("1000000", "MXN", "UN MILLÓN DE PESOS 00/100 M.N."),
    ("1000001", "MXN", "UN MILLÓN UN PESOS 00/100 M.N."),
    ("2000000", "MXN", "DOS MILLONES DE PESOS 00/100 M.N."),
    ("2500000.75", "MXN", "DOS MILLONES QUINIENTOS MIL PESOS 75/100 M.N."),
    ("21000000", "MXN", "VEINTIÚN MILLONES DE PESOS 00/100 M.N."),
    ("1000000000", "MXN", "UN MIL MILLONES DE PESOS 00/100 M.N."),
    ("1000000000000", "MXN", "UN BILLÓN DE PESOS 00/100 M.N."),
    ("3327.01", "MXN", "TRES MIL TRESCIENTOS VEINTISIETE PESOS 01/100 M.N."),
    ("0.005", "MXN", "CERO PESOS 01/100 M.N."),  # half-up
    ("0.994", "MXN", "CERO PESOS 99/100 M.N."),
    ("0.995", "MXN", "UN PESO 00/100 M.N."),
    ("120.50", "USD", "CIENTO VEINTE DÓLARES 50/100 USD"),
    ("1", "USD", "UN DÓLAR 00/100 USD"),
    ("120.50", "EUR", "CIENTO VEINTE EUROS 50/100 EUR"),
    ("21.5", "CAD", "VEINTIUNO 50/100 CAD"),
    ("1", "JPY", "UNO 00/100 JPY"),
    ("121", "gbp", "CIENTO VEINTIUNO 00/100 GBP"),
    ("-5", "MXN", "MENOS CINCO PESOS 00/100 M.N."),
]


@pytest.mark.parametrize(("amount", "moneda", "expected"), TABLE)
def test_amount_in_words_table(amount: str, moneda: str, expected: str) -> None:
    assert amount_in_words(Decimal(amount), moneda) == expected


def test_too_big_or_not_a_number_is_a_coded_error() -> None:
    with pytest.raises(CfdiError) as exc:
        amount_in_words(Decimal("1E18"), "MXN")
    assert exc.value.code == "CONN-PDF-IMPORTE"
    with pytest.raises(CfdiError) as exc:
        amount_in_words(Decimal("NaN"), "MXN")
    assert exc.value.code == "CONN-PDF-IMPORTE"


# --- round trip: a small independent parser of the words back to the number ---------------------

_VALUES = {
    "CERO": 0, "UN": 1, "UNO": 1, "DOS": 2, "TRES": 3, "CUATRO": 4, "CINCO": 5, "SEIS": 6,
    "SIETE": 7, "OCHO": 8, "NUEVE": 9, "DIEZ": 10, "ONCE": 11, "DOCE": 12, "TRECE": 13,
    "CATORCE": 14, "QUINCE": 15, "DIECISÉIS": 16, "DIECISIETE": 17, "DIECIOCHO": 18,
    "DIECINUEVE": 19, "VEINTE": 20, "VEINTIÚN": 21, "VEINTIUNO": 21, "VEINTIDÓS": 22,
    "VEINTITRÉS": 23, "VEINTICUATRO": 24, "VEINTICINCO": 25, "VEINTISÉIS": 26,
    "VEINTISIETE": 27, "VEINTIOCHO": 28, "VEINTINUEVE": 29, "TREINTA": 30, "CUARENTA": 40,
    "CINCUENTA": 50, "SESENTA": 60, "SETENTA": 70, "OCHENTA": 80, "NOVENTA": 90, "CIEN": 100,
    "CIENTO": 100, "DOSCIENTOS": 200, "TRESCIENTOS": 300, "CUATROCIENTOS": 400,
    "QUINIENTOS": 500, "SEISCIENTOS": 600, "SETECIENTOS": 700, "OCHOCIENTOS": 800,
    "NOVECIENTOS": 900,
}  # fmt: skip


def _parse(words: str) -> int:
    total, millions_part, small = 0, 0, 0
    for token in words.split():
        if token == "Y":
            continue
        if token == "MIL":
            small = max(small, 1) * 1000
            millions_part += small
            small = 0
        elif token in ("MILLÓN", "MILLONES"):
            total += (millions_part + small) * 10**6
            millions_part, small = 0, 0
        elif token in ("BILLÓN", "BILLONES"):
            total += (millions_part + small) * 10**12
            millions_part, small = 0, 0
        else:
            small += _VALUES[token]
    return total + millions_part + small


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=0, max_value=10**18 - 1))
def test_integer_words_round_trip(n: int) -> None:
    words = integer_in_words(n)
    assert "  " not in words and words == words.strip()
    assert _parse(words) == n
    assert _parse(integer_in_words(n, apocope=True)) == n


@settings(max_examples=40, deadline=None)
@given(st.decimals(min_value=0, max_value=10**15, places=2, allow_nan=False, allow_infinity=False))
def test_amount_words_carry_the_cents_and_the_integer(amount: Decimal) -> None:
    text = amount_in_words(amount, "MXN")
    assert text.endswith(" M.N.")
    integer = int(amount)
    cents = int((amount - integer) * 100)
    assert f" {cents:02d}/100 " in text
    words = text.rsplit(" PESO", 1)[0].removesuffix(" DE")
    assert _parse(words) == integer
