"""Issue 2 acceptance: ``validate``, ``seal`` and ``verify`` used as a person would, with bad
inputs. Every bad input gives a Spanish message with a code and a non-zero exit, never a
traceback (an exception escaping ``main`` fails these tests), and never writes a half file."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.cli import main
from tests.conftest import CSD_PASSWORD, SAMPLES, TESTCSD

CSD = TESTCSD / "eku9003173c9_csd_2023_30001000000500003416"
FIEL = TESTCSD / "eku9003173c9_fiel_2023_30001000000500003415"
OLD_CSD = TESTCSD / "eku9003173c9_csd"  # SAT's earlier test CSD, expired in 2023
EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "examples" / "factura.json"
SAMPLE = SAMPLES / "cfdi40-valid_CfdiUtils.xml"
BOMB = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
    b"<cfdi:Comprobante xmlns:cfdi='http://www.sat.gob.mx/cfd/4'>&lol2;</cfdi:Comprobante>"
)
XXE = (
    b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
    b"<cfdi:Comprobante xmlns:cfdi='http://www.sat.gob.mx/cfd/4'>&e;</cfdi:Comprobante>"
)


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    monkeypatch.setenv("QA_CSD_PW", CSD_PASSWORD)
    monkeypatch.setenv("QA_WRONG_PW", "Equivocada-987")
    made = {
        "notxml": b"esto no es un XML\n",
        "truncated": SAMPLE.read_bytes()[:400],
        "bomb": BOMB,
        "xxe": XXE,
        "foreign": b"<factura><total>10</total></factura>",
        "empty": b"",
        "badjson": b'{"Serie": ',
        "arrayjson": b"[1, 2]",
    }
    out = {}
    for name, data in made.items():
        p = tmp_path / (f"{name}.json" if "json" in name else f"{name}.xml")
        p.write_bytes(data)
        out[name] = p
    return out


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    rc = main(argv)
    cap = capsys.readouterr()
    return rc, cap.out + cap.err


def _seal(src: Path, out: Path, base: Path = CSD, env: str = "QA_CSD_PW") -> list[str]:
    cer, key = str(base.with_suffix(".cer")), str(base.with_suffix(".key"))
    return ["seal", str(src), "--cer", cer, "--key", key, "--password-env", env, "-o", str(out)]


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("notxml", "CONN-XML-MALFORMED"),
        ("truncated", "CONN-XML-MALFORMED"),
        ("bomb", "CONN-XML-DTD"),
        ("xxe", "CONN-XML-DTD"),
        ("foreign", "CONN-XML-NOT-CFDI"),
        ("badjson", "CONN-JSON"),
        ("arrayjson", "CONN-JSON"),
    ],
)
def test_validate_and_verify_bad_documents(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str], name: str, code: str
) -> None:
    rc, text = _run(["validate", str(files[name])], capsys)
    assert rc == 1 and code in text and "NO es válido" in text
    if "json" not in name:
        rc, text = _run(["verify", str(files[name])], capsys)
        assert rc == 1 and code in text
        assert "root:" not in text  # the external entity was never read


@pytest.mark.parametrize("command", ["validate", "verify"])
def test_missing_file_and_directory_are_conn_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    for path in (tmp_path / "no-existe.xml", tmp_path):
        rc, text = _run([command, str(path)], capsys)
        assert rc == 2 and "CONN-FILE" in text and "no se pudo leer" in text


def test_empty_file_is_a_coded_problem(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    rc, text = _run(["validate", str(files["empty"])], capsys)
    assert rc == 1 and "CONN-XML" in text


def test_verify_with_an_unreadable_pac_certificate(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, text = _run(["verify", str(SAMPLE), "--pac-cert", str(tmp_path / "no.cer")], capsys)
    assert rc == 2 and "CONN-FILE" in text
    rc, text = _run(["verify", str(SAMPLE), "--pac-cert", str(files["notxml"])], capsys)
    assert rc == 1 and "CONN-TFD-CERT" in text


def test_seal_into_a_folder_that_does_not_exist(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Was a FileNotFoundError traceback from tempfile.mkstemp (connector/cli.py)."""
    target = tmp_path / "no-existe" / "sellado.xml"
    rc, text = _run([*_seal(EXAMPLE, target), "--now"], capsys)
    assert rc == 2 and "CONN-FILE" in text and "no se pudo escribir" in text
    assert not target.parent.exists()
    rc, text = _run([*_seal(EXAMPLE, tmp_path), "--now"], capsys)  # a folder as output
    assert rc == 2 and "CONN-FILE" in text
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".sellando")] == []


