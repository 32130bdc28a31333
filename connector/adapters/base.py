"""What every adapter shares: parsed records, the invoice handed to the daemon, the registry.

An *adapter* turns the bytes of one ERP export file into records (``ParsedRecord``: a small
tree of typed records, one tree per invoice); a *mapping* (``connector.mappers.Mapping``)
turns each tree into a ``Comprobante``. ``load_invoices`` is the façade the daemon calls: it
never raises for bad data, one bad invoice never stops the others.

Adapters are found by name through the entry-point group ``connector.adapters`` (see
``pyproject.toml``), so a third party can ship its own::

    [project.entry-points."connector.adapters"]
    miformato = "mi_paquete.adapter:MiAdapter"
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from connector.cfdi.errors import Problem
from connector.cfdi.model import Comprobante

from .records import ParsedRecord, decode_text, problem  # noqa: F401 - the adapters' face

if TYPE_CHECKING:
    from connector.mappers import Mapping

ENTRY_POINT_GROUP = "connector.adapters"


@dataclass
class InvoiceInput:
    """One invoice of an input file, as the daemon receives it."""

    index: int  # 0-based position of the invoice inside the file
    location: str  # "ventas_0415.dat:12" (file and first line of the invoice)
    comprobante: Comprobante | None  # mapped; derived amounts possibly None (run amounts.complete)
    xml: bytes | None  # XML drops: the raw CFDI XML bytes
    problems: list[Problem]  # non-empty => this invoice is invalid
    # model path ("Receptor.Rfc", "Conceptos[1].Cantidad") -> "file:line:Field" it came from
    locator: Callable[[str], str] | None = field(default=None, repr=False, compare=False)
    # serie+folio as read, for the errors of an invoice that could not be mapped ("" unknown)
    label: str = ""

    @property
    def ok(self) -> bool:
        return not any(p.severity == "error" for p in self.problems)

    def locate(self, p: Problem) -> Problem:
        """``p`` with a location: its own, else where its model path's value came from in the
        source file (for SAT-rule problems on a mapped invoice), else the invoice's location."""
        if p.location:
            return p
        where = self.locator(p.path) if self.locator is not None and p.path else self.location
        return Problem(p.code, p.path, p.message, where, p.severity)


class Adapter(ABC):
    """Parses the bytes of one file. Options come from the source's configuration."""

    name: str = ""

    def __init__(self, **options: Any) -> None:
        self.options = options

    @abstractmethod
    def parse(self, data: bytes, filename: str) -> Iterator[ParsedRecord]:
        """One ``ParsedRecord`` per invoice; parse problems ride on ``record.problems``."""

    def default_mapping(self) -> Mapping | None:
        """The mapping used when the source configures none (``None``: a mapping is required)."""
        return None

    def load(self, data: bytes, filename: str, mapping: Mapping | None) -> Iterator[InvoiceInput]:
        return self._map_records(self.parse(data, filename), mapping)

    # header file + lines file (a source with ``pair``): adapters that read pairs override
    # ``parse_pair`` (and ``check_pair``)
    def check_pair(self) -> list[str]:
        """Why this adapter (with its options) cannot read a pair; empty when it can."""
        if type(self).parse_pair is Adapter.parse_pair:
            return [f"el adaptador '{self.name}' no lee pares de archivos (encabezado y líneas)"]
        return []

    def parse_pair(
        self,
        header: bytes,
        header_name: str,
        lines: bytes,
        lines_name: str,
        extras: dict[str, tuple[str, bytes]] | None = None,
    ) -> Iterator[ParsedRecord]:
        """One ``ParsedRecord`` tree per invoice of a header file and its lines file (and the
        other files of the set, ``extras``: role → (name, bytes), for the adapters that read
        them)."""
        raise NotImplementedError(self.check_pair()[0])

    def load_pair(
        self,
        header: bytes,
        header_name: str,
        lines: bytes,
        lines_name: str,
        mapping: Mapping | None,
        extras: dict[str, tuple[str, bytes]] | None = None,
    ) -> Iterator[InvoiceInput]:
        if extras:
            parsed = self.parse_pair(header, header_name, lines, lines_name, extras)
        else:
            parsed = self.parse_pair(header, header_name, lines, lines_name)
        return self._map_records(parsed, mapping)

    def _map_records(
        self, records: Iterator[ParsedRecord], mapping: Mapping | None
    ) -> Iterator[InvoiceInput]:
        mapping = mapping if mapping is not None else self.default_mapping()
        for index, record in enumerate(records):
            problems = list(record.problems)
            comprobante = None
            if mapping is None:
                problems.append(
                    problem(
                        "CONN-MAP-NONE",
                        f"La fuente usa el adaptador '{self.name}', que necesita un archivo de "
                        "mapeo (mapping) y no hay ninguno configurado.",
                        record.location,
                    )
                )
            elif record.type != _ORPHAN:
                comprobante, map_problems, locator, label = mapping.map_labeled(record)
                problems.extend(map_problems)
                yield InvoiceInput(
                    index, record.location, comprobante, None, problems, locator, label
                )
                continue
            if not problems:  # never an entry that is neither an invoice nor an error
                problems.append(
                    problem("CONN-DATA", "Estas líneas no forman una factura.", record.location)
                )
            yield InvoiceInput(index, record.location, comprobante, None, problems)


_ORPHAN = "__ORPHAN__"  # lines that belong to no invoice (before the first one), reported alone


def orphan_record(filename: str, line: int) -> ParsedRecord:
    return ParsedRecord(_ORPHAN, {}, line, filename)


