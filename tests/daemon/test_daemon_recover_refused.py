"""A send that may have been stamped (the PAC stamped it, the reply was lost) is only ever
recovered by its referencia: never failed because the PAC refused the recover (e.g. 203, the
password was changed at the PAC's portal), never re-sent under a new referencia by a replay or
a new export of the same business key. One invoice, one UUID.

Real folders, the real journal, the real sandbox PAC over HTTP with its ``reply_lost`` fault
(the stamp is committed at the PAC, the connection closes without a reply)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from connector.cli import main
from connector.journal import Journal, State
from tests.daemon.conftest import RFC, dat_file, fecha, stamps_by_key, start_pipeline, write_config

KEY = (RFC, "A", "1")


def _config(tmp_path: Path, sandbox) -> Path:  # type: ignore[no-untyped-def]
    """One attempt per call (every retry goes through the journal), retries 0.5-4 s apart."""
    config = write_config(
        tmp_path / "ws",
        timbrado_url=sandbox.fel_timbrado_url,
        retry_wait=1.0,
        sat_cert_der=sandbox.certificate_der,
    )
    config.write_text(config.read_text().replace("attempts = 2", "attempts = 1"))
    return config


def _drive(pipe, until: Callable[[], bool], timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pipe.poll_once()
        if until():
            return
        time.sleep(0.02)
    raise AssertionError(f"not reached in {timeout} s: {pipe.journal.get(KEY)}")


def _stamped_reply_lost(config: Path, sandbox):  # type: ignore[no-untyped-def]
    """A1 stamped at the PAC, its reply lost: the pipeline (still open) has it in retry_wait."""
    ws = config.parent
    sandbox.faults.add("reply_lost", times=1, operations={"TimbrarCFDI"})
    (ws / "inbox" / "v.dat").write_bytes(dat_file("A", [1]))
    pipe = start_pipeline(config)
    _drive(pipe, lambda: pipe.journal.counts()["retry_wait"] == 1)
    e = pipe.journal.get(KEY)
    assert e.state is State.RETRY_WAIT and e.uuid is None and e.referencia
    [uuid] = stamps_by_key(sandbox.store)[("A", "1")]
    assert sandbox.store.uuids_for_referencia(e.referencia) == [uuid]
    return pipe, e.referencia, uuid


def test_recover_refused_by_account_error_stays_retrying_then_delivers_the_one_uuid(
    tmp_path: Path, sandbox
) -> None:
    config = _config(tmp_path, sandbox)
    ws = config.parent
    pipe, referencia, uuid = _stamped_reply_lost(config, sandbox)
    try:
        sandbox.engine.store.set_password("demo", "rotated")  # changed at the PAC's portal
        _drive(pipe, lambda: pipe.journal.get(KEY).error_code != "CONN-PAC-CORTE")
        e = pipe.journal.get(KEY)
        # 203 on the recover says nothing about the stamp: still waiting, same referencia
        assert e.state is State.RETRY_WAIT, (e.state, e.error_code, e.error_message)
        assert e.error_code == "CONN-PAC-RECUPERACION" and e.referencia == referencia
        assert "203" in (e.error_message or "") and referencia in (e.error_message or "")
        assert e.location == "v.dat:1"
        assert list((ws / "failed").iterdir()) == []
        sandbox.engine.store.set_password("demo", "demo")  # the operator fixes the password
        _drive(pipe, lambda: pipe.journal.get(KEY).state is State.DELIVERED)
        assert pipe.run_until_idle(20)
        e = pipe.journal.get(KEY)
        assert e.uuid == uuid and e.referencia == referencia
    finally:
        pipe.close()
    assert stamps_by_key(sandbox.store) == {("A", "1"): [uuid]}
    assert list((ws / "out" / "xml").glob(f"*{uuid}*"))
    # the ERP exports A1 again with other content: the folio is taken, no second stamp
    (ws / "inbox" / "v.dat").write_bytes(dat_file("A", [1], precio="200.00"))
    pipe = start_pipeline(config)
    try:
        assert pipe.run_until_idle(20)
    finally:
        pipe.close()
    assert "CONN-FOLIO-USADO" in (ws / "failed" / "v.dat.error.txt").read_text(encoding="utf-8")
    assert stamps_by_key(sandbox.store) == {("A", "1"): [uuid]}


def _left_failed_by_an_older_version(tmp_path: Path, sandbox):  # type: ignore[no-untyped-def]
    """A1 stamped at the PAC, the reply lost, and the journal row failed with the recover's 203
    and no UUID (what versions before this fix recorded); v.dat in failed/."""
    config = _config(tmp_path, sandbox)
    ws = config.parent
    pipe, referencia, uuid = _stamped_reply_lost(config, sandbox)
    pipe.close()
    with Journal(ws / "var" / "journal.sqlite") as j:
        e = j.get(KEY)
        j.mark_failed(e.id, "203", "Usuario o contraseña inválidos", origin="pac")
    pipe = start_pipeline(config)  # finishes the claimed file: A1 failed at the PAC
    try:
        assert pipe.run_until_idle(20)
    finally:
        pipe.close()
    assert (ws / "failed" / "v.dat").is_file()
    return config, referencia, uuid


def test_replay_of_a_failed_invoice_that_was_sent_recovers_it_instead_of_stamping_again(
    tmp_path: Path, sandbox
) -> None:
    config, referencia, uuid = _left_failed_by_an_older_version(tmp_path, sandbox)
    ws = config.parent
    # the ERP exports it again (same data, new Fecha: the same invoice, other sealed bytes);
    # it is reported failed again, and the operator replays that file
    (ws / "inbox" / "v.dat").write_bytes(dat_file("A", [1], when=fecha(1)))
    pipe = start_pipeline(config)
    try:
        assert pipe.run_until_idle(20)
    finally:
        pipe.close()
    assert (ws / "failed" / "v-1.dat").is_file()
    assert stamps_by_key(sandbox.store) == {("A", "1"): [uuid]}
    assert main(["replay", "--config", str(config), "--file", "v-1.dat"]) == 0
    with Journal(ws / "var" / "journal.sqlite") as j:
        e = j.get(KEY)
        assert e.state is State.RECEIVED and e.referencia == referencia and e.attempts >= 1
    pipe = start_pipeline(config)
    try:
        assert pipe.run_until_idle(20)
        e = pipe.journal.get(KEY)
    finally:
        pipe.close()
    assert e.state is State.DELIVERED and e.uuid == uuid and e.referencia == referencia
    assert stamps_by_key(sandbox.store) == {("A", "1"): [uuid]}
    assert sandbox.store.requests(operation="ConsultarTimbrePorReferencia", referencia=referencia)


def test_new_export_of_a_failed_invoice_that_was_sent_reports_its_uuid_never_a_second(
    tmp_path: Path, sandbox
) -> None:
    config, referencia, uuid = _left_failed_by_an_older_version(tmp_path, sandbox)
    ws = config.parent
    (ws / "inbox" / "v.dat").write_bytes(dat_file("A", [1], precio="200.00"))  # other data
    pipe = start_pipeline(config)
    try:
        assert pipe.run_until_idle(20)
        e = pipe.journal.get(KEY)
    finally:
        pipe.close()
    # recovered by the old referencia: the PAC's stamp is of the earlier content, so it is
    # reported with its UUID (CONN-PAC-XML), and never stamped again under a new referencia
    assert e.referencia == referencia and e.uuid == uuid
    assert e.state is State.FAILED and e.error_code == "CONN-PAC-XML"
    assert stamps_by_key(sandbox.store) == {("A", "1"): [uuid]}
    # and a replay of it is refused: the UUID exists at SAT
    assert main(["replay", "--config", str(config), "--item", "A/1"]) == 1
    assert stamps_by_key(sandbox.store) == {("A", "1"): [uuid]}
