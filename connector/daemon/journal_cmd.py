"""``journal migrate --from sqlite:PATH --to postgresql://…``: one instance's SQLite journal
moved into the shared PostgreSQL journal (issue 16), checked before it reports success.

The work is ``connector.journal.migrate``; here: the command line's addresses, the password
(``--password-env/-file/-keyring/-credential``, read like the configuration's, or none: the
address itself, ``PGPASSWORD`` or ``~/.pgpass``), the SQLite journal's lock held throughout
(a daemon running on it refuses the migration, and no daemon starts on it meanwhile) and the
report. Exit codes: 0 migrated (or already migrated), 1 refused or failed its check (nothing
migrated), 2 it could not start (address, password, lock, source, server).
"""

from __future__ import annotations

import argparse
from datetime import datetime
from pathlib import Path

from connector.config import SecretError, SecretSource, read_secret
from connector.daemon.common import JournalLock
from connector.journal.migrate import MigrationError, MigrationReport, migrate_journal

# the table names as a person reads them in the report
_TABLES_ES = {
    "invoices": "facturas",
    "events": "eventos",
    "files": "archivos",
    "file_items": "partidas de archivos",
    "file_reports": "reportes de archivos",
    "cancellations": "cancelaciones",
    "cancel_requests": "solicitudes de cancelación",
    "sat_checks": "consultas al SAT",
    "failure_notes": "avisos de fallas",
    "claim_names": "nombres cortos",
}


def _source_path(text: str) -> Path | None:
    if text.startswith("sqlite:"):
        text = text.removeprefix("sqlite:")
        text = text.removeprefix("//") if text.startswith("///") else text
    elif "://" in text:
        return None
    return Path(text) if text else None


def _password(args: argparse.Namespace) -> str | None:
    src = SecretSource(
        password_env=args.password_env,
        password_file=args.password_file,
        password_keyring=args.password_keyring,
        password_credential=args.password_credential,
    )
    if not any((args.password_env, args.password_file, args.password_keyring,
                args.password_credential)):  # fmt: skip
        return None
    return read_secret(src, "el diario de destino")


def cmd_journal_migrate(args: argparse.Namespace) -> int:
    from connector.journal.postgres.base import display

    path = _source_path(args.source)
    if path is None:
        print(
            f"CONN-MIGRAR-ORIGEN [--from] {args.source!r} no es un diario SQLite: use "
            "--from sqlite:RUTA (la ruta del archivo del diario)."
        )
        return 2
    if not args.target.startswith(("postgresql://", "postgres://")):
        print(
            f"CONN-MIGRAR-DESTINO [--to] {display(args.target)} no es una dirección de "
            "PostgreSQL: use --to postgresql://usuario@servidor:5432/base."
        )
        return 2
    try:
        password = _password(args)
    except SecretError as exc:
        print(f"CONN-MIGRAR-SECRETO [--password] {exc.message}")
        return 2
    if not path.is_file():  # before the lock: its file would be created beside
        print(f"CONN-MIGRAR-ORIGEN [{path}] No existe el diario SQLite {path}.")
        return 2
    lock = JournalLock(path)
    try:
        holder = lock.acquire()
    except OSError as exc:
        print(f"CONN-MIGRAR-EN-USO [{lock.path}] No se puede tomar el candado del diario: {exc}.")
        return 2
    if holder is not None:
        print(
            f"CONN-MIGRAR-EN-USO [{lock.path}] El diario {path} está en uso por otro proceso "
            f"del conector (pid {holder}): detenga el daemon antes de migrar su diario."
        )
        return 2
    try:
        report = migrate_journal(path, args.target, password=password, dry_run=args.dry_run)
    except MigrationError as exc:
        for p in exc.problems:
            print(str(p))
        starting = {"CONN-MIGRAR-ORIGEN", "CONN-MIGRAR-DESTINO"}
        return 2 if all(p.code in starting for p in exc.problems) else 1
    finally:
        lock.release()
    _show(report)
    return 0


def _show(r: MigrationReport) -> None:
    print(f"Diario SQLite {r.source} → {r.target}")
    if r.already is not None:
        when = datetime.fromtimestamp(r.already).strftime("%Y-%m-%d %H:%M:%S")
        print(
            f"Ya migrado el {when}: este diario, sin cambios desde entonces, ya está en "
            "PostgreSQL; no se copió nada otra vez."
        )
        print(
            f"Comprobado de nuevo: {r.hashes_checked} XML timbrado(s) siguen en el destino con "
            "el mismo UUID y SHA-256."
        )
        return
    for table, c in r.tables.items():
        extra = f" ({c.present} ya estaban)" if c.present else ""
        print(f"  {_TABLES_ES.get(table, table)} ({table}): {c.copied} de {c.source}{extra}")
    print(
        f"Comprobado: las filas de cada tabla y el SHA-256 de {r.hashes_checked} documento(s) "
        f"guardados (XML timbrados de {r.stamped} factura(s), acuses, datos sellados), leídos "
        "de PostgreSQL, coinciden con el diario SQLite."
    )
    if r.dry_run:
        print("Prueba (--dry-run): todo se deshizo; no se migró nada.")
        return
    flying = (
        f"; {r.in_flight} en curso: se reanudan por su referencia al arrancar sobre PostgreSQL"
        if r.in_flight
        else ""
    )
    print(f"Migración completa: {r.tables['invoices'].copied} factura(s){flying}.")
    print(
        f'Siguiente paso: [daemon] journal = "{r.target.split(" ")[0]}" en la configuración. '
        "El archivo SQLite queda como estaba, de respaldo: no vuelva a arrancar un daemon sobre él."
    )
