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

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from connector.cfdi.errors import Problem
from connector.cfdi.model import Comprobante

if TYPE_CHECKING:
    from connector.mappers import Mapping

ENTRY_POINT_GROUP = "connector.adapters"


@dataclass
class ParsedRecord:
    """One record of an export file, with the records nested under it.

    ``type`` is the record type (``COMPROBANTE``, ``CONCEPTO``… for DAT; ``FACTURA`` and
    ``LINEA`` for CSV); ``fields`` its named values as text; ``line`` the 1-based line of the
    file it comes from. The root record of an invoice also carries the parse ``problems`` of
    that invoice (each with ``location`` "file:line").
    """

    type: str
    fields: dict[str, str]
    line: int
    filename: str
    children: list[ParsedRecord] = field(default_factory=list)
    parent: ParsedRecord | None = field(default=None, repr=False, compare=False)
    problems: list[Problem] = field(default_factory=list)

    @property
    def location(self) -> str:
        return f"{self.filename}:{self.line}"

    def add(self, child: ParsedRecord) -> ParsedRecord:
        child.parent = self
        self.children.append(child)
        return child

    def children_of_type(self, type_: str) -> list[ParsedRecord]:
        return [c for c in self.children if c.type == type_]

    def find(self, type_: str) -> ParsedRecord | None:
        """First record of ``type_`` in this tree (depth first, this record included)."""
        if self.type == type_:
            return self
        for child in self.children:
            found = child.find(type_)
            if found is not None:
                return found
        return None


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


def problem(code: str, message: str, location: str, path: str = "") -> Problem:
    return Problem(code=code, path=path, message=message, location=location)


# --- decoding -----------------------------------------------------------------------------------


_UTF_FAMILY = ("auto", "utf-8", "utf8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be")
_BOM_UTF8 = b"\xef\xbb\xbf"
_BOMS_UTF16 = ((b"\xff\xfe", "UTF-16 LE", "utf-16-le"), (b"\xfe\xff", "UTF-16 BE", "utf-16-be"))
# UTF-8 text read as cp1252/latin-1: "ñ" (C3 B1) becomes "Ã±", "“" (E2 80 9C) becomes "â€œ"
_MOJIBAKE = re.compile(
    "[\u00c2\u00c3][\u0080-\u00bf\u20ac\u201a-\u2122\u0152-\u0192\u02c6\u02dc]|\u00e2\u20ac."
)


def _codec(encoding: str) -> str:
    return encoding.lower().replace("_", "-")


def _utf16(data: bytes) -> tuple[str, str, int] | None:
    """(name, codec, BOM length) when ``data`` is UTF-16: by its BOM, or by the zero bytes
    ASCII text has in every other position."""
    for bom, name, codec in _BOMS_UTF16:
        if data.startswith(bom):
            return name, codec, len(bom)
    sample = data[:4096]
    if len(sample) >= 8 and sample.count(0) * 3 > len(sample):
        even, odd = sample[0::2].count(0), sample[1::2].count(0)
        if odd > 3 * even:
            return "UTF-16 LE", "utf-16-le", 0
        if even > 3 * odd:
            return "UTF-16 BE", "utf-16-be", 0
    return None


def _line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def _encoding_problem(
    code: str, filename: str, line: int, found: str, encoding: str, detail: str
) -> Problem:
    return problem(
        code,
        f"El archivo está en {found}, no en {encoding} como dice la configuración de la fuente "
        f'(encoding = "{encoding}"){detail}. Se rechaza entero para no timbrar texto mal '
        f'leído: configure encoding = "auto" (o el de la exportación) o exporte en {encoding}.',
        f"{filename}:{line}",
    )


