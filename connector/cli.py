"""The command line: ``cfdi-connector <command>``.

Each area registers its own sub-commands in one function below, so a reader finds a command by
its area. Commands print what a person needs (Spanish messages with codes) and exit non-zero on
failure.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _add_cfdi_commands(sub: argparse._SubParsersAction) -> None:
    """validate, seal, verify: the CFDI core on one file (issue 2)."""


def _add_pac_commands(sub: argparse._SubParsersAction) -> None:
    """sandbox-pac, cancel, sat-status, credits: talking to a PAC or SAT (issue 3)."""


def _add_daemon_commands(sub: argparse._SubParsersAction) -> None:
    """run, submit, replay, status, check-config, demo: the bridge daemon (issue 4)."""


def _add_pdf_commands(sub: argparse._SubParsersAction) -> None:
    """pdf: representación impresa of a stamped CFDI (issue 5)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cfdi-connector",
        description="Conector ERP → CFDI 4.0: valida, sella, timbra y entrega facturas.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    _add_cfdi_commands(sub)
    _add_pac_commands(sub)
    _add_daemon_commands(sub)
    _add_pdf_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
