"""``cfdi-connector validate | seal | verify`` on real files (connector.cli)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from connector.cfdi.csd import MEXICO_TZ
from connector.cfdi.seal import verify_seal
from connector.cfdi.xmlio import from_xml, parse_xml_bytes, validate_xsd
from connector.cli import main

from .strategies import CSD_PASSWORD, SAMPLES, TESTCSD

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config" / "examples" / "factura.json"
CSD = TESTCSD / "eku9003173c9_csd_2023_30001000000500003416"
FIEL = TESTCSD / "eku9003173c9_fiel_2023_30001000000500003415"
SAMPLE_I = SAMPLES / "cfdi40-valid_CfdiUtils.xml"
SAMPLE_P = SAMPLES / "cfdi40-pago20-valid_CfdiUtils.xml"
PAC_CERT = SAMPLES / "sat_test_pac_cert_30001000000500003456.cer"


def _seal_args(src: Path, out: Path, base: Path = CSD) -> list[str]:
    return [
        "seal",
        str(src),
        "--cer",
        str(base.with_suffix(".cer")),
        "--key",
        str(base.with_suffix(".key")),
        "--password-env",
        "CFDI_TEST_CSD_PASSWORD",
        "-o",
        str(out),
    ]


@pytest.fixture
def password_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CFDI_TEST_CSD_PASSWORD", CSD_PASSWORD)


def test_example_invoice_validates(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(EXAMPLE)]) == 0
    assert "válido" in capsys.readouterr().out


def test_seal_example_with_now_then_verify_and_validate(
    tmp_path: Path, password_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "factura.xml"
    before = datetime.now(MEXICO_TZ).replace(tzinfo=None, microsecond=0)
    assert main([*_seal_args(EXAMPLE, out), "--now"]) == 0
    assert "sellado con el CSD 30001000000500003416" in capsys.readouterr().out
    data = out.read_bytes()
    assert verify_seal(data) == [] and validate_xsd(data) == []
    c = from_xml(data)
    assert datetime.fromisoformat(c.Fecha) >= before
    assert c.Conceptos[0].Importe is not None and c.Total is not None  # amounts completed
    assert [p.name for p in tmp_path.iterdir()] == ["factura.xml"]  # no temp file left
    assert main(["verify", str(out)]) == 0
    assert main(["validate", str(out)]) == 0


def test_seal_keeps_the_json_fecha_without_now(tmp_path: Path, password_env: None) -> None:
    out = tmp_path / "f.xml"
    assert main(_seal_args(EXAMPLE, out)) == 0
    assert from_xml(out.read_bytes()).Fecha == json.loads(EXAMPLE.read_text())["Fecha"]


def test_seal_an_unsealed_xml_drop(tmp_path: Path, password_env: None) -> None:
    root = parse_xml_bytes(SAMPLE_P.read_bytes())
    for name in ("Sello", "Certificado", "NoCertificado"):
        del root.attrib[name]
    src = tmp_path / "erp.xml"
    from lxml import etree

    src.write_bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
    out = tmp_path / "sellado.xml"
    assert main(_seal_args(src, out)) == 0
    assert parse_xml_bytes(out.read_bytes()).get("Sello") == parse_xml_bytes(
        SAMPLE_P.read_bytes()
    ).get("Sello")


def test_seal_password_from_file(tmp_path: Path) -> None:
    pw = tmp_path / "pw.txt"
    pw.write_text(CSD_PASSWORD + "\n")
    out = tmp_path / "f.xml"
    args = _seal_args(EXAMPLE, out)
    i = args.index("--password-env")
    args[i : i + 2] = ["--password-file", str(pw)]
    assert main(args) == 0 and verify_seal(out.read_bytes()) == []


def test_password_is_never_a_plain_argument() -> None:
    with pytest.raises(SystemExit):
        main(["seal", str(EXAMPLE), "--cer", "a", "--key", "b", "--password", "x", "-o", "o"])
    with pytest.raises(SystemExit):  # one of --password-env / --password-file is required
        main(["seal", str(EXAMPLE), "--cer", "a", "--key", "b", "-o", "o"])


def test_seal_refusals_print_codes_and_write_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "f.xml"
    monkeypatch.setenv("CFDI_TEST_CSD_PASSWORD", "equivocada-123")
    assert main(_seal_args(EXAMPLE, out)) == 1
    text = capsys.readouterr().out
    assert "CONN-CSD-PASSWORD" in text and "equivocada-123" not in text
    monkeypatch.setenv("CFDI_TEST_CSD_PASSWORD", CSD_PASSWORD)
    assert main(_seal_args(EXAMPLE, out, FIEL)) == 1
    assert "CONN-CSD-FIEL" in capsys.readouterr().out
    monkeypatch.delenv("CFDI_TEST_CSD_PASSWORD")
    assert main(_seal_args(EXAMPLE, out)) == 2
    assert "no existe" in capsys.readouterr().out
    assert not out.exists()


def test_seal_refuses_an_invoice_that_breaks_sat_rules(
    tmp_path: Path, password_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    data = json.loads(EXAMPLE.read_text())
    data["FormaPago"] = "77"  # not in c_FormaPago
    data["Conceptos"][0]["Cantidad"] = "abc"
    bad = tmp_path / "mala.json"
    bad.write_text(json.dumps(data))
    assert main(_seal_args(bad, tmp_path / "o.xml")) == 1
    assert "CONN-DATA" in capsys.readouterr().out
    data["Conceptos"][0]["Cantidad"] = "2"
    bad.write_text(json.dumps(data))
    assert main(_seal_args(bad, tmp_path / "o.xml")) == 1
    assert "CFDI40104" in capsys.readouterr().out
    assert not (tmp_path / "o.xml").exists()


def test_validate_reports_every_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "mala.xml"
    bad.write_bytes(
        SAMPLE_I.read_bytes()
        .replace(b'Rfc="MCI7306249Y1"', b'Rfc="no-es-rfc"')
        .replace(b'FormaPago="01"', b'FormaPago="77"')
    )
    assert main(["validate", str(bad)]) == 1
    text = capsys.readouterr().out
    assert "CONN-XSD" in text and "Receptor" in text and "error(es)" in text
    broken = tmp_path / "rota.xml"
    broken.write_bytes(b"<cfdi:Comprobante")
    assert main(["validate", str(broken)]) == 1
    assert "CONN-XML-MALFORMED" in capsys.readouterr().out
    notjson = tmp_path / "x.json"
    notjson.write_text("{no json")
    assert main(["validate", str(notjson)]) == 1
    assert "CONN-JSON" in capsys.readouterr().out
    assert main(["validate", str(tmp_path / "no-existe.xml")]) == 2


def test_verify_with_and_without_the_pac_certificate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["verify", str(SAMPLE_I), "--pac-cert", str(PAC_CERT)]) == 0
    assert "SelloSAT" in capsys.readouterr().out
    assert main(["verify", str(SAMPLE_I)]) == 0
    assert "--pac-cert" in capsys.readouterr().out
    bad = tmp_path / "alterada.xml"
    bad.write_bytes(SAMPLE_I.read_bytes().replace(b'Total="3327.01"', b'Total="3327.02"'))
    assert main(["verify", str(bad)]) == 1
    assert "CFDI40102" in capsys.readouterr().out


def test_entry_point_runs_as_a_process(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "connector.cli", "verify", str(SAMPLE_P)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "válido" in proc.stdout


def test_seal_refuses_an_xml_drop_that_breaks_sat_rules(
    tmp_path: Path, password_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    root = parse_xml_bytes(SAMPLE_P.read_bytes())
    for name in ("Sello", "Certificado", "NoCertificado"):
        del root.attrib[name]
    root.set("FormaPago", "01")  # a tipo P must not carry FormaPago (CFDI40103)
    from lxml import etree

    src = tmp_path / "erp.xml"
    src.write_bytes(etree.tostring(root))
    assert main(_seal_args(src, tmp_path / "o.xml")) == 1
    assert "CFDI40103" in capsys.readouterr().out
    assert not (tmp_path / "o.xml").exists()


def test_validate_json_reports_the_root_cause_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a concepto's Descuento over its Importe, amounts left to the connector: the derived
    # negative Base and Importe (SAT rules and XSD minimums) are not reported again
    data = json.loads(EXAMPLE.read_text(encoding="utf-8"))  # amounts left to the connector
    assert "Importe" not in data["Conceptos"][0] and "Total" not in data
    data["Conceptos"][0]["Descuento"] = "99999.00"
    bad = tmp_path / "descuento.json"
    bad.write_text(json.dumps(data), encoding="utf-8")
    assert main(["validate", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "CFDI40169" in out and "1 error(es)" in out, out
