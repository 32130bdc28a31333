"""The cheap paths of ``FastOperation`` give exactly what the lxml/zeep paths give.

* The envelope written from a byte template equals, byte for byte, the one lxml builds (and
  zeep sends), for any text; text lxml escapes otherwise or refuses goes to lxml itself, so the
  same bytes or the same exception come out.
"""

from __future__ import annotations

import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from connector.pac.base import FastOperation, Timeouts, _plain_utf8
from connector.pac.fel import _FAST_TIMBRADO, FelDriver

# characters where lxml's behaviour changes, mixed into the generated text
SPECIAL = "&<>\"'\t\n\r\x00\x01\x08\x0b\x0c\x1f\x7f\x85\xa0\u2028\ud7ff\ud800\udfff\ue000\ufffd\ufffe\uffff\U00010000\U0010ffff"
texts = st.text(
    st.one_of(st.characters(exclude_categories=()), st.sampled_from(SPECIAL)), max_size=40
)


@pytest.fixture(scope="module")
def fel():
    d = FelDriver("u", "p", timbrado_url="http://127.0.0.1:9/WSCFDI33.svc", timeouts=Timeouts(1, 1))
    yield d
    d.close()


def fast_ops(fel: FelDriver) -> list[FastOperation]:
    svc = fel.timbrado
    assert svc is not None
    ops = [svc.fast_op(op) for op in sorted(_FAST_TIMBRADO)]
    assert all(op is not None for op in ops)
    return ops  # type: ignore[return-value]


def outcome(fn: Any) -> Any:
    try:
        return fn()
    except (TypeError, ValueError) as exc:  # UnicodeEncodeError is a ValueError
        return (type(exc), str(exc))


def lxml_text(value: str) -> bytes:
    el = etree.Element("p")
    el.text = value
    return etree.tostring(el, encoding="utf-8")[3:-4]


def test_every_hot_operation_uses_the_byte_template(fel):
    for fop in fast_ops(fel):
        assert fop._text is not None, fop.name


def test_plain_text_is_what_lxml_writes_for_every_character():
    """Each code point (the astral planes sampled): where _plain_utf8 writes it, lxml writes
    the same bytes; where it does not, lxml refuses it or writes it otherwise (\\r)."""
    code_points = [*range(0x10000), *range(0x10000, sys.maxunicode + 1, 97), sys.maxunicode]
    left_to_lxml = set()
    for cp in code_points:
        ch = chr(cp)
        ours = _plain_utf8(ch)
        theirs = outcome(lambda ch=ch: lxml_text(ch))
        if ours is not None:
            assert ours == theirs, hex(cp)
        else:
            left_to_lxml.add(cp)
    expected = {*range(0x09), 0x0B, 0x0C, *range(0x0D, 0x20), *range(0xD800, 0xE000)}
    assert left_to_lxml == expected | {0xFFFE, 0xFFFF}
    assert lxml_text("\r") == b"&#13;"


@settings(max_examples=300, deadline=None)
@given(values=st.lists(st.one_of(st.none(), texts), min_size=4, max_size=4))
def test_the_envelope_equals_lxmls_for_any_text(fel, values):
    for fop in fast_ops(fel):
        params = dict(zip((k for k, _ in fop.params), values, strict=False))
        assert outcome(lambda fop=fop, p=params: fop.envelope(p)) == outcome(
            lambda fop=fop, p=params: fop._lxml_envelope(p)
        ), fop.name


@settings(max_examples=100, deadline=None)
@given(cadena=texts, referencia=st.one_of(st.none(), texts), usuario=texts)
def test_the_envelope_equals_zeeps_for_any_valid_text(fel, cadena, referencia, usuario):
    svc = fel.timbrado
    fop = svc.fast_op("TimbrarCFDI")
    params = {"usuario": usuario, "password": "p&<>", "cadenaXML": cadena, "referencia": referencia}
    ours = outcome(lambda: fop.envelope(params))
    if isinstance(ours, bytes):
        env = svc.client.create_message(svc.service, "TimbrarCFDI", **params)
        assert ours == etree.tostring(env, xml_declaration=True, encoding="utf-8")
    else:  # refused: as the lxml builder refuses it (zeep's message differs, not the kind)
        assert ours == outcome(lambda: fop._lxml_envelope(params))


def test_wrong_parameters_are_refused_as_before(fel):
    fop = fel.timbrado.fast_op("ObtenerAcuseEnvio")
    assert outcome(lambda: fop.envelope({"usuario": "u", "otro": "x"})) == (
        TypeError,
        "ObtenerAcuseEnvio() got unexpected arguments ['otro']",
    )
    for bad in ({"usuario": "u", "password": 5}, {"usuario": "\x01", "password": 5}):
        assert outcome(lambda b=bad: fop.envelope(b)) == outcome(
            lambda b=bad: fop._lxml_envelope(b)
        )
    assert outcome(lambda: fop.envelope({"usuario": 5, "password": "\x01"})) == (
        TypeError,
        "ObtenerAcuseEnvio: 'usuario' debe ser texto",
    )
    # nothing given: lxml writes the empty request element, so lxml writes it
    assert fop.envelope({}) == fop._lxml_envelope({})
    assert b"<ns0:ObtenerAcuseEnvio xmlns:ns0=" in fop.envelope({})


# --- reading replies --------------------------------------------------------------------------

NS_R = "http://schemas.datacontract.org/2004/07/TES.TFD.V33.Negocios"


