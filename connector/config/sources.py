"""The sources in the configuration: what a source connects or maps with (``table_spec``,
``source_mapping``, ``source_defaults``, ``known_adapters``) and the checks of each
``[[sources]]`` entry (folders, adapter and its options, mapping, defaults, tables).
"""

from __future__ import annotations

import functools
import os
import threading
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any

from connector.cfdi.errors import Problem

from .loading import _label, _Reporter
from .models import Config, SourceConfig, TableConfig
from .secrets import SecretError, read_secret


def known_adapters() -> set[str]:
    """Adapter names registered through the entry-point group ``connector.adapters``."""
    names: set[str] = set()
    try:
        from importlib.metadata import entry_points

        names.update(ep.name for ep in entry_points(group="connector.adapters"))
    except Exception:  # pragma: no cover - metadata problems
        pass
    try:
        from connector.adapters import registry  # type: ignore[attr-defined]

        names.update(registry.names())
    except Exception:
        pass
    try:
        import connector.adapters as adapters_pkg

        for attr in ("ADAPTERS", "adapter_names", "available_adapters"):
            obj = getattr(adapters_pkg, attr, None)
            if callable(obj):
                names.update(obj())
            elif obj:
                names.update(obj)
    except Exception:
        pass
    return names


def _check_adapters(cfg: Config, rep: _Reporter) -> None:
    adapters = known_adapters()
    for i, s in enumerate(cfg.sources):
        if s.adapter is None:
            continue
        kp = f"sources[{rep.ix('sources', i)}].adapter"
        if not adapters:
            rep.add(
                "CONN-CFG-ADAPTADOR",
                kp,
                f"No hay adaptadores instalados; {s.adapter!r} no se puede usar.",
            )
        elif s.adapter not in adapters:
            rep.add(
                "CONN-CFG-ADAPTADOR",
                kp,
                f"El adaptador {s.adapter!r} no existe; los disponibles son: "
                f"{', '.join(sorted(adapters))}.",
            )


def _check_source_files(cfg: Config, rep: _Reporter) -> None:
    for i, s in enumerate(cfg.sources):
        kp = f"sources[{rep.ix('sources', i)}]"
        name = _label(s, "sources", i)
        o = s.output
        folders: list[tuple[str, Path | None]] = [
            ("inbox", s.inbox),
            ("archive", s.archive),
            ("failed", s.failed),
        ]
        if o is not None:
            folders += [
                ("output.xml", o.xml),
                ("output.pdf", o.pdf),
                ("output.acuse", o.acuse),
                ("output.errors", o.errors),
            ]
        for key, folder in folders:
            if folder is not None and not folder.is_dir():
                rep.add(
                    "CONN-CFG-CARPETA",
                    f"{kp}.{key}",
                    f"La carpeta {folder} ({key}) de la fuente {name} no existe.",
                )
        if s.work is not None and not s.work.is_dir():
            ancestor = s.work.parent
            while not ancestor.exists() and ancestor != ancestor.parent:
                ancestor = ancestor.parent
            if not ancestor.is_dir() or not os.access(ancestor, os.W_OK):
                rep.add(
                    "CONN-CFG-CARPETA",
                    f"{kp}.work",
                    f"No se puede crear la carpeta de trabajo {s.work} (sin permiso en "
                    f"{ancestor}).",
                )
        if s.mapping is not None:
            _check_mapping(s.mapping, f"{kp}.mapping", rep)
        if s.defaults and s.adapter is not None:
            _check_source_defaults(s, kp, rep)
        if s.adapter is not None:
            _check_adapter_options(s, f"{kp}.options", rep)
        layout = s.options.get("layout")
        if isinstance(layout, str) and not Path(layout).is_file():
            rep.add(
                "CONN-CFG-ARCHIVO",
                f"{kp}.options.layout",
                f"El archivo de layout {layout} no existe.",
            )


SAFE_STABLE_SECONDS = 5.0  # below this, an ERP's pause between two chunks may look like the end


def _check_slow_writers(cfg: Config, rep: _Reporter) -> None:
    """A warning for a source that takes a file after a short quiet time with no done-marker:
    an ERP that pauses longer while writing would get its export taken half-written (the
    daemon reads it again when it sees it change, but cannot see every writer)."""
    for i, s in enumerate(cfg.sources):
        if s.__dict__.get("kind") == "table":
            continue
        stable = s.__dict__.get("stable_seconds")
        if s.__dict__.get("done_marker") or stable is None or stable >= SAFE_STABLE_SECONDS:
            continue
        rep.warn(
            "CONN-CFG-ESTABLE",
            f"sources[{rep.ix('sources', i)}].stable_seconds",
            f"La fuente {_label(s, 'sources', i)} toma un archivo cuando lleva {stable:g} "
            f"segundos sin cambiar y no tiene done_marker: si el ERP escribe la exportación "
            "por partes con pausas más largas, el archivo se toma antes de terminar. Configure "
            'done_marker (p. ej. ".done", que el ERP crea al terminar) o un stable_seconds de '
            f"al menos {SAFE_STABLE_SECONDS:g} segundos, mayor que la pausa más larga del ERP.",
        )


