"""Committed invoices are never left behind: whatever the file in work/ parses to after a
restart, whatever happened to the file, an invoice the journal holds sealed or in ``sending``
is finished from its journal row (its sealed bytes, never re-sealed) and delivered."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from connector.journal import Journal, State
from tests.daemon.conftest import REPO, dat_file, stamps_by_key, start_pipeline

MAPPING = REPO / "connector" / "adapters" / "layouts" / "default.mapping.toml"


def _with_mapping(config: Path) -> Path:
    """The ventas source reads through an explicit mapping file (the operator may edit it)."""
    mapping = config.parent / "ventas.mapping.toml"
    shutil.copy(MAPPING, mapping)
    text = config.read_text(encoding="utf-8").replace(
        'include = ["*.dat"]', f'include = ["*.dat"]\nmapping = "{mapping}"', 1
    )
    config.write_text(text, encoding="utf-8")
    return mapping


def _crash_after_commit(config: Path) -> None:
    """Run until the file's invoices are sealed and committed (``sending``), nothing sent:
    then the process stops as a crash would (no file finished, nothing delivered)."""
    pipe = start_pipeline(config)
    assert pipe._executor is not None
    pipe._executor.shutdown()
    pipe._executor = None  # no worker: the sends never leave
    try:
        for _ in range(100):
            pipe.poll_once()
            if pipe.journal.counts()["sending"] == 2:
                break
            pipe.wake.wait(0.05)
        assert pipe.journal.counts()["sending"] == 2
    finally:
        pipe.journal.close()
        pipe.journal = None
        pipe.close()


def _counts(config: Path) -> tuple[dict[str, int], dict[str, int]]:
    j = Journal(config.parent / "var" / "journal.sqlite")
    try:
        inv = {k: v for k, v in j.counts().items() if v}
        files = {k: v for k, v in j.file_counts().items() if v}
    finally:
        j.close()
    return inv, files


@pytest.mark.parametrize(
    "folio_from",
    ["COMPROBANTE.Confirmacion", "COMPROBANTE.Serie"],
    ids=["mapping-now-gives-no-folio", "mapping-now-gives-another-folio"],
)
def test_committed_invoices_are_delivered_from_the_journal_after_the_mapping_changed(
    workspace: Path, sandbox, folio_from: str
) -> None:
    ws = workspace.parent
    mapping = _with_mapping(workspace)
    (ws / "inbox" / "v.dat").write_bytes(dat_file("A", [1, 2]))
    _crash_after_commit(workspace)
    # the operator edits the mapping before restarting: the file now parses differently
    mapping.write_text(
        mapping.read_text(encoding="utf-8").replace(
            'Folio = "COMPROBANTE.Folio"', f'Folio = "{folio_from}"', 1
        ),
        encoding="utf-8",
    )
    pipe = start_pipeline(workspace)
    try:
        assert pipe.run_until_idle(60)
        j = pipe.journal
        for folio in ("1", "2"):
            e = j.get(("EKU9003173C9", "A", folio))
            assert e.state is State.DELIVERED and e.uuid
            assert (ws / "out" / "xml" / f"A{folio}_{e.uuid}.xml").exists()
        assert len(j.in_state(State.DELIVERED)) == 2  # nothing else was sealed or stamped
    finally:
        pipe.close()
    assert [p.name for p in (ws / "archive").rglob("*.dat")] == ["v.dat"]
    assert list((ws / "failed").iterdir()) == []
    assert {k: len(v) for k, v in stamps_by_key(sandbox.store).items()} == {
        ("A", "1"): 1,
        ("A", "2"): 1,
    }


def test_invoices_in_sending_are_sent_on_restart_even_when_their_file_left_work(
    workspace: Path, sandbox
) -> None:
    ws = workspace.parent
    (ws / "inbox" / "v.dat").write_bytes(dat_file("A", [1, 2]))
    _crash_after_commit(workspace)
    # the file is no longer in work/ (moved away by hand): its invoices are still the journal's
    for p in list((ws / "work" / "ventas").iterdir()):
        shutil.move(p, ws / p.name)
    pipe = start_pipeline(workspace)
    try:
        assert pipe.run_until_idle(60)
    finally:
        pipe.close()
    inv, _ = _counts(workspace)
    assert inv == {"delivered": 2}
    assert len(list((ws / "out" / "xml").iterdir())) == 2
    assert {k: len(v) for k, v in stamps_by_key(sandbox.store).items()} == {
        ("A", "1"): 1,
        ("A", "2"): 1,
    }


def test_a_crash_before_the_files_items_then_a_mapping_edit_never_stamps_twice(
    workspace: Path, sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daemon dies after a chunk's seals were committed and before the file's final list
    of items was written (the failure is injected at that point: a SIGKILL cannot be aimed
    there), then the mapping is edited: the committed invoices still belong to the file."""
    ws = workspace.parent
    mapping = _with_mapping(workspace)
    (ws / "inbox" / "v.dat").write_bytes(dat_file("A", [1, 2]))

    def killed(self: Journal, *a: object, **k: object) -> None:
        raise RuntimeError("killed before set_file_items")

    monkeypatch.setattr(Journal, "set_file_items", killed)
    pipe = start_pipeline(workspace)
    pipe._executor.shutdown()  # nothing is sent: the crash comes first
    pipe._executor = None
    try:
        for _ in range(100):
            pipe.poll_once()
            if pipe.journal.counts()["sending"] == 2:
                break
            pipe.wake.wait(0.05)
        assert pipe.journal.counts()["sending"] == 2
    finally:
        pipe.journal.close()
        pipe.journal = None
        pipe.close()
    monkeypatch.undo()
    text = mapping.read_text(encoding="utf-8")
    mapping.write_text(
        text.replace('Folio = "COMPROBANTE.Folio"', 'Folio = "COMPROBANTE.Serie"', 1),
        encoding="utf-8",
    )
    pipe = start_pipeline(workspace)
    try:
        assert pipe.run_until_idle(60)
    finally:
        pipe.close()
    stamps = {k: len(v) for k, v in stamps_by_key(sandbox.store).items()}
    assert stamps == {("A", "1"): 1, ("A", "2"): 1}
    assert [p.name for p in (ws / "archive").rglob("*.dat")] == ["v.dat"]
