"""What the PAC returns is verified before it is delivered (issue 2): a CFDI 4.0 whose Sello
verifies, whose TFD matches it and the UUID, whose cadena is the one we sealed, and (with
``[[pacs]] sat_cert``) whose SelloSAT verifies. A reply that fails is CONN-PAC-XML: failed,
never re-sent (the UUID exists at SAT), its XML in the errors folder, the daemon goes on.

The sandbox stamps correctly; a PAC that alters the document is the world boundary we cannot
otherwise produce, so one test wraps the real FEL driver (over the real sandbox, over HTTP) in a
driver that alters the returned XML of one invoice."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

import connector.pipeline as pipeline_mod
from connector.cli import main
from connector.journal import Journal, State
from tests.daemon.conftest import DEMO_CSD, dat_file, stamps_by_key, start_pipeline


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


class AlteringDriver:
    """The real driver; the XML it returns for folio 1 gets one Descripcion changed."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def _alter(self, result: Any) -> Any:
        if b'Folio="1"' not in result.xml:
            return result
        xml = result.xml.replace(b'Descripcion="', b'Descripcion="ALTERADO ', 1)
        return dataclasses.replace(result, xml=xml)

    def stamp(self, sealed_xml: bytes, referencia: str) -> Any:
        return self._alter(self._inner.stamp(sealed_xml, referencia))

    def recover(self, referencia: str) -> Any:
        return self._alter(self._inner.recover(referencia))


def test_a_normal_stamp_passes_the_checks_with_sat_cert(workspace: Path, sandbox) -> None:
    ws = workspace.parent
    assert 'sat_cert = "sandbox-pac.cer"' in workspace.read_text()
    (ws / "inbox" / "ventas.dat").write_bytes(dat_file("V", [1, 2]))
    pipe = start_pipeline(workspace)
    try:
        assert pipe.pacs["sandbox"].sat_cert_der == sandbox.certificate_der
        assert pipe.run_until_idle(60)
    finally:
        pipe.close()
    assert len(_files(ws / "out" / "xml")) == 2 and _files(ws / "failed") == []
    with Journal(ws / "var" / "journal.sqlite") as j:
        assert j.counts()["delivered"] == 2 and j.counts()["failed"] == 0


def test_an_altered_reply_is_conn_pac_xml_sent_once_and_never_again(
    workspace: Path, sandbox, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = pipeline_mod.make_driver
    monkeypatch.setattr(
        pipeline_mod, "make_driver", lambda pac, pool_size: AlteringDriver(real(pac, pool_size))
    )
    ws = workspace.parent
    data = dat_file("Z", [1])
    (ws / "inbox" / "z1.dat").write_bytes(data)
    pipe = start_pipeline(workspace)
    try:
        assert pipe.run_until_idle(60)
        # the daemon goes on: the next invoice is stamped and delivered
        (ws / "inbox" / "z2.dat").write_bytes(dat_file("Z", [2]))
        assert pipe.run_until_idle(60)
        # the same export again: reported again from the journal, not re-sent
        (ws / "inbox" / "z1-otra-vez.dat").write_bytes(data)
        assert pipe.run_until_idle(60)
    finally:
        pipe.close()

    (uuid,) = stamps_by_key(sandbox.store)[("Z", "1")]
    assert len(stamps_by_key(sandbox.store)[("Z", "2")]) == 1
    with Journal(ws / "var" / "journal.sqlite") as j:
        e = j.get(("EKU9003173C9", "Z", "1"))
        assert e is not None and e.state is State.FAILED and e.error_code == "CONN-PAC-XML"
        assert e.uuid == uuid and e.stamped_xml and b"ALTERADO" in e.stamped_xml
        assert uuid in (e.error_message or "") and "no se reenvía" in (e.error_message or "")
        assert e.attempts == 1
        assert j.get(("EKU9003173C9", "Z", "2")).state is State.DELIVERED  # type: ignore[union-attr]
    sent_z1 = [
        r for r in sandbox.store.requests(operation="TimbrarCFDI") if e.referencia == r.referencia
    ]
    assert len(sent_z1) == 1
    # the PAC's XML for support, and the error file names the code and the UUID
    kept = ws / "out" / "errors" / f"Z1_{uuid}_pac.xml"
    assert kept.read_bytes() == e.stamped_xml
    failed = {p.name for p in _files(ws / "failed")}
    assert {"z1.dat", "z1-otra-vez.dat"} <= failed
    report = (ws / "failed" / "z1.dat.error.txt").read_text(encoding="utf-8")
    assert "CONN-PAC-XML" in report and uuid in report
    assert [p.name.split("_")[0] for p in _files(ws / "out" / "xml")] == ["Z2"]

    # replay of that invoice is refused: it would stamp a second UUID
    capsys.readouterr()
    assert main(["replay", "--config", str(workspace), "--item", "Z/1"]) == 1
    assert "CONN-REPLAY" in capsys.readouterr().out
    assert len(sandbox.store.requests(operation="TimbrarCFDI")) == 2


def test_a_stamp_that_does_not_verify_with_sat_cert_is_conn_pac_xml(
    tmp_path: Path, sandbox
) -> None:
    """sat_cert names a certificate that did not sign the stamps: every SelloSAT fails."""
    from tests.daemon.conftest import write_config

    wrong = DEMO_CSD.with_suffix(".cer").read_bytes()  # the emisor's CSD, not the PAC's
    config = write_config(
        tmp_path / "ws",
        timbrado_url=sandbox.fel_timbrado_url,
        remote_url=sandbox.fel_remote_url,
        sat_cert_der=wrong,
    )
    ws = config.parent
    (ws / "inbox" / "w.dat").write_bytes(dat_file("W", [1]))
    pipe = start_pipeline(config)
    try:
        assert pipe.run_until_idle(60)
    finally:
        pipe.close()
    with Journal(ws / "var" / "journal.sqlite") as j:
        e = j.get(("EKU9003173C9", "W", "1"))
        assert e is not None and e.state is State.FAILED and e.error_code == "CONN-PAC-XML"
        assert "CONN-TFD-SELLOSAT" in (e.error_message or "")
    assert len(sandbox.store.requests(operation="TimbrarCFDI")) == 1


def test_a_sat_cert_that_is_not_a_certificate_stops_the_start(tmp_path: Path, sandbox) -> None:
    from connector.config import check_config
    from connector.pipeline import Pipeline, PipelineError
    from tests.daemon.conftest import write_config

    config = write_config(
        tmp_path / "ws",
        timbrado_url=sandbox.fel_timbrado_url,
        sat_cert_der=b"no es un certificado",
    )
    cfg, problems = check_config(config)
    assert cfg is not None, problems
    pipe = Pipeline(cfg)
    with pytest.raises(PipelineError) as err:
        pipe.start()
    assert [p.code for p in err.value.problems] == ["CONN-CFG-SATCERT"]