def _check_sets_and_lease(cfg: Config, rep: _Reporter) -> None:
    """A warning for a source of file sets (header + lines…) on a shared journal whose
    ``orphan_seconds`` is not longer than the instance lease: a connector that stops between
    claiming a set's first file and its others leaves those in the inbox, and another would
    take them as an incomplete set (``CONN-PAR-INCOMPLETO``) before the lease lets it take
    the first one over and join them."""
    lease = cfg.daemon.instance_lease_seconds
    if cfg.daemon.journal_url is None:
        return
    for i, s in enumerate(cfg.sources):
        pair = s.__dict__.get("pair")
        if pair is None or pair.orphan_seconds > 2 * lease:
            continue
        rep.warn(
            "CONN-CFG-HUERFANO",
            f"sources[{rep.ix('sources', i)}].pair.orphan_seconds",
            f"La fuente {_label(s, 'sources', i)} procesa como incompleto un conjunto de "
            f"archivos al que le falta uno después de {pair.orphan_seconds:g} segundos, y el "
            f"diario es compartido con un relevo a los {lease:g} segundos: si una instancia se "
            "detiene a mitad de tomar un conjunto, otra tomaría el resto como incompleto antes "
            "de poder juntarlo. Use un orphan_seconds mayor que el doble de "
            "instance_lease_seconds (el predeterminado, 3600, lo es).",
        )


def table_spec(s: SourceConfig) -> Any:
    """The ``ConnSpec`` a table source connects with, its password read from its secret
    (``SecretError`` when it cannot be). The result holds a secret: never log it."""
    from connector.adapters.table.odbc import ConnSpec

    t = s.table
    assert t is not None
    given = t.password_env or t.password_file or t.password_keyring or t.password_credential
    password = read_secret(t, f"la base de datos de la fuente {s.name!r}") if given else None
    return ConnSpec(
        t.connection,
        password=password,
        dialect=t.dialect,
        timeout_seconds=t.timeout_seconds,
        encoding=t.encoding,
    )


TABLE_EMISOR_FIELDS = {
    "nombre": "Emisor.Nombre",
    "regimen_fiscal": "Emisor.RegimenFiscal",
    "lugar_expedicion": "LugarExpedicion",
}


def _check_table_sources(cfg: Config, rep: _Reporter) -> None:
    """The default interface tables hold no emisor: a table source without its own mapping
    takes name, régimen and LugarExpedicion from its emisor's configuration. A table source
    has no folders of its own: no cancellation inbox."""
    for i, s in enumerate(cfg.sources):
        if s.__dict__.get("kind") != "table":
            continue
        if s.__dict__.get("cancel_inbox") is not None:
            rep.add(
                "CONN-CFG-VALOR",
                f"sources[{rep.ix('sources', i)}].cancel_inbox",
                f"La fuente de tablas {_label(s, 'sources', i)} no tiene carpetas: sus "
                "cancelaciones se piden con `cfdi-connector cancel --config` (o en la carpeta "
                "cancel_inbox de una fuente de carpetas del mismo emisor).",
            )
        if s.__dict__.get("mapping") is not None:
            continue
        for j, e in enumerate(cfg.emisores):
            if e.__dict__.get("rfc") != (s.__dict__.get("emisor") or "").upper():
                continue
            for key, cfdi in TABLE_EMISOR_FIELDS.items():
                if not e.__dict__.get(key):
                    rep.add(
                        "CONN-CFG-EMISOR",
                        f"emisores[{rep.ix('emisores', j)}].{key}",
                        f"La fuente de tablas {_label(s, 'sources', i)} toma {cfdi} de la "
                        f"configuración del emisor {e.rfc} (las tablas no lo traen): agregue "
                        f"{key} a su [[emisores]].",
                    )


def _check_table_databases(cfg: Config, rep: _Reporter) -> None:
    """Each table source's database, connected to (never written): every problem at once."""
    from connector.adapters.table.check import check_table_source

    for i, s in enumerate(cfg.sources):
        t = s.__dict__.get("table")
        if s.__dict__.get("kind") != "table" or not isinstance(t, TableConfig):
            continue
        kp = f"sources[{rep.ix('sources', i)}].table"
        try:
            spec = table_spec(s)
        except SecretError as exc:
            rep.add(exc.code, kp, exc.message)
            continue
        work = functools.partial(
            check_table_source,
            spec,
            factura_table=t.factura,
            concepto_table=t.concepto,
            source=s.name,
            results_table=t.resultados,
            factura_query=t.factura_query,
            concepto_query=t.concepto_query,
            cancel_table=t.cancelaciones,
            complements=tuple(t.complementos),
        )
        # on a thread of its own, waited for a while: a database that does not answer (the
        # network cut silently) never holds the caller (a reload holds the daemon's loop)
        done: Future[list[Problem]] = Future()

        def run(w: Any = work, f: Future[list[Problem]] = done) -> None:
            try:
                f.set_result(w())
            except BaseException as exc:
                f.set_exception(exc)

        threading.Thread(target=run, name=f"check-{s.name}", daemon=True).start()
        limit = 2 * spec.timeout_seconds + 5.0  # connecting, then a statement, and a margin
        try:
            found = done.result(timeout=limit)
        except FutureTimeout:
            rep.add("CONN-BD-SIN-RESPUESTA", kp, f"La base de datos de la fuente {s.name!r} no "
                    f"respondió en {limit:g} s (¿red cortada o servidor detenido?).")  # fmt: skip
            continue
        for p in found:
            at = f" [{p.location}]" if p.location and p.location != s.name else ""
            rep.add(p.code, kp, f"{p.message}{at}")


