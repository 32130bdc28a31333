"""The daemon's commands: run, submit, replay, status, check-config (``connector.cli`` wires them).

Each ``cmd_*`` takes the parsed arguments and returns the process exit code:
0 done, 1 some invoice or file failed, 2 configuration/usage error, 3 still pending.
Human output goes to stdout in Spanish; structured logs (structlog) go to stderr or the log file.

One module per command (``run``, ``submit``, ``replay``, ``status``; ``cancel`` records a
cancellation the command line made), on what they share in ``common`` (logging, loading the
configuration, opening and locking the journal, ``check-config``). This package's names are
those of the single module it was.
"""

from __future__ import annotations

from .cancel import record_cancellation
from .common import (
    JournalLock,
    _load,
    _lock_journal,
    _open_journal,
    cmd_check_config,
    configure_logging,
)
from .replay import cmd_replay, parse_item_key
from .run import cmd_run, run_daemon, run_once, stop_signals
from .status import cmd_status
from .submit import cmd_submit

__all__ = [
    "JournalLock",
    "_load",
    "_lock_journal",
    "_open_journal",
    "cmd_check_config",
    "cmd_replay",
    "cmd_run",
    "cmd_status",
    "cmd_submit",
    "configure_logging",
    "parse_item_key",
    "record_cancellation",
    "run_daemon",
    "run_once",
    "stop_signals",
]