def typed(value: Any) -> Any:
    """A reply as nested (type, repr) pairs: equal only when the Python values are the same
    (a datetime's tzinfo class included), not merely ==."""
    if isinstance(value, dict):
        return {k: typed(v) for k, v in value.items()}
    if hasattr(value, "__values__"):
        return {k: typed(v) for k, v in value.__values__.items()}
    return (type(value), repr(value))


def zeep_reads(fel: FelDriver, operation: str, status: int, content: bytes) -> Any:
    import requests

    svc = fel.timbrado
    response = requests.Response()
    response.status_code = status
    response._content = content
    response.headers["Content-Type"] = "text/xml; charset=utf-8"
    binding = svc.service._binding
    return binding.process_reply(svc.client, binding._operations[operation], response)


def reply_xml(
    operation: str, fields: dict[str, str | None], timbre: dict[str, str | None]
) -> bytes:
    def els(d: dict[str, str | None]) -> str:
        out = []
        for k, v in d.items():
            if v is None:
                out.append(
                    f'<a1:{k} xmlns:i="http://www.w3.org/2001/XMLSchema-instance" i:nil="true"/>'
                )
            else:
                v = v.replace("&", "&amp;").replace("<", "&lt;")
                out.append(f"<a1:{k}>{v}</a1:{k}>")
        return "".join(out)

    return (
        "<?xml version='1.0' encoding='utf-8'?>"
        '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" '
        f'xmlns:a0="http://tempuri.org/" xmlns:a1="{NS_R}"><s:Body>'
        f"<a0:{operation}Response><a0:{operation}Result>{els(fields)}"
        f"<a1:Timbre>{els(timbre)}</a1:Timbre>"
        f"</a0:{operation}Result></a0:{operation}Response></s:Body></s:Envelope>"
    ).encode()


ws = st.sampled_from(["", " ", "\t", "\n", "\r\n", "\xa0", "\u2003", "\x1f"])
booleans = st.builds(
    lambda a, v, b: a + v + b, ws, st.sampled_from(["true", "1", "false", "0", "True", "t", ""]), ws
)
integers = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    st.builds(
        lambda a, v, b: a + v + b,
        ws,
        st.sampled_from(["12", "1_000", "+3", "-0", "x", "1.5", "٣"]),
        ws,
    ),
)
datetimes = st.one_of(
    st.datetimes().map(lambda d: d.replace(microsecond=0).isoformat()),
    st.datetimes().map(lambda d: d.isoformat()),
    st.datetimes().map(lambda d: d.isoformat(" ")),
    st.datetimes().map(lambda d: d.date().isoformat()),
    st.datetimes().map(lambda d: d.replace(microsecond=0).isoformat() + "Z"),
    st.datetimes().map(lambda d: d.replace(microsecond=0).isoformat() + "-06:00"),
    st.text("0123456789-T: Z.+", min_size=17, max_size=21),
    st.sampled_from(
        [
            "2026-02-29T10:00:00",
            "2024-02-29T10:00:00",
            "2026-02-30T10:00:00",
            "2026-13-01T00:00:00",
            "2026-00-10T00:00:00",
            "0000-01-01T00:00:00",
            "0001-01-01T00:00:00",
            "9999-12-31T23:59:59",
            "2026-01-01T24:00:00",
            "2026-01-01T23:60:00",
            "2026-01-01T23:59:60",
            "２０２６-01-01T00:00:00",
            " 2026-01-01T00:00:00 ",
            "2026-01-01 00:00:00",
            "2026-01-01t00:00:00",
        ]
    ),
)


@settings(max_examples=300, deadline=None)
@given(
    fecha=datetimes,
    exitosa=booleans,
    creditos=st.one_of(st.none(), integers),
    codigo=st.one_of(st.none(), texts.filter(lambda t: "\r" not in t)),
    operation=st.sampled_from(sorted(_FAST_TIMBRADO)),
)
def test_replies_read_to_the_same_values_as_zeeps(fel, fecha, exitosa, creditos, codigo, operation):
    fields = {"CodigoRespuesta": codigo, "CreditosRestantes": creditos, "OperacionExitosa": exitosa}
    timbre = {"FechaTimbrado": fecha, "UUID": "85C4C987-B8F2-4853-8ACA-6043E2D35FEA"}
    try:
        content = reply_xml(operation, fields, timbre)
        etree.fromstring(content)
    except (ValueError, etree.XMLSyntaxError):  # text XML cannot carry: no reply to read
        return
    fop = fel.timbrado.fast_op(operation)
    assert typed(fop.reply(200, content)) == typed(zeep_reads(fel, operation, 200, content))


def test_the_cheap_converters_are_used_and_agree_on_the_sandboxs_values(fel):
    from connector.pac.base import _boolean, _datetime

    fop = fel.timbrado.fast_op("TimbrarCFDI")
    convs = {name: conv for name, conv in fop.result.values()}
    assert convs["OperacionExitosa"] is _boolean
    assert convs["CreditosRestantes"] is int
    assert convs["XMLResultado"] is None
    assert {n: c for n, c in convs["Timbre"].values()}["FechaTimbrado"] is _datetime
    content = reply_xml(
        "TimbrarCFDI",
        {"CodigoRespuesta": "200", "CreditosRestantes": "999999", "OperacionExitosa": "true"},
        {"FechaTimbrado": "2026-11-21T09:44:41", "UUID": "X"},
    )
    fast = fop.reply(200, content)
    assert typed(fast) == typed(zeep_reads(fel, "TimbrarCFDI", 200, content))
    assert fast["Timbre"]["FechaTimbrado"].tzinfo is None