def available_adapters() -> list[str]:
    return sorted({ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)})


class AdapterNotFound(LookupError):
    def __init__(self, name: str, available: list[str]) -> None:
        self.code = "CONN-ADAPTER"
        self.name = name
        self.available = available
        super().__init__(
            f"CONN-ADAPTER: no existe el adaptador '{name}'. Disponibles: "
            f"{', '.join(available) or '(ninguno)'}"
        )


_classes: dict[str, type[Adapter]] = {}  # names already resolved (scanning entry points is slow)


def get_adapter(name: str, **options: Any) -> Adapter:
    """The adapter registered under ``name`` in the entry-point group ``connector.adapters``."""
    cls = _classes.get(name)
    if cls is None:
        matches = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
        if not matches:
            raise AdapterNotFound(name, available_adapters())
        cls = _classes[name] = matches[0].load()
    return cls(**options)


def check_adapter(name: str, options: dict[str, Any] | None = None) -> list[Problem]:
    """Every problem of a source's adapter configuration (for ``check-config``): unknown
    adapter, unknown options, a layout file that does not load (each layout error)."""
    try:
        get_adapter(name, **(options or {}))
    except AdapterNotFound as exc:
        return [Problem("CONN-ADAPTER", "adapter", str(exc).split(": ", 1)[1])]
    except Exception as exc:
        inner = getattr(exc, "problems", None)
        if inner:
            return list(inner)
        return [
            Problem(
                "CONN-ADAPTER",
                "options",
                f"El adaptador '{name}' no acepta su configuración: {exc}",
            )
        ]
    return []


def load_invoices(
    data: bytes,
    filename: str,
    *,
    adapter: str,
    options: dict[str, Any] | None = None,
    mapping: Mapping | None,
) -> Iterator[InvoiceInput]:
    """The daemon's façade: the invoices of one file. Never raises for bad data.

    A file that cannot be read at all yields one ``InvoiceInput`` with its problems; one bad
    invoice does not stop the others. ``comprobante`` may still lack derived amounts: the
    caller runs ``amounts.complete``.
    """
    return _run(adapter, options, filename, lambda impl: impl.load(data, filename, mapping))


@dataclass
class FilePart:
    """One file of a pair: its name (as the ERP wrote it) and bytes (``None``: missing)."""

    name: str
    data: bytes | None


def load_pair(
    header: FilePart,
    lines: FilePart,
    *,
    adapter: str,
    options: dict[str, Any] | None = None,
    mapping: Mapping | None,
    extras: dict[str, FilePart] | None = None,
) -> Iterator[InvoiceInput]:
    """The façade for a header file + lines file pair, with the other files of its set
    (``extras``: role → file, e.g. the complements' files; same contract as
    ``load_invoices``).

    A missing file (``data is None``: the folder source gave up waiting for it) is one
    ``CONN-PAR-INCOMPLETO`` problem at a file that is there; the set is never read incomplete.
    """
    files = [header, lines, *(extras or {}).values()]
    missing = [f for f in files if f.data is None]
    if missing:
        present = next((f for f in files if f.data is not None), header)
        if len(missing) > 1:
            what = f"Faltan los archivos {', '.join(f.name for f in missing)}: el conjunto"
        elif missing[0] is lines:
            what = f"Falta el archivo de líneas {lines.name}: el par"
        elif missing[0] is header:
            what = f"Falta el archivo de encabezado {header.name}: el par"
        else:
            what = f"Falta el archivo {missing[0].name} (complemento): el conjunto"
        return iter(
            [
                InvoiceInput(
                    0,
                    present.name,
                    None,
                    None,
                    [
                        problem(
                            "CONN-PAR-INCOMPLETO",
                            f"{what} no llegó completo a tiempo y no se procesa.",
                            present.name,
                        )
                    ],
                )
            ]
        )
    h, ln = header.data, lines.data
    assert h is not None and ln is not None
    more = {role: (f.name, f.data) for role, f in (extras or {}).items() if f.data is not None}
    return _run(
        adapter,
        options,
        header.name,
        lambda impl: impl.load_pair(h, header.name, ln, lines.name, mapping, more),
    )


def _run(
    adapter: str,
    options: dict[str, Any] | None,
    filename: str,
    load: Callable[[Adapter], Iterator[InvoiceInput]],
) -> Iterator[InvoiceInput]:
    try:
        impl = get_adapter(adapter, **(options or {}))
    except AdapterNotFound as exc:
        yield InvoiceInput(
            0, filename, None, None, [problem("CONN-ADAPTER", str(exc).split(": ", 1)[1], filename)]
        )
        return
    except Exception as exc:  # a bad option must not crash the daemon
        yield InvoiceInput(
            0,
            filename,
            None,
            None,
            [
                problem(
                    "CONN-ADAPTER",
                    f"El adaptador '{adapter}' no acepta su configuración: {exc}",
                    filename,
                )
            ],
        )
        return
    produced = 0
    try:
        for item in load(impl):
            produced += 1
            yield item
    except Exception as exc:  # defensive: a bug in a third-party adapter stays a problem
        yield InvoiceInput(
            produced,
            filename,
            None,
            None,
            [
                problem(
                    "CONN-ADAPTER",
                    f"Error interno del adaptador '{adapter}' al leer el archivo: "
                    f"{type(exc).__name__}: {exc}",
                    filename,
                )
            ],
        )
        return
    if produced == 0:
        yield InvoiceInput(
            0,
            filename,
            None,
            None,
            [problem("CONN-EMPTY", "El archivo no contiene ninguna factura.", filename)],
        )
