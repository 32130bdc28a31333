"""``replay``: failed files and invoices put back to be processed again (no journal lock: it
works beside a running daemon)."""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path
from typing import Any

from connector.config import Config

from .common import _load, _open_journal
from .submit import _marker_back, _pair_spec, _set_members

# --- replay -----------------------------------------------------------------------------------


def parse_item_key(text: str, cfg: Config) -> tuple[str, str, str] | None:
    """``RFC/SERIE/FOLIO`` or ``SERIE/FOLIO`` (with a single emisor)."""
    parts = text.split("/")
    if len(parts) == 3:
        return (parts[0].upper(), parts[1], parts[2])
    if len(parts) == 2 and len(cfg.emisores) == 1:
        return (cfg.emisores[0].rfc, parts[0], parts[1])
    return None


def cmd_replay(args: argparse.Namespace) -> int:
    """No journal lock: support staff replay while the service runs (replay only resets
    journal rows and moves files back into the inbox; the daemon takes them like any other
    file)."""
    from connector.adapters.folder import free_pair_name
    from connector.journal import FileState, JournalError, State
    from connector.sinks import free_name, move_file

    cfg = _load(Path(args.config))
    if cfg is None:
        return 2
    dry = args.dry_run
    j = _open_journal(cfg)
    if j is None:
        return 2
    try:
        files = []
        reset_ids: set[int] | None = None  # None: every non-delivered invoice of the files
        if args.item:
            key = parse_item_key(args.item, cfg)
            e = j.get(key) if key else None
            if e is None:
                print(f"CONN-REPLAY No hay ninguna factura {args.item} en el diario.")
                return 2
            if e.state in (State.STAMPED, State.DELIVERED):
                print(f"La factura {e.label} ya está timbrada (UUID {e.uuid}); no se reprocesa.")
                return 0
            if e.uuid:  # stamped, but the PAC's reply failed our checks (CONN-PAC-XML)
                print(
                    f"CONN-REPLAY La factura {e.label} ya tiene el UUID {e.uuid} en el SAT; "
                    "reprocesarla la timbraría dos veces. Revise el XML del PAC en la carpeta "
                    "de errores con su proveedor."
                )
                return 1
            reset_ids = {e.id}
            files = [f for f in j.files_of_invoice(e.id) if f.state is FileState.FAILED]
            files = files[-1:]
            if not dry:
                j.reset(e.id)
            print(f"{'[simulación] ' if dry else ''}Factura {e.label} reiniciada ({e.state}).")
            with contextlib.suppress(KeyError):
                if cfg.source(e.source).kind == "table" and not dry:
                    from connector.adapters.table.odbc import TableError
                    from connector.adapters.table.rows import reset_row

                    try:
                        print(f"Tabla: {reset_row(cfg.source(e.source), e.location)}.")
                    except TableError as exc:
                        print(f"{exc.code} {exc.message}")
                        return 1
        elif args.file:
            failed = j.files(FileState.FAILED)
            # the file as it is in failed/ (exact name); else the ERP's name, if only one
            files = [f for f in failed if Path(f.final_path or "").name == args.file]
            others = [f for f in failed if f.name == args.file and f not in files and f.final_path]
            if files and others:
                print(
                    f"Se reprocesa solo {args.file}; otros archivos fallidos con el mismo nombre "
                    f"original quedan en la carpeta de errores: "
                    f"{', '.join(Path(f.final_path or '').name for f in others)}."
                )
            if not files:
                files = [f for f in failed if f.name == args.file]
                present = [f for f in files if Path(f.final_path or "").is_file()]
                if len(present) > 1:
                    print(
                        f"CONN-REPLAY-AMBIGUO [replay --file {args.file}] Hay {len(present)} "
                        f"archivos fallidos que se llamaban {args.file}; indique con --file el "
                        "nombre exacto en la carpeta de errores del que quiere reprocesar:"
                    )
                    for f in present:
                        print(f"  {Path(f.final_path or '').name}  ({f.final_path})")
                    return 2
                files = present or files[-1:]
            if not files:
                print(f"CONN-REPLAY No hay ningún archivo fallido llamado {args.file}.")
                return 2
        else:
            files = j.files(FileState.FAILED)
        for rec in files:
            final = Path(rec.final_path or "")
            if not final.is_file():
                print(f"CONN-REPLAY {rec.name}: ya no está en {final}; se omite.")
                continue
            try:
                src = cfg.source(rec.source)
            except KeyError:
                print(f"CONN-REPLAY {rec.name}: la fuente {rec.source!r} ya no existe; se omite.")
                continue
            inbox = src.inbox
            assert inbox is not None  # a file came from a folder source: it has an inbox
            pair = _pair_spec(src)
            dest = (
                free_pair_name(inbox, rec.name, pair)
                if pair is not None and pair.role(rec.name)
                else free_name(inbox, rec.name)
            )
            for it in j.file_items(rec.id):
                if it.invoice_id is None or reset_ids is not None:
                    continue  # --item: only that invoice was reset
                e = j.get_id(it.invoice_id)
                if e.state in (State.STAMPED, State.DELIVERED):
                    continue
                if not dry:
                    try:
                        j.reset(e.id)
                    except JournalError:
                        continue
                print(f"{'[simulación] ' if dry else ''}  factura {e.label} reiniciada")
            members = _set_members(src, final, rec.name)
            if not dry:
                move_file(final, dest)
                _marker_back(src, final, dest)
                j.file_replayed(rec.id, str(dest))
                _retire_reports(src, final)
            print(f"{'[simulación] ' if dry else ''}{final} → {dest}")
            for role, member in members:  # the other files of the set go back with it,
                assert pair is not None  # under the names that match the first one's
                pdest = inbox / (pair.named(dest.name, role) or member.name)
                if not dry:
                    move_file(member, pdest)
                    _marker_back(src, member, pdest)
                print(f"{'[simulación] ' if dry else ''}{member} → {pdest}")
        if not files:
            print("No hay archivos que reprocesar.")
    finally:
        j.close()
    return 0


def _retire_reports(src: Any, final: Path) -> None:
    """The error files of a replayed file go to ``replayed/`` beside them (in failed/ and in
    the errors folder): what is left there is what still fails; a new failure writes anew."""
    from connector.sinks import error_file_base, free_name, move_file

    for folder in dict.fromkeys(f for f in (final.parent, src.output.errors) if f is not None):
        for suffix in (".error.txt", ".error.json"):
            report = folder / f"{error_file_base(final.name)}{suffix}"
            if report.is_file():
                moved = move_file(report, free_name(folder / "replayed", report.name))
                print(f"  {report} → {moved}")