def _check_adapter_options(s: SourceConfig, kp: str, rep: _Reporter) -> None:
    """The adapter accepts the source's options (an unknown option, a bad delimiter…)."""
    try:
        from connector.adapters.base import AdapterNotFound, get_adapter
    except ImportError:
        return
    assert s.adapter is not None  # called for a source with an adapter only
    try:
        adapter = get_adapter(s.adapter, **s.options)
    except AdapterNotFound:
        return  # reported with the adapter's name
    except Exception as exc:
        problems = getattr(exc, "problems", None)
        msg = "; ".join(p.message for p in problems) if problems else str(exc)
        rep.add(
            "CONN-CFG-ADAPTADOR",
            kp,
            f"El adaptador {s.adapter!r} de la fuente {s.name or kp} no acepta sus opciones: {msg}",
        )
        return
    if s.pair is None:
        return
    pair_kp = kp.rsplit(".", 1)[0] + ".pair"
    try:
        s.pair.spec()
    except ValueError as exc:
        rep.add("CONN-CFG-VALOR", pair_kp, f"La opción {pair_kp}: {exc}.")
    check_pair = getattr(adapter, "check_pair", None)
    for reason in check_pair() if check_pair is not None else ["no lee pares de archivos"]:
        rep.add(
            "CONN-CFG-ADAPTADOR",
            pair_kp,
            f"La fuente {s.name!r} lee pares (encabezado y líneas), pero: {reason}.",
        )


def source_mapping(s: SourceConfig) -> Any:
    """The ``Mapping`` a source uses: its mapping file, else (only when it has ``defaults``)
    its adapter's default mapping, with the source's ``defaults`` applied; None to let the
    adapter use its own default mapping. ``MappingError`` (or the adapter's error) when they
    cannot be used."""
    from connector.mappers import Mapping, MappingError

    mapping = Mapping.from_toml(s.mapping) if s.mapping is not None else None
    pair = getattr(s, "pair", None)
    files = pair.files() if pair is not None else {}
    if s.mapping is not None and files:  # the complements' sections of the DAT default mapping
        from connector.adapters.csv_complements import complement_mapping

        mapping = complement_mapping(s.mapping, files)
    if not s.defaults:
        return mapping
    if mapping is None and s.kind == "table":
        from connector.adapters.table.source import default_mapping

        mapping = default_mapping()
    if mapping is None:
        from connector.adapters.base import get_adapter

        # a folder source always names its adapter (a table source has its default mapping)
        assert s.adapter is not None
        mapping = get_adapter(s.adapter, **s.options).default_mapping()
    if mapping is None:
        raise MappingError(
            [
                Problem(
                    "CONN-MAPPING",
                    "defaults",
                    f"El adaptador {s.adapter!r} no usa un mapeo: defaults no se puede aplicar.",
                )
            ]
        )
    return mapping.with_defaults(s.defaults)


def source_defaults(s: SourceConfig) -> dict[str, str]:
    """Every value a source's fields take when the ERP leaves them empty (its ``defaults`` and
    its mapping file's), for check-config to show; {} when the mapping cannot be loaded."""
    try:
        mapping = source_mapping(s)
    except Exception:  # reported by check_config
        return {}
    return mapping.defaults() if mapping is not None else {}


def _check_source_defaults(s: SourceConfig, kp: str, rep: _Reporter) -> None:
    if s.mapping is not None and not s.mapping.is_file():
        return  # reported with the mapping
    try:
        source_mapping(s)
    except Exception as exc:
        problems = getattr(exc, "problems", None) or []
        for p in problems:
            if p.path.startswith("defaults"):  # the mapping file's own: _check_mapping
                rep.add("CONN-CFG-VALOR", f"{kp}.{p.path}", p.message)


def _check_mapping(mapping: Path, kp: str, rep: _Reporter) -> None:
    if not mapping.is_file():
        rep.add("CONN-CFG-MAPEO", kp, f"El archivo de mapeo {mapping} no existe.")
        return
    try:
        from connector.mappers import Mapping
    except ImportError:
        rep.add("CONN-CFG-MAPEO", kp, "El módulo de mapeos no está disponible.")
        return
    try:
        Mapping.from_toml(mapping)
    except Exception as exc:
        problems = getattr(exc, "problems", None)
        if problems:
            for p in problems:
                where = p.location or f"{mapping.name}: {p.path}"
                rep.add(p.code, kp, f"Mapeo {where}: {p.message}")
        else:
            rep.add("CONN-CFG-MAPEO", kp, f"El mapeo {mapping} no se puede cargar: {exc}.")
