"""Fixtures shared by the PAC tests."""

from __future__ import annotations

import pytest

from connector.cfdi.csd import Csd

from .drivers_support import load_csd


@pytest.fixture(scope="session")
def csd(csd_files: tuple[bytes, bytes, str]) -> Csd:
    """SAT's valid test CSD for EKU9003173C9, loaded once."""
    return load_csd(csd_files)
