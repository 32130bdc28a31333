"""One sandbox PAC account for the acceptance tests that stamp sealed documents over HTTP:
a module's own PAC (``pac``) with the test CSD of the shared emisor, and a FEL driver on it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from connector.cfdi.csd import Csd
from connector.pac.base import Timeouts
from connector.pac.fel import FelDriver
from connector.pac.sandbox import SandboxAccount, SandboxPac
from tests.cfdi.strategies import shared_test_csd
from tests.pac.drivers_support import EMISOR

USUARIO, CUENTA = "qa", "QA"
PASSWORD = "qa-sandbox-clave"  # fixed: this module may be imported twice (pytest, tests)


@pytest.fixture(scope="module")
def csd() -> Csd:
    return shared_test_csd()


@pytest.fixture(scope="module")
def pac(tmp_path_factory: pytest.TempPathFactory, csd: Csd) -> Iterator[SandboxPac]:
    db = tmp_path_factory.mktemp("pac") / "pac.db"
    accounts = [SandboxAccount(USUARIO, PASSWORD, CUENTA, 1000, csds={EMISOR: csd})]
    with SandboxPac(db, accounts=accounts) as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def fel(pac: SandboxPac) -> Iterator[FelDriver]:
    d = FelDriver(
        USUARIO,
        PASSWORD,
        cuenta=CUENTA,
        timbrado_url=pac.fel_timbrado_url,
        remote_url=pac.fel_remote_url,
        timeouts=Timeouts(connect=2, read=20),
    )
    yield d
    d.close()
