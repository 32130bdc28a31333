"""``cfdi-connector credits | cancel | sat-status``: one PAC call from the command line.

CLI side: it reads the configuration (``connector.config``) and the journal and builds the
drivers from plain settings; ``connector.pac`` itself never imports the configuration.

The PAC comes from the configuration file (``--config``, ``[[pacs]]``; ``--pac NAME`` when there
are several) or from options (``--pac-kind``, ``--pac-url``, ``--remote-url``, ``--cancel-url``,
``--usuario``, ``--cuenta``, and one of ``--password-env``, ``--password-file``,
``--password-keyring``). Passwords are read from the environment or the
configured secret source, never from the command line. Exit codes: 0 done, 1 the PAC/SAT said
no or could not be reached, 2 bad usage or configuration.
"""

from __future__ import annotations

import argparse
import os
import sys
from decimal import Decimal, InvalidOperation
from typing import Any

from connector.pac.base import PacDriver, Timeouts
from connector.pac.errors import PacError


class UsageError(Exception):
    """Bad command-line input or configuration (Spanish message with a code)."""


def _timeouts(seconds: float) -> Timeouts:
    if not seconds > 0 or seconds == float("inf"):
        raise UsageError(
            f"CONN-CLI: --timeout debe ser un número de segundos mayor que 0 ({seconds})."
        )
    return Timeouts(connect=min(5.0, seconds), read=seconds)


def _cli_password(args: argparse.Namespace) -> str:
    """The PAC password of --password-env, --password-file or --password-keyring (the
    configuration's three secret sources, read the same way)."""
    from connector.config import SecretSource, read_secret

    src = SecretSource(
        password_env=args.password_env,
        password_file=args.password_file,
        password_keyring=args.password_keyring,
    )
    try:
        return read_secret(src, "el PAC")
    except Exception as exc:  # SecretError carries a Spanish message
        raise UsageError(f"CONN-CLI-PAC: {getattr(exc, 'message', None) or exc}") from None


def _config(args: argparse.Namespace) -> Any:
    """The configuration of ``--config`` (``UsageError`` with every problem)."""
    from connector.config import ConfigError, load_config

    try:
        return load_config(args.config)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise UsageError(f"CONN-CFG: no se puede leer {args.config}: {exc}") from None


def _pac_config(args: argparse.Namespace, cfg: Any) -> Any:
    """The ``[[pacs]]`` entry of ``--pac`` (or the only one)."""
    if not cfg.pacs:
        raise UsageError("CONN-CFG: la configuración no define ningún [[pacs]].")
    if args.pac:
        try:
            return cfg.pac(args.pac)
        except KeyError:
            raise UsageError(f"CONN-CFG: no hay un PAC llamado {args.pac!r}.") from None
    if len(cfg.pacs) == 1:
        return cfg.pacs[0]
    names = ", ".join(p.name for p in cfg.pacs)
    raise UsageError(f"CONN-CFG: indique --pac (uno de: {names}).")


def _driver(args: argparse.Namespace, **cancel_csd: Any) -> PacDriver:
    """The PAC of the command line; ``cancel_csd`` adds the emisor's CSD (FEL Timbrado)."""
    from connector.pac import create_driver

    if args.config:
        from connector.config import pac_network, read_secret

        pc = _pac_config(args, _config(args))
        try:
            password = read_secret(pc, f"el PAC {pc.name!r}")
            network = pac_network(pc)
        except Exception as exc:  # SecretError carries a Spanish message
            raise UsageError(str(exc)) from None
        extra: dict[str, Any] = {}
        if pc.kind == "fel":
            extra = {"cuenta": pc.cuenta, "remote_url": pc.url_remote, **cancel_csd}
        elif pc.url_cancel:
            extra = {"cancel_url": pc.url_cancel}
        if cancel_csd and pc.kind != "fel":
            raise UsageError(_FINKOK_CANCEL)
        t = pc.timeout_seconds
        return create_driver(
            pc.kind,
            pc.url,
            usuario=pc.usuario,
            password=password,
            timeouts=Timeouts(connect=min(5.0, t), read=t),
            **network,
            **extra,
        )
    given = [args.password_env, args.password_file, args.password_keyring]
    if not (args.pac_url or args.remote_url) or not args.usuario or not any(given):
        raise UsageError(
            "CONN-CLI-PAC: indique --config, o bien --pac-url (o --remote-url), --usuario y "
            "la contraseña del PAC con --password-env, --password-file o --password-keyring."
        )
    password = _cli_password(args)
    timeouts = _timeouts(args.timeout)
    if args.pac_kind == "fel":
        return create_driver(
            "fel",
            args.pac_url,
            usuario=args.usuario,
            password=password,
            cuenta=args.cuenta,
            remote_url=args.remote_url,
            timeouts=timeouts,
            **cancel_csd,
        )
    if cancel_csd:
        raise UsageError(_FINKOK_CANCEL)
    return create_driver(
        "finkok",
        args.pac_url,
        usuario=args.usuario,
        password=password,
        cancel_url=args.cancel_url,
        timeouts=timeouts,
    )


