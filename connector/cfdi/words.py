"""Amounts in Spanish words, as Mexican invoices print them ("importe con letra").

``amount_in_words(Decimal("1160"), "MXN")`` → ``"UN MIL CIENTO SESENTA PESOS 00/100 M.N."``.

Conventions (the ones Mexican ERPs and PACs print):

* the integer part in upper-case words, the cents as ``NN/100`` (rounded half-up to 2 decimals);
* MXN: ``PESO``/``PESOS`` and the suffix ``M.N.``; USD: ``DÓLAR``/``DÓLARES`` and ``USD``;
  EUR: ``EURO``/``EUROS`` and ``EUR``; any other currency: the number alone and its ISO code
  (``CIENTO VEINTIUNO 50/100 CAD``);
* ``UN MIL`` for thousands starting with one (the invoice habit, it prevents alterations),
  ``CIEN``/``CIENTO``, apocopated ``UN``/``VEINTIÚN``/``TREINTA Y UN`` before a noun or
  ``MIL``/``MILLONES``, ``UNO``/``VEINTIUNO`` when the number stands alone;
* ``UN MILLÓN``, ``DOS MILLONES``, ``UN BILLÓN`` (10¹²), and ``DE`` before the currency noun
  after an exact number of millions (``UN MILLÓN DE PESOS``);
* ``CERO PESOS 00/100 M.N.`` for zero, ``MENOS`` in front of a negative amount.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from .errors import CfdiError

__all__ = ["amount_in_words", "integer_in_words"]

_UNITS = [
    "CERO",
    "UNO",
    "DOS",
    "TRES",
    "CUATRO",
    "CINCO",
    "SEIS",
    "SIETE",
    "OCHO",
    "NUEVE",
    "DIEZ",
    "ONCE",
    "DOCE",
    "TRECE",
    "CATORCE",
    "QUINCE",
    "DIECISÉIS",
    "DIECISIETE",
    "DIECIOCHO",
    "DIECINUEVE",
    "VEINTE",
    "VEINTIUNO",
    "VEINTIDÓS",
    "VEINTITRÉS",
    "VEINTICUATRO",
    "VEINTICINCO",
    "VEINTISÉIS",
    "VEINTISIETE",
    "VEINTIOCHO",
    "VEINTINUEVE",
]
_TENS = {
    3: "TREINTA",
    4: "CUARENTA",
    5: "CINCUENTA",
    6: "SESENTA",
    7: "SETENTA",
    8: "OCHENTA",
    9: "NOVENTA",
}
_HUNDREDS = {
    1: "CIENTO",
    2: "DOSCIENTOS",
    3: "TRESCIENTOS",
    4: "CUATROCIENTOS",
    5: "QUINIENTOS",
    6: "SEISCIENTOS",
    7: "SETECIENTOS",
    8: "OCHOCIENTOS",
    9: "NOVECIENTOS",
}

# currency → (singular noun, plural noun, suffix after the cents)
_CURRENCIES: dict[str, tuple[str, str, str]] = {
    "MXN": ("PESO", "PESOS", "M.N."),
    "USD": ("DÓLAR", "DÓLARES", "USD"),
    "EUR": ("EURO", "EUROS", "EUR"),
}

_MAX = 10**18  # SAT: at most 18 integer digits in a CFDI amount


def _below_hundred(n: int, apocope: bool) -> str:
    if n < 30:
        word = _UNITS[n]
    else:
        tens, unit = divmod(n, 10)
        word = _TENS[tens] if unit == 0 else f"{_TENS[tens]} Y {_UNITS[unit]}"
    if apocope and word.endswith("UNO"):
        word = word[:-3] + ("ÚN" if word == "VEINTIUNO" else "UN")
    return word


def _below_thousand(n: int, apocope: bool) -> str:
    hundreds, rest = divmod(n, 100)
    if hundreds == 0:
        return _below_hundred(rest, apocope)
    if n == 100:
        return "CIEN"
    head = _HUNDREDS[hundreds]
    return head if rest == 0 else f"{head} {_below_hundred(rest, apocope)}"


def _below_million(n: int, apocope: bool) -> str:
    thousands, rest = divmod(n, 1000)
    parts: list[str] = []
    if thousands:
        parts.append(f"{_below_thousand(thousands, True)} MIL")
    if rest:
        parts.append(_below_thousand(rest, apocope))
    return " ".join(parts)


def integer_in_words(n: int, *, apocope: bool = False) -> str:
    """Words for a non-negative integer below 10¹⁸; ``apocope`` when a noun follows."""
    if n < 0 or n >= _MAX:
        raise ValueError(n)
    if n == 0:
        return "CERO"
    billions, rest = divmod(n, 10**12)
    millions, units = divmod(rest, 10**6)
    parts: list[str] = []
    if billions:
        parts.append("UN BILLÓN" if billions == 1 else f"{_below_million(billions, True)} BILLONES")
    if millions:
        parts.append("UN MILLÓN" if millions == 1 else f"{_below_million(millions, True)} MILLONES")
    if units:
        parts.append(_below_million(units, apocope))
    return " ".join(parts)


def amount_in_words(total: Decimal, moneda: str) -> str:
    """The amount in Spanish words with its cents ``NN/100`` and currency (see module doc)."""
    try:
        amount = Decimal(total).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    except (InvalidOperation, TypeError, ValueError) as exc:
        raise CfdiError.one(
            "CONN-PDF-IMPORTE", f"El importe {total!r} no es un número válido.", "Total"
        ) from exc
    if not amount.is_finite() or abs(amount) >= _MAX:
        raise CfdiError.one(
            "CONN-PDF-IMPORTE",
            f"El importe {total} no se puede expresar con letra (máximo 18 dígitos enteros).",
            "Total",
        )
    sign = "MENOS " if amount < 0 else ""
    amount = abs(amount)
    integer = int(amount)
    cents = int((amount - integer) * 100)
    code = (moneda or "").strip().upper()
    noun = _CURRENCIES.get(code)
    if noun is None:
        words = integer_in_words(integer)
        return f"{sign}{words} {cents:02d}/100 {code}".rstrip()
    singular, plural, suffix = noun
    words = integer_in_words(integer, apocope=True)
    if integer == 1:
        name = singular
    elif integer % 10**6 == 0 and integer > 0:
        name = f"DE {plural}"
    else:
        name = plural
    return f"{sign}{words} {name} {cents:02d}/100 {suffix}"
