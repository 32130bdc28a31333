"""Value transforms a mapping applies to a source field, in order.

Each transform is built once from its TOML argument (``build``) and then called on text. A bad
argument is a configuration error (``ValueError`` with a Spanish message); a value the transform
cannot handle raises ``TransformError`` (the mapper turns it into a located ``Problem``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

Transform = Callable[[str], str]

ISO_FORMAT = "%Y-%m-%dT%H:%M:%S"


class TransformError(ValueError):
    """A value that a transform cannot convert; ``code`` and a Spanish message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


_PLAIN = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")
_PLAIN_ONLY = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")  # fullmatch: no spaces, no newline
_THOUSANDS_POINT = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$")  # 1,234,567.89
_THOUSANDS_COMMA = re.compile(r"^[+-]?\d{1,3}(\.\d{3})+(,\d+)?$")  # 1.234.567,89


def parse_decimal(text: str, comma: bool = False) -> Decimal:
    """Text of an amount → Decimal. ``comma``: the file writes "1.234,56" (decimal comma).

    Spaces and a leading ``$`` are ignored. Thousands separators are accepted only in groups of
    three, so "1,5" is never read as 15.
    """
    s = text
    # the usual "1234.50" (decimal point) has nothing to clean up or regroup: straight to Decimal
    if comma or _PLAIN_ONLY.fullmatch(s) is None:
        s = s.strip().replace(" ", "").replace("\u00a0", "").replace("$", "")
        if comma:
            if "," in s:
                if _THOUSANDS_COMMA.match(s):
                    s = s.replace(".", "")
                elif "." in s:
                    raise TransformError("CONN-MAP-NUMBER", f"'{text}' no es un número válido")
                s = s.replace(",", ".")
            elif _THOUSANDS_COMMA.match(s):
                s = s.replace(".", "")
        elif "," in s:
            if not _THOUSANDS_POINT.match(s):
                raise TransformError(
                    "CONN-MAP-NUMBER",
                    f"'{text}' no es un número válido (¿coma decimal? configure decimal = \"comma\")",
                )
            s = s.replace(",", "")
        if not _PLAIN.match(s):
            raise TransformError("CONN-MAP-NUMBER", f"'{text}' no es un número válido")
    try:
        return Decimal(s)
    except InvalidOperation as exc:  # pragma: no cover - the regex already rejects these
        raise TransformError("CONN-MAP-NUMBER", f"'{text}' no es un número válido") from exc


def _decimal_text(value: Decimal) -> str:
    text = format(value, "f")
    return text


# --- transform factories: build(arg) -> Transform ---------------------------------------------


def _no_arg(name: str, fn: Transform) -> Callable[[Any], Transform]:
    def build(arg: Any) -> Transform:
        if arg not in (None, True):
            raise ValueError(f"la transformación '{name}' no lleva argumento")
        return fn

    return build


_RFC_SEPARATORS = re.compile(r"[\s\-_.]")


def _rfc(value: str) -> str:
    return _RFC_SEPARATORS.sub("", value).upper()


def _build_zfill(arg: Any) -> Transform:
    if not isinstance(arg, int) or isinstance(arg, bool) or not 1 <= arg <= 40:
        raise ValueError("zfill necesita un número de dígitos entre 1 y 40 (p. ej. zfill = 5)")

    def zfill(value: str) -> str:
        v = value.strip()
        if v.endswith(".0"):  # spreadsheets turn 01234 into 1234.0
            v = v[:-2]
        if not v.isdigit():
            raise TransformError("CONN-MAP-VALUE", f"'{value}' debe contener sólo dígitos")
        return v.zfill(arg)

    return zfill


def _build_date(arg: Any) -> Transform:
    formats = [arg] if isinstance(arg, str) else arg
    if not isinstance(formats, list) or not formats or not all(isinstance(f, str) for f in formats):
        raise ValueError(
            'date necesita un formato o una lista de formatos (p. ej. date = "%d/%m/%Y %H:%M:%S")'
        )
    for f in formats:
        if "%" not in f:
            raise ValueError(f"el formato de fecha '{f}' no tiene directivas (%d, %m, %Y…)")
    candidates = [*formats, ISO_FORMAT]

    def date(value: str) -> str:
        v = value.strip()
        for fmt in candidates:
            try:
                return datetime.strptime(v, fmt).strftime(ISO_FORMAT)
            except ValueError:
                continue
        raise TransformError(
            "CONN-MAP-DATE", f"'{value}' no es una fecha con el formato {' o '.join(formats)}"
        )

    return date


def _build_decimal(arg: Any) -> Transform:
    if arg in (None, True):
        arg = "point"
    if arg not in ("point", "comma"):
        raise ValueError('decimal acepta "point" (1,234.56) o "comma" (1.234,56)')
    comma = arg == "comma"

    def decimal(value: str) -> str:
        return _decimal_text(parse_decimal(value, comma))

    return decimal


def _build_map(arg: Any) -> Transform:
    if not isinstance(arg, dict) or not all(isinstance(v, str | int) for v in arg.values()):
        raise ValueError('map necesita una tabla de valores (p. ej. map = { EFECTIVO = "01" })')
    exact = {str(k): str(v) for k, v in arg.items()}
    folded = {str(k).strip().upper(): str(v) for k, v in arg.items()}

    def map_(value: str) -> str:
        if value in exact:
            return exact[value]
        return folded.get(value.strip().upper(), value)

    return map_


def _percent(value: str) -> str:
    rate = parse_decimal(value) / 100
    return _decimal_text(rate.quantize(Decimal("0.000001")))


def _build_truncate(arg: Any) -> Transform:
    if not isinstance(arg, int) or isinstance(arg, bool) or arg < 1:
        raise ValueError("truncate necesita una longitud máxima (p. ej. truncate = 1000)")
    return lambda value: value[:arg]


FACTORIES: dict[str, Callable[[Any], Transform]] = {
    "trim": _no_arg("trim", lambda v: v.strip()),
    "upper": _no_arg("upper", lambda v: v.upper()),
    "lower": _no_arg("lower", lambda v: v.lower()),
    "rfc": _no_arg("rfc", _rfc),
    "collapse": _no_arg("collapse", lambda v: " ".join(v.split())),
    "percent": _no_arg("percent", _percent),
    "zfill": _build_zfill,
    "date": _build_date,
    "decimal": _build_decimal,
    "map": _build_map,
    "truncate": _build_truncate,
}


def build(name: str, arg: Any = None) -> Transform:
    """The transform ``name`` with its argument; ``ValueError`` (Spanish) when unusable."""
    factory = FACTORIES.get(name)
    if factory is None:
        raise ValueError(
            f"la transformación '{name}' no existe (disponibles: {', '.join(sorted(FACTORIES))})"
        )
    return factory(arg)
