"""`replay` puts files back into the inbox under names that are taken again, and only the
files asked for."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.cli import main
from tests.daemon.conftest import dat_invoice, stamps_by_key, start_pipeline, write_config
from tests.daemon.test_daemon_pairs import PAIR_SOURCE, _pair_files


def _run(config: Path) -> None:
    pipe = start_pipeline(config)
    try:
        assert pipe.run_until_idle(60)
    finally:
        pipe.close()


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def test_a_replayed_pair_whose_names_clash_in_the_inbox_keeps_matching_names_and_is_stamped(
    tmp_path: Path, sandbox, capsys: pytest.CaptureFixture
) -> None:
    config = write_config(
        tmp_path / "ws", timbrado_url=sandbox.fel_timbrado_url, extra_sources=PAIR_SOURCE
    )
    ws = config.parent
    inbox = ws / "inbox"
    for _ in (1, 2):  # the same export fails twice: its lines file has no invoice P8
        inbox.joinpath("ventas_0801_H.csv").write_bytes(_pair_files("8")[0])
        inbox.joinpath("ventas_0801_D.csv").write_bytes(_pair_files("9")[1])
        _run(config)
    assert [n for n in _names(ws / "failed") if n.endswith(".csv")] == [
        "ventas_0801_D-1.csv",
        "ventas_0801_D.csv",
        "ventas_0801_H-1.csv",
        "ventas_0801_H.csv",
    ]
    # the second one goes back while a header of that name waits in the inbox (a clash)
    inbox.joinpath("ventas_0801_H.csv").write_bytes(b"el ERP la esta escribiendo")
    assert main(["replay", "--config", str(config), "--file", "ventas_0801_H-1.csv"]) == 0
    capsys.readouterr()
    assert _names(inbox) == ["ventas_0801-1_D.csv", "ventas_0801-1_H.csv", "ventas_0801_H.csv"]
    inbox.joinpath("ventas_0801_H.csv").unlink()
    inbox.joinpath("ventas_0801-1_D.csv").write_bytes(_pair_files("8")[1])  # the ERP fixes it
    _run(config)
    assert {k: len(v) for k, v in stamps_by_key(sandbox.store).items()} == {("P", "8"): 1}
    (day,) = (ws / "archive").iterdir()
    assert _names(day) == ["ventas_0801-1_D.csv", "ventas_0801-1_H.csv"]
    assert _names(inbox) == []


def test_a_replayed_pair_without_a_clash_gets_the_header_and_lines_names_back(
    tmp_path: Path, sandbox, capsys: pytest.CaptureFixture
) -> None:
    config = write_config(
        tmp_path / "ws", timbrado_url=sandbox.fel_timbrado_url, extra_sources=PAIR_SOURCE
    )
    ws = config.parent
    inbox = ws / "inbox"
    for _ in (1, 2):
        inbox.joinpath("ventas_0801_H.csv").write_bytes(_pair_files("8")[0])
        inbox.joinpath("ventas_0801_D.csv").write_bytes(_pair_files("9")[1])
        _run(config)
    # the failed/ copy is ventas_0801_D-1.csv: it goes back as the partner of the header
    assert main(["replay", "--config", str(config), "--file", "ventas_0801_H-1.csv"]) == 0
    capsys.readouterr()
    assert _names(inbox) == ["ventas_0801_D.csv", "ventas_0801_H.csv"]


def test_replay_file_takes_the_exact_failed_name_and_refuses_an_erp_name_shared_by_several(
    workspace: Path, sandbox, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    ws = workspace.parent
    inbox, failed = ws / "inbox", ws / "failed"
    for folio in ("1", "2", "3"):  # an ERP that reuses one export name; each one fails
        inbox.joinpath("lote.dat").write_bytes(dat_invoice("Z", folio, tipo="Z").encode())
        _run(workspace)
    assert [n for n in _names(failed) if n.endswith(".dat")] == [
        "lote-1.dat",
        "lote-2.dat",
        "lote.dat",
    ]
    # the exact name in failed/: that file only; the others of that ERP name are named
    assert main(["replay", "--config", str(workspace), "--file", "lote.dat"]) == 0
    out = capsys.readouterr().out
    assert "lote-1.dat" in out and "lote-2.dat" in out
    assert _names(inbox) == ["lote.dat"]
    assert "|Z|1|" in inbox.joinpath("lote.dat").read_text(encoding="utf-8")
    assert [n for n in _names(failed) if n.endswith(".dat")] == ["lote-1.dat", "lote-2.dat"]
    inbox.joinpath("lote.dat").rename(tmp_path / "aparte.dat")
    # now no failed/ file is called lote.dat: the ERP's name matches two, none is replayed
    assert main(["replay", "--config", str(workspace), "--file", "lote.dat"]) == 2
    out = capsys.readouterr().out
    assert "CONN-REPLAY-AMBIGUO" in out and "lote-1.dat" in out and "lote-2.dat" in out
    assert _names(inbox) == []
    assert main(["replay", "--config", str(workspace), "--file", "lote-2.dat"]) == 0
    capsys.readouterr()
    assert _names(inbox) == ["lote.dat"]
    assert "|Z|3|" in inbox.joinpath("lote.dat").read_text(encoding="utf-8")
    assert [n for n in _names(failed) if n.endswith(".dat")] == ["lote-1.dat"]


def test_a_replayed_file_of_a_done_marker_source_gets_its_marker_back_and_is_taken_again(
    tmp_path: Path, sandbox, capsys: pytest.CaptureFixture
) -> None:
    from tests.daemon.test_daemon_claim_crash import MARKER_SOURCE

    config = write_config(
        tmp_path / "ws", timbrado_url=sandbox.fel_timbrado_url, extra_sources=MARKER_SOURCE
    )
    ws = config.parent
    inbox = ws / "inbox-marcas"
    inbox.mkdir()
    inbox.joinpath("lote.dat").write_bytes(dat_invoice("Z", "1", tipo="Z").encode())
    inbox.joinpath("lote.dat.done").write_bytes(b"")
    _run(config)
    assert {"lote.dat", "lote.dat.done"} <= set(_names(ws / "failed"))
    assert main(["replay", "--config", str(config), "--file", "lote.dat"]) == 0
    capsys.readouterr()
    assert _names(inbox) == ["lote.dat", "lote.dat.done"]
    _run(config)  # taken again (and, unchanged, it fails again)
    assert _names(inbox) == []
    assert {"lote.dat", "lote.dat.done"} <= set(_names(ws / "failed"))
