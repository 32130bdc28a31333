"""Issue 3 acceptance: ``sandbox-pac``, ``credits``, ``cancel`` and ``sat-status`` used as a
person would, with bad inputs: a Spanish message with a code, a non-zero exit, no traceback
(an exception escaping ``main`` fails these tests), never the password."""

from __future__ import annotations

import socket
import uuid as uuidlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from connector.cli import main
from connector.pac.sandbox import SandboxPac

UUID = "6F8A5C40-0000-4000-8000-000000000000"


@pytest.fixture(scope="module")
def pac(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxPac]:
    with SandboxPac.demo(tmp_path_factory.mktemp("issue3cli") / "pac.db") as sandbox:
        yield sandbox


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    rc = main(argv)
    cap = capsys.readouterr()
    return rc, cap.out + cap.err


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    ("extra", "code", "words"),
    [
        (["--port", "99999"], "SBX-PORT", "65535"),  # was an OverflowError traceback
        (["--port", "-1"], "SBX-PORT", "65535"),
        (["--fault", "http500:p=2"], "SBX-FAULT", "probability"),  # was a traceback
        (["--fault", "latency:s=nan"], "SBX-FAULT", "finito"),
        (["--fault", "timeout:1:TimbrarCfdi"], "SBX-FAULT", "TimbrarCFDI"),  # typo: never fired
        (["--fault", "nada"], "SBX-FAULT", "desconocido"),
        (["--latency", "-1"], "SBX-LATENCY", "negativa"),
    ],
)
def test_sandbox_pac_bad_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], code: str, words: str
) -> None:
    db = tmp_path / "sb.db"
    rc, text = _run(["sandbox-pac", "--port", "0", "--db", str(db), *extra], capsys)
    assert rc == 2 and code in text and words in text, text
    assert "escuchando" not in text  # refused before serving anything


