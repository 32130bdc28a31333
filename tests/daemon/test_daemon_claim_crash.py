"""A daemon killed (SIGKILL) in the middle of claiming a file: the next start finishes the claim.

The kill is real: a child process claims with the real FolderSource and is killed by the
kernel right after its first rename into work/ (the moment the reviewer found unsafe)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from connector.config import check_config
from tests.daemon.conftest import REPO, dat_file, stamps_by_key, start_pipeline, write_config
from tests.daemon.test_daemon_pairs import PAIR_SOURCE, _pair_files

MARKER_SOURCE = """
[[sources]]
name = "marcas"
inbox = "inbox-marcas"
adapter = "dat"
include = ["*.dat"]
emisor = "EKU9003173C9"
pac = "sandbox"
done_marker = ".done"
archive = "archive"
failed = "failed"
[sources.output]
xml = "out/xml"
errors = "out/errors"
"""

CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from connector.adapters.folder import FolderSource, PairSpec
    from connector.config import check_config

    cfg, _ = check_config(sys.argv[1])
    s = cfg.source(sys.argv[2])
    pair = PairSpec(s.pair.header_suffix, s.pair.lines_suffix) if s.pair else None
    src = FolderSource(s.inbox, s.work, include=s.include, stable_seconds=0,
                       done_marker=s.done_marker, pair=pair)
    real, left = os.rename, [int(sys.argv[3])]
    def rename(a, b):  # the kernel kills us right after the N-th rename into work/
        real(a, b)
        if os.path.dirname(os.fspath(b)) == os.fspath(s.work):
            left[0] -= 1
            if left[0] == 0:
                os.kill(os.getpid(), signal.SIGKILL)
    os.rename = rename
    (path,) = src.scan()
    src.claim(path)
    """
)


def _claim_and_die(config: Path, source: str, after: int = 1) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(config), source, str(after)],
        cwd=REPO,
        capture_output=True,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()


def _run(config: Path) -> None:
    pipe = start_pipeline(config)
    try:
        assert pipe.run_until_idle(60)
    finally:
        pipe.close()


@pytest.mark.parametrize("after", [1, 2])
def test_a_pair_claim_killed_between_its_two_renames_is_finished_and_stamped_as_a_pair(
    tmp_path: Path, sandbox, after: int
) -> None:
    config = write_config(
        tmp_path / "ws", timbrado_url=sandbox.fel_timbrado_url, extra_sources=PAIR_SOURCE
    )
    ws = config.parent
    header, lines = _pair_files("6")
    (ws / "inbox" / "ventas_0601_H.csv").write_bytes(header)
    (ws / "inbox" / "ventas_0601_D.csv").write_bytes(lines)
    _claim_and_die(config, "csv-pares", after)
    assert len(os.listdir(ws / "inbox")) == 2 - after  # killed after taking one, or both
    _run(config)
    assert {k: len(v) for k, v in stamps_by_key(sandbox.store).items()} == {("P", "6"): 1}
    (day,) = (ws / "archive").iterdir()
    assert sorted(p.name for p in day.iterdir()) == ["ventas_0601_D.csv", "ventas_0601_H.csv"]
    assert list((ws / "failed").iterdir()) == [] and list((ws / "inbox").iterdir()) == []
    cfg, _ = check_config(config)
    assert cfg is not None
    work = cfg.source("csv-pares").work
    assert work is not None and list(work.iterdir()) == []


def test_a_done_marker_left_in_the_inbox_by_a_killed_claim_does_not_release_the_next_export(
    tmp_path: Path, sandbox
) -> None:
    config = write_config(
        tmp_path / "ws", timbrado_url=sandbox.fel_timbrado_url, extra_sources=MARKER_SOURCE
    )
    ws = config.parent
    inbox = ws / "inbox-marcas"
    inbox.mkdir()
    (inbox / "lote.dat").write_bytes(dat_file("M", [1]))
    (inbox / "lote.dat.done").write_bytes(b"")
    _claim_and_die(config, "marcas")
    assert sorted(os.listdir(inbox)) == ["lote.dat.done"]  # the file went, its marker stayed
    # the ERP sees lote.dat gone and starts writing the next export of the same name
    (inbox / "lote.dat").write_bytes(b"COMPROBANTE|4.0|M|")
    _run(config)
    assert {k: len(v) for k, v in stamps_by_key(sandbox.store).items()} == {("M", "1"): 1}
    assert sorted(os.listdir(inbox)) == ["lote.dat"]  # waits for its own marker
    (day,) = (ws / "archive").iterdir()
    assert sorted(p.name for p in day.iterdir()) == ["lote.dat", "lote.dat.done"]
    assert list((ws / "failed").iterdir()) == []
