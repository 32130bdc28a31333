"""Robustness: whatever a field holds, validate() and complete() report problems, never raise."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, get_args, get_origin

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from connector.cfdi.amounts import complete
from connector.cfdi.model import Comprobante
from connector.cfdi.rules import validate

from .base_invoice import base_data, completed_data, load, pago_data, publico_data


def _nodes(c: Comprobante) -> list[tuple[Any, str, Any]]:
    """Every (node, field name, value) of the model, recursively."""
    out: list[tuple[Any, str, Any]] = []

    def walk(node: Any) -> None:
        for name, value in node.__dict__.items():
            out.append((node, name, value))
            if isinstance(value, BaseModel):
                walk(value)
            elif isinstance(value, list):
                for item in value:
                    if isinstance(item, BaseModel):
                        walk(item)

    walk(c)
    return out


odd_decimals = st.one_of(
    st.sampled_from(["NaN", "sNaN", "Infinity", "-Infinity", "0", "-0.01", "1E+60", "1E-60"]).map(
        Decimal
    ),
    st.decimals(allow_nan=True, allow_infinity=True),
)
odd_strings = st.one_of(st.text(max_size=20), st.sampled_from(["", " ", "Exento", "XXX", "99"]))


@st.composite
def broken_invoices(draw: st.DrawFn) -> Comprobante:
    data = draw(st.sampled_from([base_data, publico_data, pago_data]))()
    c = load(completed_data(data) if draw(st.booleans()) else data)
    fields = _nodes(c)
    for _ in range(draw(st.integers(1, 4))):
        node, name, value = draw(st.sampled_from(fields))
        info = type(node).model_fields[name]
        kinds = {info.annotation, *get_args(info.annotation)}
        # values of the field's own type only: what load_invoice can produce
        none = st.none() if type(None) in kinds else st.nothing()
        if get_origin(info.annotation) is list:
            new: Any = draw(st.lists(odd_strings, max_size=2)) if str in kinds else []
        elif Decimal in kinds:
            new = draw(st.one_of(none, odd_decimals))
        elif str in kinds:
            new = draw(st.one_of(none, odd_strings))
        elif type(None) in kinds:
            new = None
        else:
            continue  # a required node or integer
        object.__setattr__(node, name, new)
    return c


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(broken_invoices())
def test_validate_never_raises_nor_gives_up(c: Comprobante) -> None:
    problems = validate(c)
    assert all(p.code != "CONN-REGLA" for p in problems), [str(p) for p in problems]
    assert all(p.message for p in problems)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(broken_invoices())
def test_complete_never_raises(c: Comprobante) -> None:
    validate(complete(c))
