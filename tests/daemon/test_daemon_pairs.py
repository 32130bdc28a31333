"""End to end: a CSV export as a header file + lines file, through the daemon and the sandbox."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

from lxml import etree

from connector.config import check_config
from tests.daemon.conftest import REPO, stamps_by_key, start_pipeline, write_config

MAPPING = REPO / "connector" / "demo" / "erp" / "ventas_csv.mapping.toml"
PAIR_SOURCE = f"""
[[sources]]
name = "csv-pares"
inbox = "inbox"
adapter = "csv"
include = ["ventas_*.csv"]
mapping = "{MAPPING}"
emisor = "EKU9003173C9"
pac = "sandbox"
stable_seconds = 0.2
archive = "archive"
failed = "failed"
[sources.options]
delimiter = ";"
encoding = "cp1252"
key = ["SERIE", "FOLIO"]
[sources.pair]
header_suffix = "_H"
lines_suffix = "_D"
orphan_seconds = 600
[sources.output]
xml = "out/xml"
errors = "out/errors"
"""


def _fecha() -> str:
    return (datetime.now() - timedelta(minutes=5)).strftime("%d/%m/%Y %H:%M:%S")


def test_a_pair_becomes_stamped_xml_and_both_files_are_archived_together(
    tmp_path: Path, sandbox
) -> None:
    config = write_config(
        tmp_path / "ws", timbrado_url=sandbox.fel_timbrado_url, extra_sources=PAIR_SOURCE
    )
    ws = config.parent
    inbox = ws / "inbox"
    f = _fecha()
    header = (
        "SERIE;FOLIO;FECHA;CLIENTE;FORMA_PAGO;CONDICIONES\r\n"
        f"P;1;{f};C001;TRANSFERENCIA;CONTADO\r\n"
        f"P;2;{f};C002;EFECTIVO;CONTADO\r\n"
    )
    lines = (
        "SERIE;FOLIO;ARTICULO;DESCRIPCION;CANTIDAD;PRECIO;DESCUENTO\r\n"
        "P;1;A100;Cañón de proyección;1;12.500,00;500,00\r\n"
        "P;2;A200;Extensión eléctrica;3;150,50;0,00\r\n"
        "P;1;A200;Extensión eléctrica;2;150,50;0,00\r\n"
    )
    (inbox / "ventas_0415_H.csv").write_bytes(header.encode("cp1252"))
    (inbox / "ventas_0415_D.csv").write_bytes(lines.encode("cp1252"))
    # a second pair with a line whose key has no invoice: both files fail together
    (inbox / "ventas_0416_H.csv").write_bytes(
        f"SERIE;FOLIO;FECHA;CLIENTE;FORMA_PAGO;CONDICIONES\r\nP;3;{f};C001;EFECTIVO;\r\n".encode()
    )
    (inbox / "ventas_0416_D.csv").write_bytes(
        b"SERIE;FOLIO;ARTICULO;DESCRIPCION;CANTIDAD;PRECIO;DESCUENTO\r\n"
        b"P;3;A100;Uno;1;10,00;\r\nP;9;A100;Sin factura;1;10,00;\r\n"
    )
    pipe = start_pipeline(config)
    try:
        assert pipe.run_until_idle(60)
    finally:
        pipe.close()
    xmls = sorted(p.name for p in (ws / "out" / "xml").iterdir() if not p.name.startswith("."))
    assert [n.split("_")[0] for n in xmls] == ["P1", "P2", "P3"]
    root = etree.fromstring((ws / "out" / "xml" / xmls[0]).read_bytes())
    ns = {"cfdi": "http://www.sat.gob.mx/cfd/4"}
    assert [c.get("Descripcion") for c in root.findall(".//cfdi:Concepto", ns)] == [
        "Cañón de proyección",
        "Extensión eléctrica",
    ]
    assert {k: len(v) for k, v in stamps_by_key(sandbox.store).items()} == {
        ("P", "1"): 1,
        ("P", "2"): 1,
        ("P", "3"): 1,
    }
    (day,) = (ws / "archive").iterdir()
    assert sorted(p.name for p in day.iterdir()) == ["ventas_0415_D.csv", "ventas_0415_H.csv"]
    assert (day / "ventas_0415_D.csv").read_bytes() == lines.encode("cp1252")
    assert sorted(p.name for p in (ws / "failed").iterdir()) == [
        "ventas_0416_D.csv",
        "ventas_0416_H.csv",
        "ventas_0416_H.csv.error.json",
        "ventas_0416_H.csv.error.txt",
    ]
    doc = json.loads((ws / "failed" / "ventas_0416_H.csv.error.json").read_text("utf-8"))
    assert doc["delivered"] == ["P3"]
    assert [(e["code"], e["location"]) for e in doc["errors"]] == [
        ("CONN-CSV-KEY", "ventas_0416_D.csv:3")
    ]
    assert list(inbox.iterdir()) == [] and list((ws / "work" / "csv-pares").iterdir()) == []


def test_check_config_reports_bad_pair_options(tmp_path: Path, sandbox) -> None:
    bad = PAIR_SOURCE.replace('lines_suffix = "_D"', 'lines_suffix = "H"').replace(
        'key = ["SERIE", "FOLIO"]', 'key = []\nheader = false\ncolumns = ["A"]'
    )
    bad += '\n[[sources]]\nname = "dat-pares"\ninbox = "inbox"\nadapter = "dat"\n'
    bad += 'emisor = "EKU9003173C9"\npac = "sandbox"\narchive = "archive"\nfailed = "failed"\n'
    bad += '[sources.pair]\norphan_seconds = 0\n[sources.output]\nxml = "out/xml"\n'
    config = write_config(tmp_path / "ws", timbrado_url=sandbox.fel_timbrado_url, extra_sources=bad)
    cfg, problems = check_config(config)
    assert cfg is None
    found = {(p.code, p.path) for p in problems}
    assert ("CONN-CFG-VALOR", "sources[2].pair") in found  # "_H" ends with "H"
    msgs = [p.message for p in problems if p.path == "sources[2].pair"]
    assert any("lines_columns" in m for m in msgs) and any("key" in m for m in msgs)
    assert ("CONN-CFG-VALOR", "sources[3].pair.orphan_seconds") in found
    assert all(p.location and "connector.toml:" in p.location for p in problems)


def _pair_files(folio: str) -> tuple[bytes, bytes]:
    header = f"SERIE;FOLIO;FECHA;CLIENTE;FORMA_PAGO;CONDICIONES\r\nP;{folio};{_fecha()};C001;;\r\n"
    lines = "SERIE;FOLIO;ARTICULO;DESCRIPCION;CANTIDAD;PRECIO;DESCUENTO\r\n"
    lines += f"P;{folio};A100;Uno;1;10,00;\r\n"
    return header.encode(), lines.encode()


def test_a_half_alone_too_long_becomes_an_error_file_and_is_kept(tmp_path: Path, sandbox) -> None:
    source = PAIR_SOURCE.replace("orphan_seconds = 600", "orphan_seconds = 0.3")
    config = write_config(
        tmp_path / "ws", timbrado_url=sandbox.fel_timbrado_url, extra_sources=source
    )
    ws = config.parent
    header, _ = _pair_files("5")
    (ws / "inbox" / "ventas_0501_H.csv").write_bytes(header)
    pipe = start_pipeline(config)
    try:
        assert pipe.run_until_idle(60)
    finally:
        pipe.close()
    assert (ws / "failed" / "ventas_0501_H.csv").read_bytes() == header
    doc = json.loads((ws / "failed" / "ventas_0501_H.csv.error.json").read_text("utf-8"))
    ((code, location, message),) = [(e["code"], e["location"], e["message"]) for e in doc["errors"]]
    assert (code, location) == ("CONN-PAR-INCOMPLETO", "ventas_0501_H.csv")
    assert "ventas_0501_D.csv" in message
    assert sandbox.store.count() == 0


def test_a_pair_left_in_work_by_a_crash_is_resumed_as_one_file(tmp_path: Path, sandbox) -> None:
    config = write_config(
        tmp_path / "ws", timbrado_url=sandbox.fel_timbrado_url, extra_sources=PAIR_SOURCE
    )
    ws = config.parent
    work = ws / "work" / "csv-pares"
    work.mkdir(parents=True)
    header, lines = _pair_files("6")
    (work / "20250101T000000-0a0b0c0d--ventas_0601_H.csv").write_bytes(header)
    (work / "20250101T000000-0a0b0c0d--ventas_0601_D.csv").write_bytes(lines)
    pipe = start_pipeline(config)
    try:
        assert pipe.run_until_idle(60)
    finally:
        pipe.close()
    (day,) = (ws / "archive").iterdir()
    assert sorted(p.name for p in day.iterdir()) == ["ventas_0601_D.csv", "ventas_0601_H.csv"]
    assert list(work.iterdir()) == [] and list((ws / "failed").iterdir()) == []
    assert {k: len(v) for k, v in stamps_by_key(sandbox.store).items()} == {("P", "6"): 1}


def test_submit_takes_the_other_file_along_and_replay_puts_both_back(
    tmp_path: Path, sandbox, capsys
) -> None:
    from connector.cli import main

    config = write_config(
        tmp_path / "ws", timbrado_url=sandbox.fel_timbrado_url, extra_sources=PAIR_SOURCE
    )
    ws = config.parent
    given = tmp_path / "given"
    given.mkdir()
    header, lines = _pair_files("7")
    (given / "ventas_0701_H.csv").write_bytes(header)
    (given / "ventas_0701_D.csv").write_bytes(lines)
    args = ["submit", str(given / "ventas_0701_H.csv"), "--config", str(config)]
    assert main([*args, "--source", "csv-pares"]) == 0
    assert "TIMBRADA P7" in capsys.readouterr().out
    assert sorted(p.name for p in given.iterdir()) == ["ventas_0701_D.csv", "ventas_0701_H.csv"]
    # a pair that fails (its line has no invoice) is replayed as a pair
    header, _ = _pair_files("8")
    (ws / "inbox" / "ventas_0801_H.csv").write_bytes(header)
    (ws / "inbox" / "ventas_0801_D.csv").write_bytes(_pair_files("9")[1])
    pipe = start_pipeline(config)
    try:
        assert pipe.run_until_idle(60)
    finally:
        pipe.close()
    assert (ws / "failed" / "ventas_0801_D.csv").is_file()
    assert main(["replay", "--config", str(config), "--file", "ventas_0801_H.csv"]) == 0
    assert sorted(p.name for p in (ws / "inbox").iterdir()) == [
        "ventas_0801_D.csv",
        "ventas_0801_H.csv",
    ]
    assert not (ws / "failed" / "ventas_0801_D.csv").exists()
    (ws / "inbox" / "ventas_0801_D.csv").write_bytes(_pair_files("8")[1])  # the ERP fixes it
    pipe = start_pipeline(config)
    try:
        assert pipe.run_until_idle(60)
    finally:
        pipe.close()
    assert {k: len(v) for k, v in stamps_by_key(sandbox.store).items()} == {
        ("P", "7"): 1,
        ("P", "8"): 1,
    }
    (day,) = (ws / "archive").iterdir()
    assert sorted(p.name for p in day.iterdir()) == [  # the submitted copies too
        "ventas_0701_D.csv",
        "ventas_0701_H.csv",
        "ventas_0801_D.csv",
        "ventas_0801_H.csv",
    ]


def test_a_pair_with_suffixes_of_different_length_and_a_name_at_the_limit_is_stamped(
    tmp_path: Path, sandbox
) -> None:
    """``_H`` and ``_LINEAS``: a header name of exactly the room left for a name in work/ (its
    lines file's name is 5 bytes longer): both are claimed under the same form, the invoice is
    stamped from the two files and both are archived with their own names."""
    from connector.adapters.folder import _CLAIMING, _PREFIX_LEN, _SEP
    from connector.sinks import NAME_MAX

    source = PAIR_SOURCE.replace('lines_suffix = "_D"', 'lines_suffix = "_LINEAS"')
    config = write_config(
        tmp_path / "ws", timbrado_url=sandbox.fel_timbrado_url, extra_sources=source
    )
    ws = config.parent
    room = NAME_MAX - _PREFIX_LEN - len(_SEP) - 1 - len(_CLAIMING)
    base = "ventas_" + "n" * (room - len("ventas__H.csv"))
    header, lines = _pair_files("9")
    (ws / "inbox" / f"{base}_LINEAS.csv").write_bytes(lines)
    (ws / "inbox" / f"{base}_H.csv").write_bytes(header)
    assert len(f"{base}_H.csv".encode()) == room
    pipe = start_pipeline(config)
    try:
        assert pipe.run_until_idle(60)
    finally:
        pipe.close()
    archived = sorted(p.name for p in (ws / "archive").rglob("*.csv"))
    assert archived == sorted([f"{base}_H.csv", f"{base}_LINEAS.csv"])
    assert list((ws / "failed").iterdir()) == []
    assert sandbox.store.count() == 1


def test_check_config_warns_when_a_set_could_be_taken_incomplete_before_a_takeover(
    tmp_path: Path, sandbox, pg_journal_db: str, capsys
) -> None:
    """On a shared journal, a source of file sets whose orphan_seconds is not past twice the
    instance lease: check-config accepts it but says why and what to set (a connector that
    stops between a set's first file and its others would leave them to be taken as an
    incomplete set before another could join them). Not on SQLite, nor with the default."""
    from connector.cli import main
    from tests.daemon.conftest import pg_schema_url

    config = write_config(
        tmp_path / "ws",
        timbrado_url=sandbox.fel_timbrado_url,
        extra_sources=PAIR_SOURCE.replace("orphan_seconds = 600", "orphan_seconds = 45"),
    )
    alone = config.read_text(encoding="utf-8")
    shared = alone.replace(
        'journal = "var/journal.sqlite"', f'journal = "{pg_schema_url(pg_journal_db)}"'
    )
    for text, warned in ((shared, True), (alone, False),
                         (shared.replace("orphan_seconds = 45", "orphan_seconds = 600"), False)):  # fmt: skip
        config.write_text(text, encoding="utf-8")
        assert main(["check-config", "--config", str(config)]) == 0
        out = capsys.readouterr()
        shown = out.out + out.err
        assert ("AVISO CONN-CFG-HUERFANO" in shown) is warned, shown
        if warned:
            assert "(sources[2].pair.orphan_seconds)" in shown and "'csv-pares'" in shown
            assert "45 segundos" in shown and "30 segundos" in shown
