"""Crash test: the daemon as a real process, killed with SIGKILL at random moments, restarted.

At the end every input is in exactly one final place, every valid invoice has exactly one UUID
at the PAC, every output is whole and no temporary file is left behind.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from lxml import etree

from tests.daemon.conftest import dat_invoice, stamps_by_key, write_config

FILES = 30
PER_FILE = 10
KILLS = 6
SEED = 20261121


def _drop(inbox: Path, name: str, data: bytes) -> None:
    tmp = inbox / f".{name}.part"
    tmp.write_bytes(data)
    os.replace(tmp, inbox / name)


def _start(config: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "connector.cli", "run", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=open(log, "ab"),  # noqa: SIM115 - closed with the process
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _started(log: Path) -> int:
    try:
        return log.read_bytes().count(b'"pipeline_started"')
    except FileNotFoundError:
        return 0


def _final_count(ws: Path) -> int:
    archived = [p for p in (ws / "archive").rglob("*.dat")]
    failed = [p for p in (ws / "failed").glob("*.dat")]
    return len(archived) + len(failed)


@pytest.mark.slow
def test_sigkill_at_random_moments_never_loses_or_double_stamps(tmp_path: Path) -> None:
    from connector.pac.sandbox import SandboxPac

    rng = random.Random(SEED)
    pac = SandboxPac.demo(tmp_path / "pac.db", latency=0.02)
    pac.start()
    # a few replies get lost after the stamp is stored: the ambiguous case, on top of the kills
    pac.faults.add(
        "reply_lost", times=None, probability=0.03, operations={"TimbrarCFDI"}, seed=SEED
    )
    try:
        config = write_config(
            tmp_path / "ws",
            timbrado_url=pac.fel_timbrado_url,
            stable_seconds=0.2,
            workers=16,
            poll=0.1,
            retry_wait=0.2,
        )
        ws = config.parent
        inbox = ws / "inbox"
        valid: set[tuple[str, str]] = set()
        names = []
        for n in range(FILES):
            serie = f"K{n:02d}"
            folios = list(range(1, PER_FILE + 1))
            text = ""
            for f in folios:
                if n % 10 == 3 and f == 5:  # one invalid invoice in a few files
                    text += dat_invoice(serie, str(f), tipo="Z")
                else:
                    text += dat_invoice(serie, str(f))
                    valid.add((serie, str(f)))
            names.append((f"lote{n:02d}.dat", text.encode()))
        for name, data in names[: FILES // 2]:
            _drop(inbox, name, data)
        errlog = tmp_path / "daemon.stderr"
        log = ws / "var" / "connector.log"
        for kill in range(KILLS):
            proc = _start(config, errlog)
            # kill while it works: a random moment after the pipeline has started
            for _ in range(600):
                if _started(log) > kill or proc.poll() is not None:
                    break
                time.sleep(0.05)
            time.sleep(rng.uniform(0.1, 2.5))
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
            if kill == 1:
                for name, data in names[FILES // 2 :]:
                    _drop(inbox, name, data)  # more files arrive while the daemon is down
        proc = _start(config, errlog)
        try:
            for _ in range(1800):
                if (
                    _final_count(ws) == FILES
                    and not any((ws / "work").rglob("*.dat"))
                    and _started(log) > KILLS  # signal handlers set: SIGTERM is a clean stop
                ):
                    break
                time.sleep(0.1)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(120) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
        # every input is in exactly one final place
        finals = [p.name for p in (ws / "archive").rglob("*.dat")]
        finals += [p.name for p in (ws / "failed").glob("*.dat")]
        assert sorted(finals) == sorted(n for n, _ in names), errlog.read_text()[-3000:]
        assert not [p for p in inbox.iterdir() if not p.name.startswith(".")]
        assert not any(p.is_file() for p in (ws / "work").rglob("*"))
        bad_files = sorted(p.name for p in (ws / "failed").glob("*.dat"))
        assert bad_files == [f"lote{n:02d}.dat" for n in range(FILES) if n % 10 == 3]
        # every valid invoice has exactly one UUID at the PAC, and nothing else was stamped
        keys = stamps_by_key(pac.store)
        assert set(keys) == valid
        doubles = {k: v for k, v in keys.items() if len(v) != 1}
        assert not doubles
        # every output is whole and names the PAC's UUID
        xmls = list((ws / "out" / "xml").glob("*.xml"))
        assert len(xmls) == len(valid)
        for x in xmls:
            root = etree.fromstring(x.read_bytes())
            key = (root.get("Serie"), root.get("Folio"))
            assert x.stem == f"{key[0]}{key[1]}_{keys[key][0]}"
        pdfs = list((ws / "out" / "pdf").glob("*.pdf"))
        assert len(pdfs) == len(valid)
        for p in pdfs:
            data = p.read_bytes()
            assert data.startswith(b"%PDF") and b"%%EOF" in data[-1024:]
        for a in (ws / "out" / "acuse").glob("*.xml"):
            etree.fromstring(a.read_bytes())
        # the kills did interrupt work in flight: files were resumed after a restart
        events = (ws / "var" / "connector.log").read_text(encoding="utf-8", errors="replace")
        assert events.count('"pipeline_started"') == KILLS + 1
        assert events.count('"resume_file"') + events.count('"adopt_file"') >= 1
        # no temporary file anywhere
        leftovers = [p for p in ws.rglob("*") if "tmp" in p.name and p.is_file()]
        assert leftovers == []
    finally:
        pac.close()


def test_a_status_file_cut_by_a_kill_leaves_no_temporary_file_after_the_restart(
    workspace: Path, sandbox
) -> None:
    """The daemon killed while writing its status file (``<journal>.status.json``) leaves its
    temporary file beside the journal; the next start removes it, as in the output folders."""
    from tests.daemon.conftest import start_pipeline

    var = workspace.parent / "var"
    var.mkdir(exist_ok=True)
    cut = var / ".journal.sqlite.status.json.1e9170a6.cfdi-tmp"
    cut.write_bytes(b'{"pid": 1')
    pipe = start_pipeline(workspace)
    pipe.close()
    assert not cut.exists()
    assert (var / "journal.sqlite").exists()
