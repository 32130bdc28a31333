"""``cfdi-connector sandbox-pac``: a real process, stopped with SIGTERM / Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from connector.cli import build_parser


def start(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "connector.cli",
            "sandbox-pac",
            "--port",
            "0",
            "--db",
            str(tmp_path / "cli.db"),
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("Ctrl-C"):
            break
    text = "".join(lines)
    match = re.search(r"FEL Timbrado:\s+(http://127\.0\.0\.1:\d+/\S+)", text)
    if not match:
        proc.kill()
        _, err = proc.communicate(timeout=30)
        pytest.fail(f"the sandbox did not start (rc={proc.returncode}): {text}\n{err}")
    return proc, text


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_runs_in_the_foreground_and_stops_cleanly(tmp_path: Path, sig: signal.Signals) -> None:
    proc, text = start(tmp_path, "--latency", "0.01", "--fault", "http500:1:ConsultarCreditos")
    try:
        assert "usuario=demo password=demo cuenta=DEMO" in text
        for name in ("FEL Conexión Remota", "Finkok timbrado", "Finkok cancelación", "SAT estado"):
            assert name in text
        url = re.search(r"FEL Timbrado:\s+(\S+)", text).group(1)
        wsdl = requests.get(url + "?wsdl", timeout=10)
        assert wsdl.status_code == 200 and url.encode() in wsdl.content
    finally:
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, (out, err)
    assert "detenido" in out
    assert (tmp_path / "cli.db").exists()
    assert (tmp_path / "cli.db.pac.cer").exists()


def test_bad_fault_spec_is_a_clear_error(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "connector.cli",
            "sandbox-pac",
            "--port",
            "0",
            "--db",
            str(tmp_path / "x.db"),
            "--fault",
            "explode",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "SBX-FAULT" in proc.stderr


def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "connector.cli",
                "sandbox-pac",
                "--port",
                str(port),
                "--db",
                str(tmp_path / "x.db"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode == 2
    assert "SBX-PORT" in proc.stderr


def test_parser_knows_the_command() -> None:
    args = build_parser().parse_args(
        ["sandbox-pac", "--port", "9999", "--fault", "drop:2", "--fault", "garbage"]
    )
    assert (args.port, args.fault, args.latency) == (9999, ["drop:2", "garbage"], 0.0)
    assert callable(args.func)
