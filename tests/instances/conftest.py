"""Fixtures of the several-instances tests (issue 16): a private PostgreSQL server for the
shared journal (``journal_server``: the test may stop and start it), the sandbox PAC at 150 ms
(``slow_pac``), fresh default tables on the local PostgreSQL over ODBC (``pg_tables``, the
session's database of tests/tables) and the cluster of instances over all of them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.tables.conftest import Db, _databases, fresh_tables  # noqa: F401 (a fixture)

from .harness import LATENCY, Cluster
from .private_pg import PrivatePostgres


@pytest.fixture
def journal_server() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres()
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture
def slow_pac(tmp_path: Path) -> Iterator[Any]:
    from connector.pac.sandbox import SandboxPac

    pac = SandboxPac.demo(tmp_path / "pac.db", latency=LATENCY)
    pac.start()
    try:
        yield pac
    finally:
        pac.close()


@pytest.fixture
def pg_tables(_databases: dict[str, Db]) -> Db:  # noqa: F811 (the fixture imported above)
    return fresh_tables(_databases["postgresql"])


@pytest.fixture
def make_cluster(
    tmp_path: Path, journal_server: PrivatePostgres, slow_pac: Any, pg_tables: Db
) -> Iterator[Any]:
    """``make_cluster(**kw)``: a ``Cluster`` on an empty journal database of the private
    server; every instance still running at the end is killed."""
    made: list[Cluster] = []

    def make(**kw: Any) -> Cluster:
        url = journal_server.create_database(f"journal{len(made)}")
        c = Cluster(tmp_path / f"c{len(made)}", url, pg_tables, slow_pac, **kw)
        made.append(c)
        return c

    yield make
    for c in made:
        c.kill_all()
