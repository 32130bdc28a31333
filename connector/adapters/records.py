"""What adapters hand to mappers: the parsed record tree (``ParsedRecord``), the problem
helper, and the decoding of an export file's bytes (``decode_text``: UTF-8/UTF-16 by BOM,
else the configured or guessed code page, mojibake named). Both ``connector.adapters`` and
``connector.mappers`` import it downward; it imports neither."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from connector.cfdi.errors import Problem


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
