"""Issue 2's 72-hour rule as the daemon applies it, on a machine whose clock is west of Mexico
City (Tijuana, or a server on US Pacific time): an ERP export dated in Mexico City time, five
minutes ago, must be stamped.

The pipeline validates with an aware local ``now`` (``Pipeline._local_now``) and the 72-hour
rule reads Fecha in any Mexican zone or in the clock's own zone, so a Mexico City Fecha on a
Tijuana clock is accepted; the sandbox PAC accepts it too."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

from connector.cfdi.csd import MEXICO_TZ
from connector.pac.sandbox import SandboxPac
from tests.daemon.conftest import dat_invoice, write_config


def test_submit_on_a_tijuana_clock_stamps_a_mexico_city_fecha(tmp_path: Path) -> None:
    cdmx = datetime.now(MEXICO_TZ).replace(tzinfo=None) - timedelta(minutes=5)
    with SandboxPac.demo(tmp_path / "pac.db") as pac:
        config = write_config(
            tmp_path / "ws", timbrado_url=pac.fel_timbrado_url, remote_url=pac.fel_remote_url
        )
        export = tmp_path / "ventas_tj.dat"
        export.write_text(dat_invoice("TJ", "1", when=cdmx.strftime("%Y-%m-%dT%H:%M:%S")))
        env = {**os.environ, "TZ": "America/Tijuana"}
        proc = subprocess.run(
            [sys.executable, "-m", "connector.cli", "submit", str(export), "--config", str(config),
             "--timeout", "60"],
            capture_output=True, text=True, env=env, timeout=120,
        )  # fmt: skip
        # FEL 401 (Fecha outside 72 hours) as a code, not the digits inside the stamped UUID
        assert not re.search(r"\b401\b", proc.stdout), proc.stdout
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert pac.store.count() == 1
