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

    # --- sandbox-pac (the bundled sandbox PAC server) ---
    def _sandbox_pac(args: argparse.Namespace) -> int:
        from connector.pac.sandbox.cli import run

        return run(args)

    p = sub.add_parser(
        "sandbox-pac", help="PAC de pruebas local (FEL, Finkok, estado SAT) en 127.0.0.1"
    )
    p.add_argument("--port", type=int, default=8777, help="puerto (0 = uno libre)")
    p.add_argument("--db", default="sandbox-pac.db", help="base de datos SQLite del sandbox")
    p.add_argument("--latency", type=float, default=0.0, help="segundos extra por respuesta")
    p.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="SPEC",
        help="falla simulada KIND[:N|:p=0.1][:Op1,Op2][:s=SEG]; KIND: latency, timeout, "
        "http500, drop, garbage, reply_lost (repetible)",
    )
    p.set_defaults(func=_sandbox_pac)


def _add_daemon_commands(sub: argparse._SubParsersAction) -> None:
    """run, submit, replay, status, check-config, demo: the bridge daemon (issue 4)."""

    def lazy(module: str, name: str):  # heavy imports only when the command runs
        def handler(args: argparse.Namespace) -> int:
            import importlib

            return int(getattr(importlib.import_module(module), name)(args) or 0)

        return handler

    def config_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", required=True, help="archivo de configuración TOML")

    p = sub.add_parser("run", help="ejecuta el daemon: vigila las carpetas y timbra")
    config_arg(p)
    p.set_defaults(func=lazy("connector.daemon", "cmd_run"))

    p = sub.add_parser("submit", help="procesa un archivo ahora e imprime el resultado")
    p.add_argument("file", metavar="FILE", help="archivo exportado por el ERP")
    config_arg(p)
    p.add_argument("--source", help="nombre de la fuente (si hay varias)")
    p.add_argument("--timeout", type=float, default=120.0, help="segundos máximos de espera")
    p.set_defaults(func=lazy("connector.daemon", "cmd_submit"))

    p = sub.add_parser("replay", help="regresa archivos fallidos a la bandeja de entrada")
    config_arg(p)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--item", metavar="KEY", help="factura RFC/SERIE/FOLIO (o SERIE/FOLIO)")
    which.add_argument("--file", metavar="NAME", help="nombre del archivo fallido")
    which.add_argument("--all-failed", action="store_true", help="todos los archivos fallidos")
    p.add_argument("--dry-run", action="store_true", help="solo muestra lo que haría")
    p.set_defaults(func=lazy("connector.daemon", "cmd_replay"))

    p = sub.add_parser("status", help="facturas por estado, errores recientes, circuito del PAC")
    config_arg(p)
    p.add_argument("--limit", type=int, default=10, help="errores recientes a mostrar")
    p.add_argument("--json", action="store_true", help="salida JSON")
    p.set_defaults(func=lazy("connector.daemon", "cmd_status"))

    p = sub.add_parser("check-config", help="revisa la configuración y reporta todos los errores")
    config_arg(p)
    p.set_defaults(func=lazy("connector.daemon", "cmd_check_config"))

    p = sub.add_parser("demo", help="demostración completa con un PAC de pruebas local")
    p.add_argument("--dir", default="demo-workspace", help="carpeta de la demostración")
    p.add_argument(
        "--keep-running", action="store_true", help="sigue vigilando la bandeja al terminar"
    )
    p.set_defaults(func=lazy("connector.demo.workspace", "cmd_demo"))


def _add_pdf_commands(sub: argparse._SubParsersAction) -> None:
    """pdf: representación impresa of a stamped CFDI (issue 5)."""
    p = sub.add_parser(
        "pdf",
        help="genera la representación impresa (PDF) de un CFDI 4.0",
        description="Genera la representación impresa (PDF) de un CFDI 4.0 (XML).",
    )
    p.add_argument("xml", metavar="FILE.xml", help="CFDI 4.0 en XML (timbrado o no)")
    p.add_argument("-o", "--output", metavar="OUT.pdf", help="PDF de salida (FILE.pdf)")
    p.add_argument("--logo", metavar="PNG", help="logotipo del emisor (PNG o JPEG)")
    p.add_argument("--color", metavar="#RRGGBB", help="color principal, p. ej. #1F4E79")
    p.add_argument("--cancelado", action="store_true", help="marca de agua CANCELADO")
    p.set_defaults(func=_cmd_pdf)


def _cmd_pdf(args: argparse.Namespace) -> int:
    from connector.cfdi.pdf import pdf_command

    return pdf_command(args.xml, args.output, args.logo, args.color, args.cancelado)


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