def decode_text(
    data: bytes, filename: str, encoding: str = "auto"
) -> tuple[str | None, Problem | None]:
    """Bytes → text with the source's charset, or the problem that says why not.

    ``encoding="auto"`` reads UTF-8 (with or without BOM), UTF-16 (by its BOM or its zero
    bytes) and falls back to cp1252 (what Windows ERPs write). A file whose bytes are another
    encoding than the configured one is refused with a code naming it: ``CONN-DECODE-UTF8``
    (UTF-8 through a cp1252/latin-1 source would be stamped as "CaÃ±Ã³n"), ``CONN-DECODE-UTF16``;
    text that was already mangled that way before it was written is ``CONN-DECODE-MOJIBAKE``;
    bytes the codec cannot decode, ``CONN-DECODE``.
    """
    enc = _codec(encoding)
    utf16 = _utf16(data)
    if utf16 is not None:
        name, codec, bom = utf16
        if enc == "auto" or enc.startswith("utf-16"):
            encoding, data = codec, data[bom:]
        else:
            how = " (empieza con su marca BOM)" if bom else " (lleva un byte cero en cada letra)"
            return None, _encoding_problem("CONN-DECODE-UTF16", filename, 1, name, encoding, how)
    elif data.startswith(_BOM_UTF8):
        if enc not in _UTF_FAMILY:
            return None, _encoding_problem(
                "CONN-DECODE-UTF8", filename, 1, "UTF-8", encoding, " (empieza con su marca BOM)"
            )
        data, encoding = data[3:], "utf-8"
    elif enc not in _UTF_FAMILY and not data.isascii():
        try:
            as_utf8 = data.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            pos = next(i for i, ch in enumerate(as_utf8) if ord(ch) > 127)
            word = _word_at(as_utf8, pos, pos + 1)
            try:
                misread = word.encode("utf-8").decode(encoding, errors="replace")
            except LookupError:
                misread = ""
            shown = f": '{word}' se leería como '{misread}'" if misread else ""
            return None, _encoding_problem(
                "CONN-DECODE-UTF8", filename, _line_of(as_utf8, pos), "UTF-8", encoding, shown
            )
    try:
        if enc == "auto" and utf16 is None:
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                text = data.decode("cp1252")
        else:
            text = data.decode(encoding)
    except LookupError:
        return None, problem(
            "CONN-DECODE",
            f"La codificación '{encoding}' configurada para esta fuente no existe.",
            filename,
        )
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        how = (
            "ni como UTF-8 ni como cp1252 (encoding = \"auto\")"
            if enc == "auto" and utf16 is None
            else f"con la codificación {encoding}"
        )
        return None, problem(
            "CONN-DECODE",
            f"El archivo no se puede leer {how}: "
            f"byte 0x{data[exc.start]:02x} no válido en la línea {line}.",
            f"{filename}:{line}",
        )
    bad = _mojibake(text)
    if bad is not None:
        pos, seen, meant = bad
        return None, problem(
            "CONN-DECODE-MOJIBAKE",
            f"El texto del archivo ya viene mal codificado: '{seen}' es '{meant}' escrito en "
            "UTF-8 y leído como cp1252/latin-1 antes de exportarlo. Se rechaza para no timbrarlo "
            "así: corrija el texto o la exportación en el ERP.",
            f"{filename}:{_line_of(text, pos)}",
        )
    return text, None


def _word_at(text: str, start: int, end: int) -> str:
    """The word around ``text[start:end]`` (at most 20 characters either side)."""
    before = re.search(r"[^\s|,;\t]{0,20}\Z", text[:start])
    after = re.match(r"[^\s|,;\t]{0,20}", text[end:])
    return (before.group() if before else "") + text[start:end] + (after.group() if after else "")


def _mojibake(text: str) -> tuple[int, str, str] | None:
    """(position, the mangled word, what it meant) of the first UTF-8 sequence read as
    cp1252/latin-1 in ``text``: the tell-tale "Ã±", "Ã³", "Â°", "â€œ"."""
    for m in _MOJIBAKE.finditer(text):
        word = _word_at(text, m.start(), m.end())
        for codec in ("cp1252", "latin-1"):
            try:
                meant = word.encode(codec).decode("utf-8")
            except UnicodeError:
                continue
            return m.start(), word, meant
    return None


# --- adapters -----------------------------------------------------------------------------------


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
        self, header: bytes, header_name: str, lines: bytes, lines_name: str
    ) -> Iterator[ParsedRecord]:
        """One ``ParsedRecord`` tree per invoice of a header file and its lines file."""
        raise NotImplementedError(self.check_pair()[0])

    def load_pair(
        self,
        header: bytes,
        header_name: str,
        lines: bytes,
        lines_name: str,
        mapping: Mapping | None,
    ) -> Iterator[InvoiceInput]:
        return self._map_records(self.parse_pair(header, header_name, lines, lines_name), mapping)

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
) -> Iterator[InvoiceInput]:
    """The façade for a header file + lines file pair (same contract as ``load_invoices``).

    A missing half (``data is None``: the folder source gave up waiting for it) is one
    ``CONN-PAR-INCOMPLETO`` problem at the file that is there; the pair is never read alone.
    """
    present, missing = (header, lines) if lines.data is None else (lines, header)
    if present.data is None or missing.data is None:
        what = "de líneas" if missing is lines else "de encabezado"
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
                            f"Falta el archivo {what} {missing.name}: el par no llegó completo "
                            "a tiempo y no se procesa.",
                            present.name,
                        )
                    ],
                )
            ]
        )
    h, ln = header.data, lines.data
    assert h is not None and ln is not None
    return _run(
        adapter,
        options,
        header.name,
        lambda impl: impl.load_pair(h, header.name, ln, lines.name, mapping),
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
