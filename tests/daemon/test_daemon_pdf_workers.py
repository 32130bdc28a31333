"""PDFs rendered in worker processes (``connector.rendering.PdfRenderer``): the same document
as in the calling thread, a worker that dies is replaced, workers that cannot start turn the
pool off, workers end with a SIGKILLed daemon, and the daemon delivers through the pool."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pypdf
import pytest

from connector.config import EmisorConfig
from connector.rendering import PdfRenderer
from tests.conftest import SAMPLES
from tests.daemon.conftest import RFC, dat_file, write_config

STAMPED = SAMPLES / "cfdi40-valid_CfdiUtils.xml"
EMISOR = EmisorConfig(rfc=RFC, cer=Path("x.cer"), key=Path("x.key"), password_env="UNUSED")


def _text(pdf: bytes) -> str:
    return "".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(pdf)).pages)


def _workers(r: PdfRenderer) -> list[int]:
    assert r._pool is not None
    return [p.pid for p in r._pool._processes.values()]  # type: ignore[attr-defined]


@pytest.fixture
def renderer() -> PdfRenderer:
    r = PdfRenderer(1)
    yield r
    r.close()


def test_worker_process_renders_the_same_document_as_this_thread(renderer: PdfRenderer) -> None:
    xml = STAMPED.read_bytes()
    here = PdfRenderer(0).render(xml, EMISOR)
    there = renderer.render(xml, EMISOR)
    assert here and there and there.startswith(b"%PDF-")
    assert _workers(renderer) and os.getpid() not in _workers(renderer)
    assert _text(there) == _text(here) and "ESCUELA KEMPER URGATE" in _text(here)
    cancelled = renderer.render(xml, EMISOR, cancelled=True)
    assert cancelled and "CANCELADO" in _text(cancelled) and "CANCELADO" not in _text(there)


def test_a_killed_worker_is_replaced_and_its_pdf_still_made(renderer: PdfRenderer) -> None:
    xml = STAMPED.read_bytes()
    assert renderer.render(xml, EMISOR)
    for _ in range(3):  # killed again and again: each loss is replaced, never turned off
        [pid] = _workers(renderer)
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
        assert renderer.render(xml, EMISOR, cancelled=True)  # rendered here after the loss
        assert renderer.render(xml, EMISOR)  # and a new pool with a new worker
        assert renderer.processes == 1 and _workers(renderer) and pid not in _workers(renderer)


def test_workers_that_cannot_start_turn_the_pool_off(
    renderer: PdfRenderer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # a spawned worker first re-imports the main module: make that impossible
    main = sys.modules["__main__"]
    monkeypatch.setattr(main, "__spec__", None, raising=False)
    monkeypatch.setattr(main, "__file__", str(tmp_path / "gone.py"), raising=False)
    for _ in range(2):  # a second pool is tried (the first may have lost a worker early)
        pdf = renderer.render(STAMPED.read_bytes(), EMISOR)
        assert pdf and pdf.startswith(b"%PDF-")  # rendered in this thread instead
    assert renderer.processes == 0 and renderer._pool is None
    assert renderer.render(STAMPED.read_bytes(), EMISOR)  # and no new attempts


def test_rendering_error_in_a_worker_gives_none(renderer: PdfRenderer) -> None:
    assert renderer.render(b"<no-es-cfdi/>", EMISOR) is None
    assert renderer.render(STAMPED.read_bytes(), EMISOR)  # the worker is still fine


KILLED = """
import os, signal, sys
from pathlib import Path
from connector.config import EmisorConfig
from connector.rendering import PdfRenderer
if __name__ == "__main__":
    e = EmisorConfig(rfc="EKU9003173C9", cer=Path("x"), key=Path("y"), password_env="UNUSED")
    r = PdfRenderer(2)
    assert r.render(Path(sys.argv[1]).read_bytes(), e)
    print(" ".join(str(p.pid) for p in r._pool._processes.values()), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_workers_end_when_the_daemon_is_killed(tmp_path: Path) -> None:
    script = tmp_path / "daemon_like.py"
    script.write_text(KILLED, encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, str(script), str(STAMPED)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        timeout=60,
    )
    assert proc.returncode == -signal.SIGKILL
    pids = [int(p) for p in proc.stdout.split()]
    assert pids
    deadline = time.monotonic() + 10
    alive = pids
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = [p for p in pids if _running(p)]
    assert not alive, f"workers left behind: {alive}"


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_daemon_delivers_pdfs_rendered_by_its_workers(sandbox, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from connector.config import check_config
    from connector.pipeline import Pipeline

    config = write_config(tmp_path / "ws", timbrado_url=sandbox.fel_timbrado_url)
    text = config.read_text(encoding="utf-8").replace("[daemon]", "[daemon]\npdf_processes = 2")
    config.write_text(text, encoding="utf-8")
    (tmp_path / "ws" / "inbox" / "lote.dat").write_bytes(dat_file("W", [1, 2, 3]))
    cfg, problems = check_config(config)
    assert cfg is not None, problems
    p = Pipeline(cfg)
    p.start()
    try:
        assert p.run_until_idle(60)
        assert p.pdf.processes == 2 and _workers(p.pdf)
    finally:
        p.close()
    pdfs = sorted((tmp_path / "ws" / "out" / "pdf").glob("W*.pdf"))
    xmls = sorted((tmp_path / "ws" / "out" / "xml").glob("W*.xml"))
    assert [x.stem for x in pdfs] == [x.stem for x in xmls] and len(pdfs) == 3
    for pdf in pdfs:
        uuid = pdf.stem.split("_")[1]
        assert uuid in _text(pdf.read_bytes())
