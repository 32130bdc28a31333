"""After a replay the old error files do not stay beside the failures (issue 17, item 11):
they move to replayed/, in failed/ and in the errors folder. Real folders, the sandbox PAC."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.cli import main
from tests.daemon.conftest import dat_invoice, run_once, stamps_by_key


def test_replayed_file_leaves_no_stale_error_files(
    workspace: Path, sandbox, capsys: pytest.CaptureFixture
) -> None:
    ws = workspace.parent
    (ws / "inbox" / "lote.dat").write_bytes(
        (dat_invoice("R", "1") + dat_invoice("R", "2", tipo="Z")).encode()
    )
    run_once(workspace)
    reports = ["lote.dat.error.json", "lote.dat.error.txt"]
    assert sorted(p.name for p in (ws / "failed").glob("*.error.*")) == reports
    assert sorted(p.name for p in (ws / "out" / "errors").glob("*.error.*")) == reports
    # the ERP data is fixed in the failed file, which is replayed and now goes through
    fixed = (dat_invoice("R", "1") + dat_invoice("R", "2")).encode()
    (ws / "failed" / "lote.dat").write_bytes(fixed)
    assert main(["replay", "--config", str(workspace), "--file", "lote.dat"]) == 0
    out = capsys.readouterr().out
    assert "replayed" in out
    run_once(workspace)
    assert set(stamps_by_key(sandbox.store)) == {("R", "1"), ("R", "2")}
    assert [p.name for p in (ws / "archive").rglob("*.dat")] == ["lote.dat"]
    # nothing in failed/ or the errors folder says the file is still wrong
    assert list((ws / "failed").glob("*.error.*")) == []
    assert list((ws / "out" / "errors").glob("*.error.*")) == []
    for folder in (ws / "failed", ws / "out" / "errors"):
        assert sorted(p.name for p in (folder / "replayed").iterdir()) == reports
