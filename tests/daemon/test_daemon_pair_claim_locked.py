"""A pair whose second file cannot be moved while the daemon claims it, or recovers it at start.

On Windows the ERP or an antivirus holding the file makes its rename fail with a sharing
violation; that cannot happen here, so ``os.rename`` raises ``PermissionError`` for that one
path only. Everything else is real: folders, the daemon, the sandbox PAC over HTTP.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from connector.config import check_config
from tests.daemon.conftest import stamps_by_key, start_pipeline, write_config
from tests.daemon.test_daemon_claim_crash import _claim_and_die, _run
from tests.daemon.test_daemon_pairs import PAIR_SOURCE, _pair_files


@contextmanager
def _held(monkeypatch: pytest.MonkeyPatch, held: Path) -> Iterator[None]:
    real = os.rename

    def rename(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        if Path(src) == held:
            raise PermissionError(13, "sharing violation (the ERP holds the file)", str(src))
        real(src, dst)

    with monkeypatch.context() as m:
        m.setattr(os, "rename", rename)
        yield


def _workspace(tmp_path: Path, sandbox, folio: str) -> tuple[Path, Path, Path]:  # type: ignore[no-untyped-def]
    config = write_config(
        tmp_path / "ws", timbrado_url=sandbox.fel_timbrado_url, extra_sources=PAIR_SOURCE
    )
    ws = config.parent
    header, lines = _pair_files(folio)
    (ws / "inbox" / f"ventas_07{folio}_H.csv").write_bytes(header)
    (ws / "inbox" / f"ventas_07{folio}_D.csv").write_bytes(lines)
    cfg, _ = check_config(config)
    assert cfg is not None
    work = cfg.source("csv-pares").work
    assert work is not None
    return config, ws, work


def _stamped_as_a_pair(ws: Path, sandbox, folio: str, work: Path) -> None:  # type: ignore[no-untyped-def]
    assert {k: len(v) for k, v in stamps_by_key(sandbox.store).items()} == {("P", folio): 1}
    (day,) = (ws / "archive").iterdir()
    assert sorted(p.name for p in day.iterdir()) == [
        f"ventas_07{folio}_D.csv",
        f"ventas_07{folio}_H.csv",
    ]
    assert list((ws / "failed").iterdir()) == [] and list((ws / "inbox").iterdir()) == []
    assert list(work.iterdir()) == []


def test_a_pair_whose_lines_file_is_held_during_the_claim_is_stamped_whole_once_released(
    tmp_path: Path, sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, ws, work = _workspace(tmp_path, sandbox, "1")
    pipe = start_pipeline(config)
    try:
        with _held(monkeypatch, ws / "inbox" / "ventas_071_D.csv"), capture_logs() as logs:
            deadline = time.monotonic() + 20
            while not any(e["event"] == "claim_failed" for e in logs):
                assert time.monotonic() < deadline, logs
                pipe.poll_once()
                time.sleep(0.05)
        # the claim did not happen: the pair is whole in the inbox, nothing hidden in work/
        assert sorted(os.listdir(ws / "inbox")) == ["ventas_071_D.csv", "ventas_071_H.csv"]
        assert os.listdir(work) == []
        assert pipe.run_until_idle(60)
    finally:
        pipe.close()
    _stamped_as_a_pair(ws, sandbox, "1", work)


def test_a_start_whose_pair_recovery_finds_the_lines_file_held_puts_the_pair_back_and_goes_on(
    tmp_path: Path, sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, ws, work = _workspace(tmp_path, sandbox, "2")
    _claim_and_die(config, "csv-pares", 1)  # killed between the two renames of the claim
    assert os.listdir(ws / "inbox") == ["ventas_072_D.csv"]
    with _held(monkeypatch, ws / "inbox" / "ventas_072_D.csv"), capture_logs() as logs:
        pipe = start_pipeline(config)  # does not raise
        try:
            for _ in range(5):
                pipe.poll_once()
                time.sleep(0.05)
        finally:
            pipe.close()
    failed = [e for e in logs if e["event"] == "claim_recovery_failed"]
    assert len(failed) == 1 and failed[0]["file"] == "ventas_072_H.csv"
    # nothing stamped, nothing failed: the header went back beside its lines file
    assert stamps_by_key(sandbox.store) == {}
    assert list((ws / "failed").iterdir()) == []
    assert sorted(os.listdir(ws / "inbox")) == ["ventas_072_D.csv", "ventas_072_H.csv"]
    assert [n for n in os.listdir(work) if n.endswith(".claiming")] == []

    _run(config)  # the next start, the file released
    _stamped_as_a_pair(ws, sandbox, "2", work)