def test_sandbox_pac_unusable_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A folder (or an unwritable place) as --db was a sqlite3.OperationalError traceback."""
    rc, text = _run(["sandbox-pac", "--port", "0", "--db", str(tmp_path)], capsys)
    assert rc == 2 and "SBX-START" in text


def test_sandbox_pac_fault_on_a_known_operation_is_accepted() -> None:
    from connector.pac.sandbox.cli import _check_fault
    from connector.pac.sandbox.faults import parse_fault_spec

    for spec in ("drop:3:TimbrarCFDI", "http500:p=0.1", "reply_lost:1:GenerarCFDI40,stamp"):
        _check_fault(parse_fault_spec(spec))


def _fel(pac: SandboxPac, env: str = "QA_PAC_PW") -> list[str]:
    return [
        "--pac-url", pac.fel_timbrado_url, "--remote-url", pac.fel_remote_url,
        "--usuario", "demo", "--cuenta", "DEMO", "--password-env", env,
    ]  # fmt: skip


@pytest.mark.parametrize("timeout", ["0", "-3", "inf"])
def test_nonsense_timeouts_are_usage_errors(
    pac: SandboxPac,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    timeout: str,
) -> None:
    """--timeout 0 used to reach the PAC and report 'respuesta ilegible (ValueError)'."""
    monkeypatch.setenv("QA_PAC_PW", "demo")
    rc, text = _run(["credits", *_fel(pac), "--timeout", timeout], capsys)
    assert rc == 2 and "CONN-CLI" in text and "--timeout" in text
    sat = ["--re", "EKU9003173C9", "--rr", "XAXX010101000", "--tt", "1"]
    argv = ["sat-status", UUID, *sat, "--sat-url", pac.sat_status_url, "--timeout", timeout]
    rc, text = _run(argv, capsys)
    assert rc == 2 and "CONN-CLI" in text


def test_credits_reads_the_pac_password_from_a_file_too(
    pac: SandboxPac, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """credits (and cancel) took the PAC password only from --password-env."""
    pw = tmp_path / "pac.pw"
    pw.write_text("demo\n", encoding="utf-8")
    base = [
        "credits", "--pac-url", pac.fel_timbrado_url, "--remote-url", pac.fel_remote_url,
        "--usuario", "demo", "--cuenta", "DEMO",
    ]  # fmt: skip
    rc, text = _run([*base, "--password-file", str(pw)], capsys)
    assert rc == 0 and "Créditos restantes" in text
    rc, text = _run([*base, "--password-file", str(tmp_path / "no-hay.pw")], capsys)
    assert rc == 2 and "CONN-CLI-PAC" in text and "no-hay.pw" in text
    with pytest.raises(SystemExit):  # one source only
        _run([*base, "--password-file", str(pw), "--password-env", "QA_PAC_PW"], capsys)


def test_pac_commands_bad_inputs(
    pac: SandboxPac, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = f"mala-{uuidlib.uuid4().hex}"
    monkeypatch.setenv("QA_PAC_PW", "demo")
    monkeypatch.setenv("QA_WRONG_PW", wrong)
    rc, text = _run(["credits", *_fel(pac)], capsys)
    assert rc == 0 and "Créditos restantes" in text

    rc, text = _run(["credits", *_fel(pac, "QA_WRONG_PW")], capsys)
    assert rc == 1 and "Error" in text and wrong not in text
    rc, text = _run(["credits", *_fel(pac, "QA_NO_SUCH_VARIABLE")], capsys)
    assert rc == 2 and "CONN-CLI-PAC" in text and "QA_NO_SUCH_VARIABLE" in text
    assert "no está definida" in text
    rc, text = _run(["credits"], capsys)
    assert rc == 2 and "CONN-CLI-PAC" in text

    closed = f"http://127.0.0.1:{_closed_port()}/fel/WSCFDI33.svc"
    argv = ["credits", "--pac-url", closed, "--usuario", "demo", "--password-env", "QA_PAC_PW"]
    rc, text = _run([*argv, "--timeout", "3"], capsys)
    assert rc == 1 and "CONN-PAC-CONEXION" in text
    rc, text = _run(["credits", "--pac-url", pac.base_url + "/no/existe.svc", *argv[3:]], capsys)
    assert rc == 1 and "HTTP-404" in text and "revise la URL" in text

    cancel = ["cancel", UUID, "--rfc-receptor", "XAXX010101000"]
    rc, text = _run([*cancel, "--motivo", "09", "--total", "1", *_fel(pac)], capsys)
    assert rc == 2 and "motivo" in text
    rc, text = _run([*cancel, "--motivo", "02", "--total", "diez", *_fel(pac)], capsys)
    assert rc == 2 and "no es un importe" in text
    rc, text = _run([*cancel, "--motivo", "01", "--total", "1", *_fel(pac)], capsys)
    assert rc == 1 and "CONN-PAC-CANCELACION" in text
    rc, text = _run([*cancel, "--motivo", "02", "--total", "1", *_fel(pac)], capsys)
    assert rc == 1 and "205" in text  # an unknown UUID

    sat = ["--re", "EKU9003173C9", "--rr", "XAXX010101000", "--sat-url", pac.sat_status_url]
    rc, text = _run(["sat-status", UUID, *sat, "--tt", "abc"], capsys)
    assert rc == 2 and "no es un importe" in text
    rc, text = _run(["sat-status", "no-es-uuid", *sat, "--tt", "1"], capsys)
    assert rc == 1 and "CONN-SAT-DATOS" in text
    rc, text = _run(["sat-status", UUID, *sat, "--tt", "1"], capsys)
    assert rc == 1 and "No Encontrado" in text


def test_cancel_through_fel_timbrado_with_the_emisor_csd(
    pac: SandboxPac,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Without Conexión Remota, FEL cancels through Timbrado signed with the emisor's CSD; the
    command had no way to give it (every such cancel was CONN-PAC-NO-SOPORTADO)."""
    from connector.pac.fel import FelDriver
    from tests.cfdi.strategies import shared_test_csd
    from tests.conftest import CSD_PASSWORD, TESTCSD
    from tests.pac.drivers_support import RECEPTOR, invoice, sealed

    monkeypatch.setenv("QA_PAC_PW", "demo")
    monkeypatch.setenv("QA_CSD_PW", CSD_PASSWORD)
    monkeypatch.setenv("QA_WRONG_PW", "equivocada")
    csd_base = TESTCSD / "eku9003173c9_csd_2023_30001000000500003416"
    fiel_base = TESTCSD / "eku9003173c9_fiel_2023_30001000000500003415"

    def csd_args(base: Path = csd_base, env: str = "QA_CSD_PW") -> list[str]:
        cer, key = str(base.with_suffix(".cer")), str(base.with_suffix(".key"))
        return ["--cer", cer, "--key", key, "--key-password-env", env]

    with FelDriver("demo", "demo", timbrado_url=pac.fel_timbrado_url) as d:
        res = d.stamp(sealed(shared_test_csd(), "CLICAN1"), f"R-{uuidlib.uuid4().hex}")
    total = str(invoice("CLICAN1").Total)
    timbrado = ["--pac-url", pac.fel_timbrado_url, "--usuario", "demo", "--password-env", "QA_PAC_PW"]  # fmt: skip
    cancel = ["cancel", res.uuid, "--motivo", "02", "--rfc-receptor", RECEPTOR, "--total", total]
    cancel += ["--sat-url", pac.sat_status_url]  # SAT's status, asked after the request

    rc, text = _run([*cancel, *timbrado], capsys)
    assert rc == 1 and "CONN-PAC-NO-SOPORTADO" in text  # no CSD, no Conexión Remota
    rc, text = _run([*cancel, *timbrado, *csd_args(env="QA_WRONG_PW")], capsys)
    assert rc == 2 and "CONN-CSD-PASSWORD" in text and "equivocada" not in text
    rc, text = _run([*cancel, *timbrado, *csd_args(fiel_base)], capsys)
    assert rc == 2 and "CONN-CSD-FIEL" in text
    rc, text = _run([*cancel, *timbrado, "--cer", str(csd_base.with_suffix(".cer"))], capsys)
    assert rc == 2 and "CONN-CLI-CSD" in text
    finkok = ["--pac-kind", "finkok", "--pac-url", pac.finkok_stamp_url, *timbrado[2:]]
    rc, text = _run([*cancel, *finkok, *csd_args()], capsys)
    assert rc == 2 and "Finkok" in text

    acuse = tmp_path / "no-existe" / "acuse.xml"
    rc, text = _run([*cancel, *timbrado, *csd_args(), "--acuse", str(acuse)], capsys)
    assert rc == 1 and "CONN-FILE" in text and "sí se hizo" in text  # was a traceback
    rc, text = _run([*cancel, *timbrado, *csd_args()], capsys)
    assert rc == 0 and "202" in text  # already cancelled: harmless to ask again
    assert "El SAT lo muestra Cancelado" in text
    assert CSD_PASSWORD not in text
    sat = ["--re", "EKU9003173C9", "--rr", RECEPTOR, "--tt", total, "--sat-url", pac.sat_status_url]
    rc, text = _run(["sat-status", res.uuid, *sat], capsys)
    assert rc == 0 and "Estado: Cancelado" in text