def _run(args: argparse.Namespace, action) -> int:
    try:
        return action(args)
    except UsageError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except PacError as exc:
        print(f"Error {exc.code}: {exc.message}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"CONN-CLI: {exc}", file=sys.stderr)
        return 2


def _credits(args: argparse.Namespace) -> int:
    with _driver(args) as d:
        c = d.credits()
    print(f"Créditos restantes: {c.restantes if c.restantes is not None else 'desconocido'}")
    if c.usados is not None:
        print(f"Créditos usados: {c.usados}")
    for p in c.paquetes:
        print(
            f"  Paquete {p.nombre or '-'}: {p.restantes} de {p.timbres} "
            f"({'vigente' if p.vigente else 'no vigente'}, vence {p.vencimiento or '-'})"
        )
    return 0


def _total(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise UsageError(f"CONN-CLI: el total {text!r} no es un importe.") from None
    if not value.is_finite() or value < 0:
        raise UsageError(f"CONN-CLI: el total {text!r} no es un importe.")
    return value


_FINKOK_CANCEL = (
    "CONN-CLI-PAC: --cer/--key sirven para cancelar por FEL Timbrado; la cancelación por Finkok "
    "desde la línea de comandos no está disponible."
)


def _cancel_csd(args: argparse.Namespace) -> dict[str, Any]:
    """--cer/--key/--key-password-env: the emisor's CSD, checked here (password, FIEL, RFC)
    so a mistake is a clear message before any request; FEL Timbrado signs with it."""
    given = [args.cer, args.key, args.key_password_env]
    if not any(given):
        return {}
    if not all(given):
        raise UsageError("CONN-CLI-CSD: indique juntos --cer, --key y --key-password-env.")
    from connector.cfdi.csd import Csd
    from connector.cfdi.errors import CfdiError

    password = os.environ.get(args.key_password_env)
    if password is None:
        raise UsageError(f"CONN-CLI-CSD: la variable de entorno {args.key_password_env} no existe.")
    try:
        csd = Csd.from_files(args.cer, args.key, password)
        with open(args.key, "rb") as fh:
            key_der = fh.read()
    except CfdiError as exc:
        raise UsageError("; ".join(str(p) for p in exc.problems)) from None
    except OSError as exc:
        raise UsageError(f"CONN-CLI-CSD: no se pudo leer {args.key}: {exc.strerror}") from None
    return {"cancel_rfc": csd.rfc, "cancel_key_der": key_der, "cancel_key_password": password}


def _cancel(args: argparse.Namespace) -> int:
    """Send the request, then ask SAT what it amounts to (cancelled, waiting for the receptor,
    rejected: ``connector.pac.cancellation``); with ``--config`` the journal records it and
    the PDF gets the CANCELADO mark only when SAT says Cancelado."""
    from connector.pac.cancellation import classify

    cfg = _config(args) if args.config else None
    if cfg is not None and _journal_knows(cfg, args.uuid):
        return _cancel_tracked(args, cfg)
    if not args.rfc_receptor or args.total is None:
        raise UsageError(
            f"CONN-CLI: el UUID {args.uuid} no está en el diario"
            f"{'' if cfg is not None else ' (sin --config)'}: indique --rfc-receptor y --total."
        )
    total = _total(args.total)
    if args.motivo not in ("01", "02", "03", "04"):
        raise UsageError("CONN-CLI: el motivo debe ser 01, 02, 03 o 04.")
    csd = _cancel_csd(args)
    with _driver(args, **csd) as d:
        r = d.cancel(args.uuid, args.motivo, args.folio_sustitucion, args.rfc_receptor, total)
        acuse = r.acuse
        if r.accepted and cfg is not None and not acuse:
            try:  # the acuse goes into the journal (and beside the outputs once cancelled)
                acuse = d.acuse_cancelacion(r.uuid)
            except PacError as exc:
                print(f"Acuse de cancelación no disponible aún ({exc.code}).", file=sys.stderr)
    said = ", ".join(x for x in (r.es_cancelable, r.estatus, r.message) if x)
    print(f"UUID {r.uuid}: el PAC aceptó la solicitud (código {r.code or '-'}"
          f"{f'; {said}' if said else ''}).")  # fmt: skip
    sat, why = _sat_after_cancel(args, cfg, csd, r.uuid, total)
    outcome = classify(r, sat, why)
    print(outcome.message)
    rc = 0
    if cfg is not None:  # journal first, then the PDF with the mark and the acuse
        from connector.daemon import record_cancellation

        rc = record_cancellation(
            cfg, r.uuid, args.motivo, args.folio_sustitucion, code=r.code, acuse=acuse,
            outcome=outcome,
        )  # fmt: skip
    if acuse and args.acuse:
        from pathlib import Path

        try:
            Path(args.acuse).write_bytes(acuse)
        except OSError as exc:
            print(
                f"CONN-FILE {args.acuse}: no se pudo guardar el acuse ({exc.strerror}); la "
                "solicitud sí se hizo: pida el acuse de nuevo al PAC.",
                file=sys.stderr,
            )
            return 1
        print(f"Acuse guardado en {args.acuse}")
    return rc


def _journal_knows(cfg: Any, uuid: str) -> bool:
    from connector.journal import journal_exists, open_journal

    if not journal_exists(cfg.daemon):
        return False

    with open_journal(cfg.daemon) as j:
        return j.find_uuid(uuid) is not None


def _cancel_tracked(args: argparse.Namespace, cfg: Any) -> int:
    """A UUID the journal knows: RFCs and total from its stamped XML, the PAC and the
    emisor's account from the configuration; the local checks, the journal first, then the
    PAC and SAT (``connector.cancellations.request``). The daemon follows it to the end."""
    from connector.cancellations import CancelRefused, request
    from connector.journal import open_journal
    from connector.pac.sat_status import SatStatusClient

    csd = _cancel_csd(args)
    sat = SatStatusClient(
        args.sat_url or cfg.daemon.sat_status_url, timeouts=_timeouts(args.timeout)
    )
    try:
        with open_journal(cfg.daemon) as j, _driver(args, **csd) as d:
            req = request(
                cfg, j, d, sat, args.uuid, args.motivo, args.folio_sustitucion, out=sys.stdout
            )
    except CancelRefused as exc:
        for p in exc.problems:
            print(str(p), file=sys.stderr)
        return 2
    finally:
        sat.close()
    if req.acuse and args.acuse:
        from pathlib import Path

        try:
            Path(args.acuse).write_bytes(req.acuse)
        except OSError as exc:
            print(f"CONN-FILE {args.acuse}: no se pudo guardar el acuse ({exc.strerror}).",
                  file=sys.stderr)  # fmt: skip
            return 1
        print(f"Acuse guardado en {args.acuse}")
    return 0


def _sat_after_cancel(
    args: argparse.Namespace, cfg: Any, csd: dict[str, Any], uuid: str, total: Decimal
) -> tuple[Any, str | None]:
    """SAT's status of ``uuid`` right after the request, or (None, why it is missing)."""
    from connector.pac.sat_status import SAT_URL, SatStatusClient

    rfc = _emisor_rfc(args, cfg, csd, uuid)
    if rfc is None:
        return None, (
            "no se consultó al SAT porque no se sabe el RFC del emisor (indique --rfc-emisor "
            "o --config)"
        )
    url = args.sat_url or (cfg.daemon.sat_status_url if cfg is not None else SAT_URL)
    client = SatStatusClient(url, timeouts=_timeouts(args.timeout))
    try:
        st = client.consulta(uuid, rfc, args.rfc_receptor, total)
    except PacError as exc:
        return None, f"el SAT no respondió a la consulta ({exc.code}: {exc.message})"
    finally:
        client.close()
    if not st.found:
        return None, f"el SAT no encontró el CFDI ({st.codigo_estatus or st.estado or '-'})"
    return st, None


def _emisor_rfc(args: argparse.Namespace, cfg: Any, csd: dict[str, Any], uuid: str) -> str | None:
    """The emisor's RFC for SAT's query: given, the CSD's, the journal's or the only emisor."""
    if getattr(args, "rfc_emisor", None):
        return str(args.rfc_emisor).upper()
    if csd.get("cancel_rfc"):
        return str(csd["cancel_rfc"])
    if cfg is None:
        return None
    from connector.journal import journal_exists, open_journal

    if journal_exists(cfg.daemon):
        import sqlite3

        try:
            with open_journal(cfg.daemon) as j:
                e = j.find_uuid(uuid)
        except (sqlite3.Error, OSError):
            e = None
        if e is not None:
            return str(e.emisor_rfc)
    return cfg.emisores[0].rfc if len(cfg.emisores) == 1 else None


def _sat_status(args: argparse.Namespace) -> int:
    from connector.pac.sat_status import SAT_URL, SatStatusClient

    client = SatStatusClient(args.sat_url or SAT_URL, timeouts=_timeouts(args.timeout))
    try:
        st = client.consulta(args.uuid, args.re, args.rr, _total(args.tt))
    finally:
        client.close()
    print(f"Código: {st.codigo_estatus}")
    print(f"Estado: {st.estado}")
    print(f"Cancelable: {st.es_cancelable or '-'}")
    print(f"Estatus de cancelación: {st.estatus_cancelacion or '-'}")
    print(f"Validación EFOS: {st.validacion_efos or '-'}")
    return 0 if st.found else 1


def _new_password(args: argparse.Namespace) -> str:
    """The new password: from ``--new-password-file`` or typed twice without echo."""
    if args.new_password_file:
        try:
            with open(args.new_password_file, encoding="utf-8") as fh:
                return fh.read().rstrip("\r\n")
        except OSError as exc:
            raise UsageError(
                f"CONN-CLI: no se pudo leer {args.new_password_file}: {exc.strerror}."
            ) from None
    import getpass

    first = getpass.getpass("Contraseña nueva del PAC: ")
    if getpass.getpass("Repítala: ") != first:
        raise UsageError("CONN-CLI: las dos contraseñas no coinciden; no se cambió nada.")
    return first


def _change_password(args: argparse.Namespace) -> int:
    """The PAC's password (FEL "Cambiar Contraseña"), then where the configuration reads it:
    its password_file is rewritten, its keyring entry set; a password_env is the user's to
    change (the process environment cannot be)."""
    if not args.config:
        raise UsageError("CONN-CLI: change-password necesita --config.")
    pc = _pac_config(args, _config(args))
    new = _new_password(args)
    if len(new) < 8:
        raise UsageError("CONN-CLI: la contraseña nueva debe tener al menos 8 caracteres.")
    with _driver(args) as d:
        d.change_password(new)
    print(f"El PAC {pc.name!r} aceptó la contraseña nueva de {pc.usuario}.")
    if pc.password_file:
        from pathlib import Path

        from connector.sinks import atomic_write

        try:
            path = atomic_write(Path(pc.password_file), (new + "\n").encode("utf-8"))
            path.chmod(0o600)
        except OSError as exc:
            print(f"CONN-FILE {pc.password_file}: no se pudo guardar la contraseña nueva "
                  f"({exc.strerror}); el PAC ya la tiene: escríbala usted en ese archivo antes "
                  "de volver a iniciar el daemon.", file=sys.stderr)  # fmt: skip
            return 1
        print(f"Contraseña guardada en {pc.password_file}; reinicie el daemon para usarla.")
    elif pc.password_keyring:
        try:
            import keyring

            service, _, user = pc.password_keyring.partition("/")
            keyring.set_password(service, user, new)
        except Exception as exc:  # no keyring backend, access denied
            print(f"CONN-CFG-SECRETO: no se pudo guardar en el llavero {pc.password_keyring} "
                  f"({exc}); el PAC ya la tiene: guárdela usted antes de volver a iniciar el "
                  "daemon.", file=sys.stderr)  # fmt: skip
            return 1
        print(f"Contraseña guardada en el llavero {pc.password_keyring}.")
    elif pc.password_credential:  # systemd hands the service a copy: the source is root's
        print(f"Escriba la contraseña nueva en el archivo de la credencial "
              f"{pc.password_credential!r} (el LoadCredential= de la unidad) y reinicie el "
              "servicio.")  # fmt: skip
    else:
        print(f"Cambie la variable de entorno {pc.password_env} del servicio a la contraseña "
              "nueva antes de volver a iniciar el daemon.")  # fmt: skip
    return 0


def change_password_cmd(args: argparse.Namespace) -> int:
    return _run(args, _change_password)


def credits_cmd(args: argparse.Namespace) -> int:
    return _run(args, _credits)


def cancel_cmd(args: argparse.Namespace) -> int:
    return _run(args, _cancel)


def sat_status_cmd(args: argparse.Namespace) -> int:
    return _run(args, _sat_status)
