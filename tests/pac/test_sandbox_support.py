"""Shared helpers for the sandbox PAC tests (no tests here).

Clients are plain zeep clients built from the shipped WSDL files with the service address
overridden, exactly as a driver would build them; everything runs over real HTTP on 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import zeep
from zeep.transports import Transport

from connector.cfdi.csd import Csd
from connector.pac.sandbox import SandboxAccount, SandboxPac

from .drivers_support import EMISOR, RECEPTOR, invoice, sealed

__all__ = ["EMISOR", "RECEPTOR", "client", "hours_ago", "invoice", "pac", "sealed"]

WSDL = Path(__file__).resolve().parents[2] / "connector" / "pac" / "wsdl"

BINDINGS = {
    "fel_timbrado": (
        "fel_WSCFDI33.offline.RECONSTRUCTED.wsdl",
        "{http://tempuri.org/}soapHttpEndpoint",
    ),
    "fel_remote": ("fel_CR33_ConexionRemota_TEST.wsdl", "{http://tempuri.org/}soapHttpEndpoint"),
    "finkok_stamp": ("finkok_stamp.wsdl", "{http://facturacion.finkok.com/stamp}Application"),
    "finkok_cancel": ("finkok_cancel40.wsdl", "{http://facturacion.finkok.com/cancel}Application"),
    "sat_status": (
        "sat_ConsultaCFDIService.offline.RECONSTRUCTED.wsdl",
        "{http://tempuri.org/}BasicHttpBinding_IConsultaCFDIService",
    ),
}
_clients: dict[tuple[str, float], zeep.Client] = {}


def client(key: str, address: str, timeout: float = 30) -> Any:
    """A zeep service proxy for one sandbox service (WSDL from disk, address overridden)."""
    wsdl, binding = BINDINGS[key]
    c = _clients.get((key, timeout))
    if c is None:
        session = requests.Session()
        session.trust_env = False  # never a proxy: 127.0.0.1 only
        transport = Transport(session=session, timeout=timeout, operation_timeout=timeout)
        c = _clients[(key, timeout)] = zeep.Client(str(WSDL / wsdl), transport=transport)
    return c.create_service(binding, address)


def hours_ago(hours: float) -> datetime:
    return datetime.now() - timedelta(hours=hours)


@pytest.fixture
def pac(tmp_path: Path, csd: Csd) -> Iterator[SandboxPac]:
    """A running sandbox with account ``user``/``secret``/``C1`` (10 credits, the test CSD)
    and ``other``/``pw``/``C2`` (no RFC registered)."""
    accounts = [
        SandboxAccount("user", "secret", "C1", creditos=10, csds={EMISOR: csd}),
        SandboxAccount("other", "pw", "C2", creditos=10),
    ]
    with SandboxPac(tmp_path / "pac.db", accounts=accounts) as sandbox:
        yield sandbox
