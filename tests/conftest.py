"""Shared fixtures: where the public reference data (``../shared``) lives, and the test CSD."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CFDI_SHARED_DIR", REPO.parent / "shared")).resolve()
TESTCSD = SHARED / "testcsd"
SAMPLES = SHARED / "samples"
LAYOUTS = SHARED / "layouts"
CSD_PASSWORD = "12345678a"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    assert SHARED.is_dir(), f"shared/ reference data not found at {SHARED} (set CFDI_SHARED_DIR)"
    return SHARED


@pytest.fixture(scope="session")
def csd_files(shared_dir: Path) -> tuple[bytes, bytes, str]:
    """(cer, key, password) of SAT's valid test CSD for EKU9003173C9."""
    base = TESTCSD / "eku9003173c9_csd_2023_30001000000500003416"
    return (
        base.with_suffix(".cer").read_bytes(),
        base.with_suffix(".key").read_bytes(),
        CSD_PASSWORD,
    )


@pytest.fixture(autouse=True)
def _fresh_logging() -> Iterator[None]:
    """Tests that run the CLI configure structlog with the sys.stderr of that moment, which
    pytest closes after the test: give every test structlog's defaults back afterwards."""
    yield
    structlog.reset_defaults()


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[object]:
    """The bundled sandbox PAC on a free port of 127.0.0.1 (real HTTP SOAP)."""
    from connector.pac.sandbox import SandboxPac

    pac = SandboxPac.demo(tmp_path / "pac.db")
    pac.start()
    try:
        yield pac
    finally:
        pac.close()