@pytest.mark.parametrize(
    ("which", "code"),
    [
        ("wrong_password", "CONN-CSD-PASSWORD"),
        ("fiel", "CONN-CSD-FIEL"),
        ("expired", "CONN-CSD-EXPIRED"),
        ("swapped", "CONN-CSD-CER"),
        ("missing_cer", "CONN-CSD-FILE"),
        ("not_xml_input", "CONN-XML-MALFORMED"),
        ("bomb_input", "CONN-XML-DTD"),
        ("stamped_input", "CONN-SEAL-STAMPED"),
        ("json_not_invoice", "CONN-JSON"),
    ],
)
def test_seal_refusals(
    files: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    which: str,
    code: str,
) -> None:
    out = tmp_path / "sellado.xml"
    argv = {
        "wrong_password": _seal(EXAMPLE, out, env="QA_WRONG_PW"),
        "fiel": _seal(EXAMPLE, out, FIEL),
        "expired": _seal(EXAMPLE, out, OLD_CSD),
        "missing_cer": _seal(EXAMPLE, out, tmp_path / "no-existe"),
        "not_xml_input": _seal(files["notxml"], out),
        "bomb_input": _seal(files["bomb"], out),
        "stamped_input": _seal(SAMPLE, out),
        "json_not_invoice": _seal(files["arrayjson"], out),
    }.get(which)
    if which == "swapped":
        argv = _seal(EXAMPLE, out)
        cer, key = argv.index("--cer") + 1, argv.index("--key") + 1
        argv[cer], argv[key] = argv[key], argv[cer]
    assert argv is not None
    rc, text = _run(argv, capsys)
    assert rc == 1 and code in text, text
    assert "Equivocada-987" not in text and CSD_PASSWORD not in text
    assert not out.exists()


def test_unset_password_variable_and_unreadable_password_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "o.xml"
    rc, text = _run(_seal(EXAMPLE, out, env="QA_NO_SUCH_VARIABLE"), capsys)
    assert rc == 2 and "CONN-CSD-PASSWORD" in text and "no existe" in text
    argv = _seal(EXAMPLE, out)
    i = argv.index("--password-env")
    argv[i : i + 2] = ["--password-file", str(tmp_path / "no-existe.txt")]
    rc, text = _run(argv, capsys)
    assert rc == 2 and "CONN-CSD-PASSWORD" in text
    assert not out.exists()


@pytest.mark.parametrize(
    ("argv", "spanish"),
    [
        (["seal", "x.json"], "faltan argumentos obligatorios: --cer, --key, -o/--output"),
        (["validate"], "faltan argumentos obligatorios: FILE"),
        (["verify", "a.xml", "--no-existe"], "argumentos desconocidos: --no-existe"),
        (["no-es-comando"], "'no-es-comando' no es válido"),
        ([], "faltan argumentos obligatorios: COMMAND"),
        (
            [
                "seal",
                "x",
                "--cer",
                "a",
                "--key",
                "b",
                "--password-env",
                "A",
                "--password-file",
                "B",
                "-o",
                "o",
            ],
            "--password-file no se puede usar junto con --password-env",
        ),  # fmt: skip
        (["sandbox-pac", "--port", "abc"], "--port: 'abc' no es un valor válido"),
        (["sandbox-pac", "--port"], "--port necesita un valor"),
        (["credits", "--pac-kind", "sat"], "--pac-kind: 'sat' no es válido; use 'fel', 'finkok'"),
    ],
)
def test_usage_errors_are_spanish_with_a_code(
    capsys: pytest.CaptureFixture[str], argv: list[str], spanish: str
) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "CONN-CLI-USO" in err and spanish in err, err
    assert "error:" not in err and "required" not in err
    assert err.startswith("uso: cfdi-connector") and "usage:" not in err


@pytest.mark.parametrize("command", ["validate", "seal", "verify", "pdf", "cancel", "sandbox-pac"])
def test_help_is_spanish(capsys: pytest.CaptureFixture[str], command: str) -> None:
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"uso: cfdi-connector {command}")
    assert "opciones:" in out and "muestra esta ayuda y termina" in out
    assert "usage:" not in out and "show this help" not in out
