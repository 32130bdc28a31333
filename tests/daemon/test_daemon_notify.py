"""systemd's notify protocol, against a real ``cfdi-connector run`` and a real ``AF_UNIX``
datagram socket as ``NOTIFY_SOCKET``: READY=1 only after recovery, WATCHDOG=1 from the main loop
at half of WATCHDOG_USEC (and none while the loop hangs), STOPPING=1 then exit 0 with requests in
flight, a second signal exits at once; afterwards nothing lost, nothing stamped twice."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from connector.service.notify import Heartbeat, Notifier
from tests.daemon.conftest import dat_file, stamps_by_key, write_config


class Listener:
    """A datagram socket standing in for systemd: every message with the time it came."""

    def __init__(self, address: str, on_message: object = None) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self.sock.settimeout(0.2)
        self.address = address
        self.messages: list[tuple[float, str]] = []
        self.on_message = on_message
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            for line in data.decode().splitlines():
                if self.on_message is not None:
                    self.on_message(line)  # type: ignore[operator]
                self.messages.append((time.monotonic(), line))

    def times(self, line: str) -> list[float]:
        return [t for t, m in list(self.messages) if m == line]

    def wait_for(self, line: str, timeout: float = 60.0) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.times(line)
            if found:
                return found[0]
            time.sleep(0.02)
        raise AssertionError(f"{line} never came; got {[m for _, m in self.messages]}")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[Listener]:
    lst = Listener(f"@cfdi-notify-{os.getpid()}-{time.monotonic_ns()}")
    yield lst
    lst.close()


def _run(config: Path, log: Path, env: dict[str, str], *more: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "connector.cli", "run", "--config", str(config), *more],
        stdout=subprocess.DEVNULL,
        stderr=open(log, "ab"),  # noqa: SIM115 - closed with the process
        env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
    )


def _sealed_not_sent(config: Path, files: dict[str, bytes]) -> int:
    """Files claimed and their invoices sealed (attempt 1 recorded), nothing sent: what a
    crash between the seal and the send leaves. Returns how many invoices wait."""
    from connector.config import check_config
    from connector.journal import State
    from connector.pipeline import Pipeline

    cfg, problems = check_config(config)
    assert cfg is not None, problems
    pipe = Pipeline(cfg)
    pipe.start()
    try:
        pipe.stopping.set()  # sends are not dispatched from now on
        src = pipe.sources["ventas"]
        for name, data in files.items():
            work = src.cfg.work / f"20260101T000000-0000--{name}"  # type: ignore[operator]
            work.write_bytes(data)
            pipe.process_file(src, work)
        assert pipe.journal is not None
        waiting = pipe.journal.in_state(State.SEALED, State.SENDING)
    finally:
        pipe.close()
    return len(waiting)


def _wait_until(pred: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(what)


def _finish(config: Path, errlog: Path, pac: object, expected: set[tuple[str, str]]) -> None:
    """Restart without systemd, let it finish, stop it: every invoice stamped exactly once."""
    ws = config.parent
    proc = _run(config, errlog, {"NOTIFY_SOCKET": ""})
    try:
        _wait_until(
            lambda: (
                len(list((ws / "out" / "xml").glob("*.xml"))) >= len(expected)
                and b'"ready"' in (ws / "var" / "connector.log").read_bytes()
            ),
            120,
            "the restarted daemon did not finish",
        )
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    keys = stamps_by_key(pac.store)  # type: ignore[attr-defined]
    assert set(keys) == expected
    assert {k: v for k, v in keys.items() if len(v) != 1} == {}
    assert len(list((ws / "out" / "xml").glob("*.xml"))) == len(expected)


@pytest.mark.slow
def test_ready_after_recovery_watchdog_pace_and_clean_stop_with_requests_in_flight(
    tmp_path: Path, listener: Listener
) -> None:
    from connector.journal import Journal, State
    from connector.pac.sandbox import SandboxPac

    pac = SandboxPac.demo(tmp_path / "pac.db")
    pac.start()
    try:
        config = write_config(tmp_path / "ws", timbrado_url=pac.fel_timbrado_url, workers=2)
        ws = config.parent
        log = ws / "var" / "connector.log"
        files = {"a.dat": dat_file("NA", list(range(1, 6))), "b.dat": dat_file("NB", [1, 2, 3])}
        expected = {("NA", str(f)) for f in range(1, 6)} | {("NB", str(f)) for f in (1, 2, 3)}
        assert _sealed_not_sent(config, files) == 8
        pac.latency = 2.0  # every request stays in flight a while

        at_ready: dict[str, int] = {}

        def on_message(line: str) -> None:  # the log as it stood when READY=1 came
            if line == "READY=1":
                text = log.read_bytes()
                at_ready["resumed"] = text.count(b'"resume_file"')
                at_ready["taken"] = text.count(b'"file_taken"')
                at_ready["started"] = text.count(b'"pipeline_started"')

        listener.on_message = on_message
        errlog = tmp_path / "daemon.stderr"
        proc = _run(config, errlog, {"NOTIFY_SOCKET": listener.address, "WATCHDOG_USEC": "2000000"})
        try:
            ready = listener.wait_for("READY=1")
            # recovery was over before READY=1: both files left in work/ read again and their
            # sealed invoices handed to the PAC's workers
            assert at_ready == {"resumed": 2, "taken": 2, "started": 1}
            time.sleep(3.5)
            # WATCHDOG=1 from the loop at half of WATCHDOG_USEC (1 s), never later than 2 s
            pings = [t for t in listener.times("WATCHDOG=1") if t >= ready]
            assert len(pings) >= 3, listener.messages
            gaps = [b - a for a, b in zip(pings, pings[1:], strict=False)]
            assert all(0.9 <= g < 2.0 for g in gaps), gaps
            status = [m for _, m in listener.messages if m.startswith("STATUS=")]
            assert status and "en proceso" in status[0] and "PAC sandbox: cerrado" in status[0]
            stamped_before = len(pac.store.stamps())
            assert stamped_before < 8  # requests in flight when the stop comes
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(60) == 0, errlog.read_text()[-2000:]
            listener.wait_for("STOPPING=1", 1)
        finally:
            if proc.poll() is None:
                proc.kill()
        # the requests in flight finished and were recorded; the rest wait, resumable
        j = Journal(ws / "var" / "journal.sqlite")
        try:
            counts = j.counts()
        finally:
            j.close()
        done = counts[State.STAMPED] + counts[State.DELIVERED]
        assert done == len(pac.store.stamps()) > stamped_before
        assert done < 8 and counts[State.SEALED] + counts[State.SENDING] == 8 - done
        text = log.read_text(encoding="utf-8")
        assert '"draining"' in text and '"stopped"' in text
        pac.latency = 0.0
        _finish(config, errlog, pac, expected)
    finally:
        pac.close()


@pytest.mark.slow
def test_watchdog_stops_while_the_loop_hangs_on_a_locked_journal(
    tmp_path: Path, listener: Listener, sandbox: object
) -> None:
    """A real hang: another process holds the journal's write lock (an admin's sqlite3 shell
    inside a transaction) when a file arrives; the loop waits on the journal and must stop
    proving it is alive (no WATCHDOG=1, /healthz 503), then ping again once the lock is gone."""
    from tests.daemon.test_daemon_http import free_port, get

    port = free_port()
    config = write_config(tmp_path / "ws", timbrado_url=sandbox.fel_timbrado_url)  # type: ignore[attr-defined]
    ws = config.parent
    errlog = tmp_path / "daemon.stderr"
    env = {"NOTIFY_SOCKET": listener.address, "WATCHDOG_USEC": "1000000"}
    proc = _run(config, errlog, env, "--http", f"127.0.0.1:{port}")
    healthz = f"http://127.0.0.1:{port}/healthz"
    blocker: sqlite3.Connection | None = None
    try:
        listener.wait_for("READY=1")
        time.sleep(1.5)
        assert len(listener.times("WATCHDOG=1")) >= 2
        assert get(healthz)[0] == 200
        blocker = sqlite3.connect(ws / "var" / "journal.sqlite", isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        (ws / "inbox" / "h.dat").write_bytes(dat_file("H", [1]))
        _wait_until(lambda: not (ws / "inbox" / "h.dat").exists(), 30, "never claimed")
        time.sleep(0.6)  # the claim is followed by the journal write that waits
        hung_at = time.monotonic()
        time.sleep(3.0)
        assert [t for t in listener.times("WATCHDOG=1") if t > hung_at] == []
        code, body = get(healthz)  # the HTTP thread answers; the loop it reports on does not
        assert code == 503 and b"colgado" in body, body
        blocker.execute("ROLLBACK")
        released = time.monotonic()
        _wait_until(
            lambda: len([t for t in listener.times("WATCHDOG=1") if t > released]) >= 2,
            20,
            "the watchdog did not come back",
        )
        _wait_until(lambda: any((ws / "out" / "xml").glob("H1_*.xml")), 30, "H1 not stamped")
        assert get(healthz)[0] == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        if blocker is not None:
            blocker.close()
        if proc.poll() is None:
            proc.kill()


@pytest.mark.slow
def test_a_second_signal_exits_at_once_and_nothing_is_lost(
    tmp_path: Path, listener: Listener
) -> None:
    from connector.pac.sandbox import SandboxPac

    pac = SandboxPac.demo(tmp_path / "pac.db", latency=30.0)  # past the 10 s PAC timeout
    pac.start()
    try:
        config = write_config(tmp_path / "ws", timbrado_url=pac.fel_timbrado_url, workers=2)
        ws = config.parent
        errlog = tmp_path / "daemon.stderr"
        proc = _run(config, errlog, {"NOTIFY_SOCKET": listener.address})
        try:
            listener.wait_for("READY=1")
            (ws / "inbox" / "s.dat").write_bytes(dat_file("S", [1, 2, 3]))
            log = ws / "var" / "connector.log"
            _wait_until(lambda: b'"file_taken"' in log.read_bytes(), 30, "s.dat not taken")
            time.sleep(1.0)  # two sends wait for the PAC's reply (30 s, past the timeout)
            proc.send_signal(signal.SIGTERM)
            listener.wait_for("STOPPING=1", 5)
            time.sleep(0.5)
            assert proc.poll() is None  # draining: the requests wait for the PAC's reply
            second = time.monotonic()
            proc.send_signal(signal.SIGINT)
            code = proc.wait(10)
            assert time.monotonic() - second < 5
            assert code == 128 + signal.SIGINT
        finally:
            if proc.poll() is None:
                proc.kill()
        assert b'"shutdown_forced"' in log.read_bytes()
        assert pac.store.stamps() == []  # nothing had come back when it stopped
        pac.latency = 0.0
        _finish(config, errlog, pac, {("S", "1"), ("S", "2"), ("S", "3")})
    finally:
        pac.close()


# --- the protocol itself ----------------------------------------------------------------------


def test_notifier_sends_to_path_and_abstract_sockets_and_nothing_when_unset(
    tmp_path: Path,
) -> None:
    short = Path(f"/tmp/cfdi-n-{os.getpid()}-{time.monotonic_ns()}.sock")
    for address in (str(short), f"@cfdi-n-{os.getpid()}-{time.monotonic_ns()}"):
        lst = Listener(address)
        try:
            n = Notifier({"NOTIFY_SOCKET": address})
            assert n.send("READY=1", "STATUS=listo")
            lst.wait_for("STATUS=listo", 5)
            assert [m for _, m in lst.messages] == ["READY=1", "STATUS=listo"]
            n.close()
        finally:
            lst.close()
            short.unlink(missing_ok=True)
    quiet = Notifier({})
    assert not quiet.enabled and not quiet.send("READY=1")
    assert quiet.watchdog_seconds is None


def test_watchdog_only_for_this_process() -> None:
    env = {"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "3000000"}
    assert Notifier(env).watchdog_seconds == 3.0
    assert Notifier({**env, "WATCHDOG_PID": str(os.getpid())}).watchdog_seconds == 3.0
    assert Notifier({**env, "WATCHDOG_PID": str(os.getpid() + 1)}).watchdog_seconds is None
    assert Heartbeat(Notifier(env)).watchdog_interval == 1.5


def test_extend_timeout_while_starting_and_stopping_not_while_running() -> None:
    sent: list[tuple[str, ...]] = []
    now = [0.0]

    class Recorder(Notifier):
        def send(self, *lines: str) -> bool:
            sent.append(lines)
            return True

    beat = Heartbeat(Recorder({}), extend_seconds=30.0, clock=lambda: now[0])
    beat.tick()  # recovery step
    assert sent[-1] == ("EXTEND_TIMEOUT_USEC=30000000",)
    beat.ready()
    sent.clear()
    for _ in range(20):
        now[0] += 1.0
        beat.tick()
    assert not any(line.startswith("EXTEND") for msg in sent for line in msg)
    beat.stopping()
    beat.tick()
    assert sent[-1] == ("EXTEND_TIMEOUT_USEC=30000000",)


def test_ctrl_break_reaches_the_same_clean_stop(monkeypatch: pytest.MonkeyPatch) -> None:
    """On Windows a service wrapper stops the console process with Ctrl-Break (SIGBREAK): it
    is wired to the same handler as SIGTERM (the Windows service manager cannot run here)."""
    from connector.daemon import stop_signals

    assert signal.SIGTERM in stop_signals() and signal.SIGINT in stop_signals()
    monkeypatch.setattr(signal, "SIGBREAK", 21, raising=False)
    assert 21 in stop_signals()
