"""A file in another encoding than its source's is refused by name, never stamped as mojibake.

A real pipeline on real folders, the sandbox PAC over HTTP on 127.0.0.1 (issue 17, item 3).
"""

from __future__ import annotations

import json
from pathlib import Path

from lxml import etree

from tests.daemon.conftest import dat_invoice, stamps_by_key, start_pipeline, write_config

CP1252_SOURCE = """
[[sources]]
name = "windows"
inbox = "inbox-cp"
adapter = "dat"
include = ["*.dat"]
emisor = "EKU9003173C9"
pac = "sandbox"
stable_seconds = 0
archive = "archive"
failed = "failed"
options = { encoding = "cp1252" }
[sources.output]
xml = "out/xml"
errors = "out/errors"
"""


def _named(serie: str, folio: str, nombre: str) -> str:
    return dat_invoice(serie, folio).replace("XOCHILT CASAS CHAVEZ", nombre)


def _errors(ws: Path, name: str) -> list[dict[str, str]]:
    return json.loads((ws / "failed" / f"{name}.error.json").read_text(encoding="utf-8"))["errors"]


def test_utf8_and_utf16_exports_are_refused_by_a_cp1252_source_and_read_by_auto(
    tmp_path: Path, sandbox
) -> None:
    config = write_config(
        tmp_path / "ws", timbrado_url=sandbox.fel_timbrado_url, extra_sources=CP1252_SOURCE
    )
    ws = config.parent
    (ws / "inbox-cp").mkdir()
    nombre = "CAÑÓN PEÑA"
    # a cp1252 source: its own bytes are stamped; UTF-8 (with or without BOM) and UTF-16 not
    (ws / "inbox-cp" / "bien.dat").write_bytes(_named("W", "1", nombre).encode("cp1252"))
    (ws / "inbox-cp" / "utf8.dat").write_bytes(_named("W", "2", nombre).encode("utf-8"))
    (ws / "inbox-cp" / "bom.dat").write_bytes(b"\xef\xbb\xbf" + dat_invoice("W", "3").encode())
    (ws / "inbox-cp" / "utf16.dat").write_bytes(_named("W", "4", nombre).encode("utf-16"))
    # the default source (encoding auto) reads UTF-8 and UTF-16 as what they are, and refuses
    # text that was mangled before it was written
    (ws / "inbox" / "a-utf8.dat").write_bytes(_named("U", "1", nombre).encode("utf-8"))
    (ws / "inbox" / "a-utf16.dat").write_bytes(_named("U", "2", nombre).encode("utf-16"))
    mangled = nombre.encode("utf-8").decode("cp1252")  # "CAÃ‘Ã“N PEÃ‘A"
    (ws / "inbox" / "a-mal.dat").write_bytes(_named("U", "3", mangled).encode("utf-8"))
    pipe = start_pipeline(config)
    try:
        assert pipe.run_until_idle(60)
    finally:
        pipe.close()
    stamped = stamps_by_key(sandbox.store)
    assert set(stamped) == {("W", "1"), ("U", "1"), ("U", "2")}
    for xml in (ws / "out" / "xml").glob("*.xml"):
        receptor = etree.fromstring(xml.read_bytes()).find("{*}Receptor")
        assert receptor is not None and receptor.get("Nombre") == nombre

    (utf8,) = _errors(ws, "utf8.dat")
    assert utf8["code"] == "CONN-DECODE-UTF8" and utf8["location"] == "utf8.dat:3"
    assert "UTF-8" in utf8["message"] and "cp1252" in utf8["message"]
    assert "'CAÑÓN' se leería como 'CAÃ‘Ã“N'" in utf8["message"]
    (bom,) = _errors(ws, "bom.dat")
    assert bom["code"] == "CONN-DECODE-UTF8" and "BOM" in bom["message"]
    # one error naming UTF-16, not one per line about unknown record types
    (utf16,) = _errors(ws, "utf16.dat")
    assert utf16["code"] == "CONN-DECODE-UTF16" and "UTF-16 LE" in utf16["message"]
    (mal,) = _errors(ws, "a-mal.dat")
    assert mal["code"] == "CONN-DECODE-MOJIBAKE" and mal["location"] == "a-mal.dat:3"
    assert "'CAÃ‘Ã“N' es 'CAÑÓN'" in mal["message"]
