"""``cfdi-connector demo``: the folder demo (``workspace``) or, with ``--tables``, the table
demo (``tables``)."""

from __future__ import annotations

import argparse
from pathlib import Path


def cmd_demo(args: argparse.Namespace) -> int:
    try:
        if args.tables:
            from connector.demo.tables import run_table_demo

            return run_table_demo(Path(args.dir), dsn=args.dsn)
        from connector.demo.workspace import run_demo

        return run_demo(Path(args.dir), keep_running=args.keep_running)
    except OSError as exc:
        print(f"CONN-DEMO No se puede preparar la demostración en {args.dir}: {exc}.")
        return 2
