"""The command line: ``cfdi-connector <command>``.

Over 500 lines for a reason: the argument parser of every command, one function per area; the
commands' work lives in their own modules.

Each area registers its own sub-commands in one function below, so a reader finds a command by
its area. Commands print what a person needs (Spanish messages with codes) and exit non-zero on
failure.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn


def _add_cfdi_commands(sub: argparse._SubParsersAction) -> None:
    """validate, seal, verify: the CFDI core on one file (issue 2)."""

    def out(line: str) -> None:
        print(line, flush=True)

    def show(problems: list, where: str) -> None:
        for p in problems:
            out(f"{where}: {p}")

    def read_input(path: str) -> bytes | None:
        try:
            with open(path, "rb") as fh:
                return fh.read()
        except OSError as exc:
            out(f"CONN-FILE {path}: no se pudo leer el archivo: {exc.strerror}")
            return None

    def load_json(data: bytes, path: str):  # -> (Comprobante | None, problems)
        import json

        from connector.cfdi.errors import Problem
        from connector.cfdi.model import load_invoice

        try:
            raw = json.loads(data.decode("utf-8-sig"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            msg = f"El archivo no es un JSON válido: {exc}"
            return None, [Problem("CONN-JSON", "", msg)]
        if not isinstance(raw, dict):
            return None, [Problem("CONN-JSON", "", "El JSON debe ser un objeto (la factura).")]
        return load_invoice(raw)

    def is_json(path: str, data: bytes) -> bool:
        return path.lower().endswith(".json") or data.lstrip()[:1] in (b"{", b"[")

    def now_local() -> str:
        from datetime import datetime

        from connector.cfdi.csd import MEXICO_TZ

        return datetime.now(MEXICO_TZ).strftime("%Y-%m-%dT%H:%M:%S")

    # --- validate ---------------------------------------------------------------------------
    def _validate(args: argparse.Namespace) -> int:
        from connector.cfdi import amounts, rules
        from connector.cfdi.errors import CfdiError
        from connector.cfdi.xmlio import build_tree, from_element, parse_xml_bytes, validate_xsd

        data = read_input(args.file)
        if data is None:
            return 2
        problems: list = []
        try:
            if is_json(args.file, data):
                c, problems = load_json(data, args.file)
                if c is not None:
                    given, c = c, amounts.complete(c)
                    # the seal is added later: placeholders so the XSD checks everything else
                    placeholders = {"NoCertificado": "0" * 20, "Certificado": "", "Sello": ""}
                    root = build_tree(c.model_copy(update=placeholders))
                    problems = rules.without_follow_ons(
                        validate_xsd(root) + rules.validate(c), given
                    )
            else:
                root = parse_xml_bytes(data)
                problems = validate_xsd(root)
                try:
                    problems += rules.validate(from_element(root))
                except CfdiError as exc:
                    problems += exc.problems
        except CfdiError as exc:
            problems = list(exc.problems)
        show(problems, args.file)
        errors = [p for p in problems if p.severity == "error"]
        if errors:
            out(f"{args.file}: {len(errors)} error(es); el comprobante NO es válido.")
            return 1
        out(f"{args.file}: válido (XSD del SAT y reglas CFDI 4.0).")
        return 0

    p = sub.add_parser("validate", help="valida un CFDI (XML) o una factura (JSON): XSD y reglas")
    p.add_argument("file", metavar="FILE", help="archivo .xml o .json")
    p.set_defaults(func=_validate)

    # --- seal -------------------------------------------------------------------------------
    def _password(args: argparse.Namespace) -> str | None:
        import os

        if args.password_env:
            value = os.environ.get(args.password_env)
            if value is None:
                out(f"CONN-CSD-PASSWORD: la variable de entorno {args.password_env} no existe.")
            return value
        try:
            with open(args.password_file, encoding="utf-8") as fh:
                return fh.read().rstrip("\r\n")
        except OSError as exc:
            out(f"CONN-CSD-PASSWORD: no se pudo leer {args.password_file}: {exc.strerror}")
            return None

    def _seal(args: argparse.Namespace) -> int:
        import os
        import tempfile

        from connector.cfdi import amounts, rules
        from connector.cfdi.csd import Csd
        from connector.cfdi.errors import CfdiError
        from connector.cfdi.seal import seal_invoice, seal_xml
        from connector.cfdi.xmlio import from_element, parse_xml_bytes, serialize, validate_xsd

        data = read_input(args.input)
        if data is None:
            return 2
        password = _password(args)
        if password is None:
            return 2
        try:
            csd = Csd.from_files(args.cer, args.key, password)
            del password
            if is_json(args.input, data):
                c, problems = load_json(data, args.input)
                if c is None:
                    show(problems, args.input)
                    return 1
                if args.now:
                    c = c.model_copy(update={"Fecha": now_local()})
                completed = amounts.complete(c)
                errors = [p for p in rules.validate(completed, given=c) if p.severity == "error"]
                if errors:
                    show(errors, args.input)
                    out(f"{args.input}: la factura no cumple las reglas del SAT; no se selló.")
                    return 1
                sealed = seal_invoice(c, csd)
            else:
                root = parse_xml_bytes(data)
                if args.now:
                    root.set("Fecha", now_local())
                    data = serialize(root)
                errors = [p for p in rules.validate(from_element(root)) if p.severity == "error"]
                if errors:
                    show(errors, args.input)
                    out(f"{args.input}: el XML no cumple las reglas del SAT; no se selló.")
                    return 1
                sealed = seal_xml(data, csd)
            problems = [p for p in validate_xsd(sealed) if p.severity == "error"]
            if problems:
                show(problems, args.input)
                out(f"{args.input}: el XML sellado no cumple el XSD del SAT; no se escribió.")
                return 1
        except CfdiError as exc:
            show(exc.problems, args.input)
            return 1
        target = os.path.abspath(args.output)
        tmp = ""
        try:
            fd, tmp = tempfile.mkstemp(dir=os.path.dirname(target), prefix=".sellando-")
            with os.fdopen(fd, "wb") as fh:
                fh.write(sealed)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except OSError as exc:
            if tmp and os.path.exists(tmp):
                os.unlink(tmp)
            out(f"CONN-FILE {args.output}: no se pudo escribir: {exc.strerror}")
            return 2
        out(f"{args.output}: sellado con el CSD {csd.no_certificado} ({csd.rfc}).")
        return 0

    p = sub.add_parser("seal", help="sella una factura (JSON) o un XML sin sellar con el CSD")
    p.add_argument("input", metavar="INPUT", help="factura .json o CFDI .xml sin sellar")
    p.add_argument("--cer", required=True, help="certificado del CSD (.cer)")
    p.add_argument("--key", required=True, help="llave privada del CSD (.key)")
    pw = p.add_mutually_exclusive_group(required=True)
    pw.add_argument("--password-env", metavar="VAR", help="variable de entorno con la contraseña")
    pw.add_argument("--password-file", metavar="F", help="archivo con la contraseña")
    p.add_argument("-o", "--output", required=True, metavar="OUT.xml", help="XML sellado")
    p.add_argument("--now", action="store_true", help="usa la hora local actual como Fecha")
    p.set_defaults(func=_seal)

    # --- verify -----------------------------------------------------------------------------
    def _verify(args: argparse.Namespace) -> int:
        from connector.cfdi.seal import verify_seal, verify_tfd
        from connector.cfdi.xmlio import parse_xml_bytes

        data = read_input(args.file)
        if data is None:
            return 2
        from connector.cfdi.errors import XmlError

        try:
            root = parse_xml_bytes(data)
        except XmlError as exc:
            show(exc.problems, args.file)
            return 1
        problems = verify_seal(root)
        stamped = root.find(
            "{http://www.sat.gob.mx/cfd/4}Complemento/"
            "{http://www.sat.gob.mx/TimbreFiscalDigital}TimbreFiscalDigital"
        )
        if args.pac_cert:
            cert = read_input(args.pac_cert)
            if cert is None:
                return 2
            problems += verify_tfd(root, cert)
        show(problems, args.file)
        if problems:
            out(f"{args.file}: {len(problems)} problema(s); el sello NO es válido.")
            return 1
        out(f"{args.file}: el sello del emisor es válido.")
        if args.pac_cert:
            out(f"{args.file}: el timbre fiscal (SelloSAT) es válido.")
        elif stamped is not None:
            out(
                f"{args.file}: timbre no verificado (indique --pac-cert con el certificado del PAC)."
            )
        return 0

    p = sub.add_parser("verify", help="verifica el sello de un CFDI (y su timbre con --pac-cert)")
    p.add_argument("file", metavar="FILE", help="CFDI .xml")
    p.add_argument("--pac-cert", metavar="CER", help="certificado del PAC/SAT (.cer) del timbre")
    p.set_defaults(func=_verify)


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

    # --- credits, cancel, sat-status (PAC drivers; handlers in connector.pac_cli) ---
    def _pac_cmd(name: str):
        def run(args: argparse.Namespace) -> int:
            from connector import pac_cli

            return getattr(pac_cli, name)(args)

        return run

    def _pac_options(p: argparse.ArgumentParser) -> None:
        g = p.add_argument_group("PAC")
        g.add_argument("--config", help="archivo de configuración (TOML) con [[pacs]]")
        g.add_argument("--pac", help="nombre del PAC en la configuración")
        g.add_argument("--pac-kind", choices=("fel", "finkok"), default="fel", help="tipo de PAC")
        g.add_argument("--pac-url", help="servicio de timbrado (sin --config)")
        g.add_argument("--remote-url", help="FEL Conexión Remota")
        g.add_argument("--cancel-url", help="Finkok: servicio de cancelación")
        g.add_argument("--usuario", help="usuario del PAC")
        g.add_argument("--cuenta", help="FEL: cuenta de Conexión Remota")
        pw = g.add_mutually_exclusive_group()
        pw.add_argument("--password-env", metavar="VAR", help="variable con la contraseña del PAC")
        pw.add_argument("--password-file", metavar="F", help="archivo con la contraseña del PAC")
        pw.add_argument(
            "--password-keyring", metavar="SERVICIO/USUARIO", help="contraseña en el llavero"
        )
        g.add_argument("--timeout", type=float, default=30.0, help="segundos por llamada")

    p = sub.add_parser("credits", help="créditos (timbres) disponibles en el PAC")
    _pac_options(p)
    p.set_defaults(func=_pac_cmd("credits_cmd"))

    p = sub.add_parser("change-password", help="cambia la contraseña de la cuenta del PAC")
    p.add_argument(
        "--new-password-file", metavar="F", help="archivo con la contraseña nueva (sin él, se pide)"
    )
    _pac_options(p)
    p.set_defaults(func=_pac_cmd("change_password_cmd"))

    p = sub.add_parser("cancel", help="cancela un CFDI timbrado (motivo 01-04)")
    p.add_argument("uuid", metavar="UUID")
    p.add_argument("--motivo", required=True, help="01, 02, 03 o 04")
    p.add_argument("--folio-sustitucion", metavar="UUID", help="UUID que sustituye (motivo 01)")
    p.add_argument(
        "--rfc-receptor", help="RFC del receptor (solo para un UUID que el diario no conoce)"
    )
    p.add_argument("--total", help="total del CFDI (solo para un UUID que el diario no conoce)")
    p.add_argument("--acuse", metavar="FILE", help="guarda aquí el acuse de cancelación")
    p.add_argument(
        "--rfc-emisor", help="RFC del emisor, para consultar el SAT (si no lo da --config/--cer)"
    )
    p.add_argument(
        "--sat-url", help="servicio de consulta del SAT (por omisión, el de la configuración)"
    )
    g = p.add_argument_group("CSD del emisor (FEL Timbrado, sin Conexión Remota)")
    g.add_argument("--cer", help="certificado del CSD (.cer)")
    g.add_argument("--key", help="llave privada del CSD (.key)")
    g.add_argument("--key-password-env", metavar="VAR", help="variable con la contraseña del CSD")
    _pac_options(p)
    p.set_defaults(func=_pac_cmd("cancel_cmd"))

    p = sub.add_parser("sat-status", help="estado de un CFDI en el SAT (vigente/cancelado)")
    p.add_argument("uuid", metavar="UUID")
    p.add_argument("--re", required=True, help="RFC del emisor")
    p.add_argument("--rr", required=True, help="RFC del receptor")
    p.add_argument("--tt", required=True, help="total del CFDI")
    p.add_argument("--sat-url", help="servicio de consulta (por omisión, el del SAT)")
    p.add_argument("--timeout", type=float, default=30.0, help="segundos por llamada")
    p.set_defaults(func=_pac_cmd("sat_status_cmd"))


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
    p.add_argument(
        "--http",
        metavar="HOST:PUERTO",
        help="sirve /healthz, /readyz y /metrics (Prometheus) en esa dirección, p. ej. "
        "127.0.0.1:9464 (o [daemon] http en la configuración)",
    )
    p.add_argument(
        "--instance",
        metavar="NOMBRE",
        help="nombre de esta instancia en lo que reclama (por omisión: el equipo y la "
        "configuración); para varias instancias con una misma configuración en un equipo",
    )
    p.add_argument(
        "--once",
        action="store_true",
        help="procesa todo lo que espera en cada fuente (archivos y filas) y termina: "
        "0 si todo se entregó, 1 si algo falló (para tareas programadas)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=3600.0,
        help="con --once: segundos máximos (lo que quede se reanuda en la siguiente ejecución)",
    )
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

    p = sub.add_parser(
        "report", help="CFDI emitidos en un periodo (csv, xlsx, json) o PPD por cobrar"
    )
    config_arg(p)
    p.add_argument("--from", dest="date_from", metavar="AAAA-MM-DD", help="primer día")
    p.add_argument("--to", dest="date_to", metavar="AAAA-MM-DD", help="último día (incluido)")
    p.add_argument("--emisor", metavar="RFC", help="solo los CFDI de este emisor")
    p.add_argument("--format", choices=("csv", "xlsx", "json"), help="por omisión, el de -o o csv")
    p.add_argument("-o", "--output", metavar="FILE", help="archivo de salida (sin él, la pantalla)")
    p.add_argument(
        "--pendientes-pago",
        action="store_true",
        help="facturas PPD con saldo insoluto según los complementos de pago timbrados",
    )
    p.set_defaults(func=lazy("connector.reports", "cmd_report"))

    p = sub.add_parser("find", help="lo que el diario sabe de una factura; --redeliver")
    config_arg(p)
    p.add_argument("uuid", metavar="UUID", nargs="?", help="folio fiscal")
    p.add_argument("--rfc", metavar="RFC", help="RFC del emisor o del receptor")
    p.add_argument("--folio", metavar="SERIE-FOLIO", help="serie y folio, p. ej. A-15")
    p.add_argument("--from", dest="date_from", metavar="AAAA-MM-DD", help="recibidas desde")
    p.add_argument("--to", dest="date_to", metavar="AAAA-MM-DD", help="recibidas hasta")
    p.add_argument("--json", action="store_true", help="salida JSON")
    p.add_argument("--redeliver", action="store_true", help="escribe de nuevo su XML, PDF y acuses")
    p.set_defaults(func=lazy("connector.find", "cmd_find"))

    p = sub.add_parser("journal", help="el diario: migrate (de SQLite al diario compartido)")
    jsub = p.add_subparsers(dest="action", required=True, metavar="ACCIÓN")
    p = jsub.add_parser(
        "migrate",
        help="pasa el historial de un diario SQLite al diario compartido en PostgreSQL, "
        "comprobado (filas por tabla y SHA-256 de cada XML timbrado) antes de confirmarlo",
    )
    p.add_argument("--from", dest="source", required=True, metavar="sqlite:RUTA",
                   help="el diario SQLite de la instancia (su daemon detenido)")  # fmt: skip
    p.add_argument("--to", dest="target", required=True, metavar="postgresql://…",
                   help="el diario compartido en PostgreSQL")  # fmt: skip
    pw = p.add_mutually_exclusive_group()
    pw.add_argument(
        "--password-env", metavar="VAR", help="variable con la contraseña de PostgreSQL"
    )
    pw.add_argument("--password-file", metavar="F", help="archivo con la contraseña")
    pw.add_argument("--password-keyring", metavar="SERVICIO/USUARIO", help="en el llavero")
    pw.add_argument("--password-credential", metavar="NOMBRE", help="credencial de systemd")
    p.add_argument("--dry-run", action="store_true",
                   help="copia y comprueba dentro de la transacción, y la deshace")  # fmt: skip
    p.set_defaults(func=lazy("connector.daemon.journal_cmd", "cmd_journal_migrate"))

    p = sub.add_parser("check-config", help="revisa la configuración y reporta todos los errores")
    config_arg(p)
    p.set_defaults(func=lazy("connector.daemon", "cmd_check_config"))

    p = sub.add_parser(
        "service", help="instala, quita, inicia, detiene el servicio (systemd o WinSW) o su estado"
    )
    ssub = p.add_subparsers(dest="action", required=True, metavar="ACCIÓN")
    p = ssub.add_parser(
        "install", help="escribe la unidad de systemd (o el XML de WinSW) con las rutas"
    )
    config_arg(p)
    p.add_argument("--print", action="store_true", help="solo muestra lo que escribiría")
    p.add_argument("--platform", choices=("linux", "windows"), help="por omisión, este sistema")
    p.add_argument("--user", default="cfdi", help="usuario del servicio en Linux (cfdi)")
    p.add_argument("--unit-dir", default="/etc/systemd/system", help=argparse.SUPPRESS)
    p.add_argument("--exe", help="ruta de cfdi-connector (por omisión, la instalada)")
    p.add_argument("--winsw", metavar="EXE", help="Windows: WinSW, renombrado para el servicio")
    p.add_argument("--root", metavar="DIR", help="Linux: instala en el sistema montado en DIR")
    p.set_defaults(func=lazy("connector.service.install", "cmd_service"))
    for action, what in (
        ("remove", "quita el servicio (lo detiene; conserva usuario, carpetas y diario)"),
        ("start", "inicia el servicio"),
        ("stop", "detiene el servicio (parada limpia)"),
        ("status", "estado del servicio según systemd o WinSW"),
    ):
        p = ssub.add_parser(action, help=what)
        p.add_argument("--platform", choices=("linux", "windows"), help="por omisión, este sistema")
        p.add_argument("--winsw", metavar="EXE", help="Windows: WinSW con el que se instaló")
        p.add_argument("--unit-dir", default="/etc/systemd/system", help=argparse.SUPPRESS)
        if action == "remove":
            p.add_argument("--root", metavar="DIR", help="Linux: quita del sistema montado en DIR")
        p.set_defaults(func=lazy("connector.service.control", "cmd_control"))

    p = sub.add_parser("demo", help="demostración completa con un PAC de pruebas local")
    p.add_argument("--dir", default="demo-workspace", help="carpeta de la demostración")
    p.add_argument(
        "--keep-running", action="store_true", help="sigue vigilando la bandeja al terminar"
    )
    p.add_argument(
        "--tables",
        action="store_true",
        help="la demostración con tablas (cfdi_factura/cfdi_concepto) en lugar de carpetas",
    )
    p.add_argument(
        "--dsn",
        metavar="CONEXION",
        help="con --tables: cadena de conexión ODBC (por omisión un archivo SQLite en la demo)",
    )
    p.set_defaults(func=lazy("connector.demo.command", "cmd_demo"))


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
    p.add_argument(
        "--config",
        metavar="connector.toml",
        help="marca CANCELADO si el diario de esta configuración sabe que el UUID se canceló",
    )
    p.set_defaults(func=_cmd_pdf)


def _add_table_commands(sub: argparse._SubParsersAction) -> None:
    """tables-ddl: the default interface tables of a table source (issue 11)."""

    def _tables_ddl(args: argparse.Namespace) -> int:
        from connector.adapters.table.complements import complement_ddl
        from connector.adapters.table.dialects import ddl_script

        if args.complemento:
            print(complement_ddl(args.dialect, dict.fromkeys(args.complemento)), end="")
        else:
            print(ddl_script(args.dialect, results=args.resultados), end="")
        return 0

    p = sub.add_parser("tables-ddl", help="imprime el CREATE TABLE de cfdi_factura y cfdi_concepto")
    p.add_argument(
        "--dialect",
        required=True,
        choices=["postgresql", "mariadb", "mysql", "sqlite", "mssql", "firebird"],
        help="motor de la base de datos",
    )
    p.add_argument(
        "--resultados",
        action="store_true",
        help="la tabla de resultados cfdi_resultado (cuando las tablas del ERP no se pueden "
        "modificar) en lugar de cfdi_factura y cfdi_concepto",
    )
    p.add_argument(
        "--complemento",
        action="append",
        choices=["comercio_exterior", "carta_porte"],
        help="las tablas hijas de ese complemento (cfdi_cce…, cfdi_carta_porte…) en lugar de "
        "cfdi_factura y cfdi_concepto; se puede repetir",
    )
    p.set_defaults(func=_tables_ddl)


def _cmd_pdf(args: argparse.Namespace) -> int:
    from connector.cfdi.pdf import pdf_command

    cancelled = args.cancelado
    if args.config and not cancelled:
        known = _cancelled_in_journal(args.config, args.xml)
        if known is None:
            return 2
        cancelled = known
    return pdf_command(args.xml, args.output, args.logo, args.color, cancelled)


def _cancelled_in_journal(config: str, xml_path: str) -> bool | None:
    """Whether the journal of ``config`` recorded the cancellation of the XML's UUID (None:
    a coded message was printed). A file that cannot be read is left to ``pdf_command``."""
    from pathlib import Path

    from connector.daemon import _load, _open_journal
    from connector.journal import journal_exists
    from connector.pac.base import tfd_of

    cfg = _load(Path(config))
    if cfg is None:
        return None
    try:
        uuid = (tfd_of(Path(xml_path).read_bytes()) or {}).get("UUID")
    except Exception:  # not readable or not a CFDI: pdf_command says why
        return False
    if not uuid or not journal_exists(cfg.daemon):
        return False
    j = _open_journal(cfg)
    if j is None:
        return None
    try:
        return j.cancellation(str(uuid)) is not None
    finally:
        j.close()


# argparse speaks English; a person fixing a command line reads Spanish with a code.
_USAGE_ES = (
    (r"the following arguments are required: (.*)", r"faltan argumentos obligatorios: \1"),
    (r"one of the arguments (.*) is required", r"falta uno de estos argumentos: \1"),
    (r"unrecognized arguments: (.*)", r"argumentos desconocidos: \1"),
    (r"argument (\S+): not allowed with argument (.*)", r"\1 no se puede usar junto con \2"),
    (r"argument (\S+): expected one argument", r"\1 necesita un valor"),
    (r"argument (\S+): invalid choice: (.*) \(choose from (.*)\)", r"\1: \2 no es válido; use \3"),
    (r"argument (\S+): invalid (\w+) value: (.*)", r"\1: \3 no es un valor válido (\2)"),
    (r"argument (\S+): (.*)", r"\1: \2"),
)


class _Formatter(argparse.HelpFormatter):
    def add_usage(self, usage, actions, groups, prefix=None):  # type: ignore[no-untyped-def]
        super().add_usage(usage, actions, groups, "uso: " if prefix is None else prefix)


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser in Spanish: help headings, and usage errors coded ``CONN-CLI-USO``
    (exit 2)."""

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)
        self._positionals.title = "argumentos"
        self._optionals.title = "opciones"
        for action in self._actions:
            if isinstance(action, argparse._HelpAction):
                action.help = "muestra esta ayuda y termina"

    def error(self, message: str) -> NoReturn:
        import re

        for pattern, spanish in _USAGE_ES:
            if re.fullmatch(pattern, message):
                message = re.sub(pattern, spanish, message)
                break
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: CONN-CLI-USO {message}\n(use --help para ver las opciones)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="cfdi-connector",
        description="Conector ERP → CFDI 4.0: valida, sella, timbra y entrega facturas.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    _add_cfdi_commands(sub)
    _add_pac_commands(sub)
    _add_daemon_commands(sub)
    _add_pdf_commands(sub)
    _add_table_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
