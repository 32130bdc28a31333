"""The look of the representación impresa (``pdf``): the per-emisor ``PdfStyle`` and the shipped
fonts, each parsed once per process, with fpdf2's font subsetting cached per glyph set (see
``pdf``'s module doc); text cleaned for printing and the fallback fonts an invoice needs."""

from __future__ import annotations

import copy
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

from fontTools import subset as ftsubset
from fontTools import ttLib
from fpdf import FPDF
from fpdf.fonts import SubsetMap, TTFFont

from .errors import CfdiError
from .model import Comprobante

FONTS_DIR = Path(__file__).resolve().parent / "fonts"


# --- Style -----------------------------------------------------------------------------------

_COLOR = re.compile(r"^#[0-9A-Fa-f]{6}$")


@dataclass(frozen=True)
class PdfStyle:
    """Per-emisor look, from configuration: a logo (PNG/JPEG) and the colours."""

    logo_path: Path | None = None
    primary_color: str = "#1F4E79"
    text_color: str = "#222222"
    watermark_color: str = "#C00000"
    footer_note: str | None = None

    def __post_init__(self) -> None:
        for name in ("primary_color", "text_color", "watermark_color"):
            value = getattr(self, name)
            if not isinstance(value, str) or not _COLOR.match(value):
                raise CfdiError.one(
                    "CONN-PDF-COLOR",
                    f"El color {value!r} de {name} no es válido: use el formato #RRGGBB.",
                    name,
                )
        if self.logo_path is not None:
            path = Path(self.logo_path)
            object.__setattr__(self, "logo_path", path)
            if not path.is_file():
                raise CfdiError.one(
                    "CONN-PDF-LOGO", f"No se encuentra el archivo del logotipo {path}.", "logo_path"
                )


def _rgb(color: str) -> tuple[int, int, int]:
    return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)


# --- Fonts: shipped files, parsed once per process --------------------------------------------

_FONT_FILES = {
    ("dv", ""): "DejaVuSans-Latin.ttf",
    ("dv", "B"): "DejaVuSans-Bold-Latin.ttf",
    ("dvx", ""): "DejaVuSans.ttf",
    ("dvx", "B"): "DejaVuSans-Bold.ttf",
    ("sym", ""): "NotoSansSymbols2-Regular.ttf",
}
_FALLBACK_FAMILIES = ("dvx", "sym")


@dataclass(frozen=True)
class _Loaded:
    """A font ready to attach: parsed (shared, read-only), its bytes, all glyphs picked."""

    font: TTFFont
    data: bytes
    full: SubsetMap  # every glyph of the font picked, in a fixed order


def _load(data: bytes, family: str, style: str) -> _Loaded:
    font = TTFFont(FPDF(), BytesIO(data), f"{family}{style}", style)  # type: ignore[arg-type]
    full = SubsetMap(font)
    for codepoint in sorted(font.cmap):
        full.pick(codepoint)
    return _Loaded(font, data, full)


_loaded: dict[tuple[str, str], _Loaded] = {}
_pieces: OrderedDict[tuple[str, str, frozenset[int]], _Loaded] = OrderedDict()
_PIECES_MAX = 64
_font_lock = threading.Lock()


def _font(family: str, style: str) -> _Loaded:
    """A shipped font file, read and parsed once per process."""
    key = (family, style)
    loaded = _loaded.get(key)
    if loaded is None:
        with _font_lock:
            loaded = _loaded.get(key)
            if loaded is None:
                data = (FONTS_DIR / _FONT_FILES[key]).read_bytes()
                loaded = _loaded[key] = _load(data, family, style)
    return loaded


def _piece(family: str, style: str, codepoints: frozenset[int]) -> _Loaded:
    """Just the glyphs of ``codepoints`` from a big fallback font, cached per character set.

    Subsetting a big font costs tens of milliseconds; the characters an invoice needs from the
    fallbacks are few and repeat (a company's catalogue), so each set is made once per process.
    """
    key = (family, style, codepoints)
    with _font_lock:
        loaded = _pieces.get(key)
        if loaded is not None:
            _pieces.move_to_end(key)
            return loaded
    options = ftsubset.Options(notdef_outline=True, recommended_glyphs=True, hinting=False)
    options.layout_features = []
    options.drop_tables += ["GDEF", "GPOS", "GSUB", "kern", "MATH", "FFTM"]
    font = ttLib.TTFont(BytesIO(_font(family, style).data), recalcTimestamp=False)
    subsetter = ftsubset.Subsetter(options)
    subsetter.populate(unicodes=sorted(codepoints | {0x20}))
    subsetter.subset(font)
    out = BytesIO()
    font.save(out)
    data = out.getvalue()
    loaded = _load(data, family, style)
    with _font_lock:
        _pieces[key] = loaded
        while len(_pieces) > _PIECES_MAX:
            _pieces.popitem(last=False)
    return loaded


class _KeyedFont(ttLib.TTFont):
    """A fontTools font that knows which shipped font (and glyph set) it is, for the cache."""

    cfdi_key: tuple[Any, ...] = ()


_subset_cache: OrderedDict[tuple[Any, ...], bytes] = OrderedDict()
_SUBSET_CACHE_MAX = 64


def _attach(pdf: FPDF, family: str, style: str, loaded: _Loaded, key: tuple[Any, ...]) -> None:
    """Add a parsed font to ``pdf`` sharing what never changes (cmap, widths, metrics).

    Every glyph of our (small) fonts is embedded, always in the same order, so the embedded
    font is the same for every invoice and fpdf2's font subsetting — the dominant cost of a
    PDF — is done once per process (see ``_CachingSubsetter``). fpdf2 modifies the font object
    when writing, so each document gets its own fontTools object (a lazy open of the bytes).
    """
    tmpl, data, full = loaded.font, loaded.data, loaded.full
    font = copy.copy(tmpl)
    font.i = len(pdf.fonts) + 1
    ttfont = _KeyedFont(BytesIO(data), lazy=True, recalcTimestamp=False, recalcBBoxes=False)
    ttfont.cfdi_key = key
    font.ttfont = ttfont
    font.desc = copy.copy(tmpl.desc)
    font.missing_glyphs = []
    font.biggest_size_pt = 0
    font._hbfont = None
    subset = SubsetMap.__new__(SubsetMap)
    subset.font = font
    subset._next = full._next
    subset._reserved = list(full._reserved)
    subset._char_id_per_glyph = dict(full._char_id_per_glyph)
    font.subset = subset
    pdf.fonts[f"{family}{style}"] = font


class _CachingSubsetter:
    """Stands in for fontTools' Subsetter inside fpdf2's writer (``fpdf.output.ftsubset``).

    For our shipped fonts (a ``_KeyedFont``) the subset of a given glyph set is computed once
    and kept as bytes; the font object is then reloaded from those bytes, which fpdf2 saves
    without re-subsetting. Any other font goes to the real Subsetter unchanged.
    """

    def __init__(self, options: Any = None, **kwargs: Any) -> None:
        self._real = ftsubset.Subsetter(options=options, **kwargs)
        self._glyphs: frozenset[str] = frozenset()

    def populate(self, glyphs: Any = (), **kwargs: Any) -> None:
        self._glyphs = frozenset(glyphs)
        self._real.populate(glyphs=glyphs, **kwargs)

    def subset(self, font: Any) -> None:
        key = getattr(font, "cfdi_key", None)
        if not key:
            self._real.subset(font)
            return
        cache_key = (key, self._glyphs)
        with _font_lock:
            data = _subset_cache.get(cache_key)
        if data is None:
            self._real.options.glyph_names = True  # names survive the reload below
            self._real.subset(font)
            out = BytesIO()
            font.save(out)
            data = out.getvalue()
            with _font_lock:
                _subset_cache[cache_key] = data
                while len(_subset_cache) > _SUBSET_CACHE_MAX:
                    _subset_cache.popitem(last=False)
        fresh = ttLib.TTFont(BytesIO(data), lazy=True, recalcTimestamp=False, recalcBBoxes=False)
        font.__dict__.clear()
        font.__dict__.update(fresh.__dict__)


class _SubsetModule:
    """``fontTools.subset`` as fpdf2's writer sees it, with the caching Subsetter."""

    Options = ftsubset.Options
    Subsetter = _CachingSubsetter

    def __getattr__(self, name: str) -> Any:
        return getattr(ftsubset, name)


def _install_subset_cache() -> None:
    import fpdf.output as fpdf_output

    if getattr(fpdf_output, "ftsubset", None) is ftsubset:
        fpdf_output.ftsubset = _SubsetModule()  # type: ignore[assignment]


_install_subset_cache()


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def _clean(value: Any, *, multiline: bool = False) -> str:
    """Text safe to print: no control characters; newlines kept only where asked."""
    if value is None:
        return ""
    text = str(value)
    if multiline:
        text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " ")
        return _CONTROL.sub("", text)
    return _CONTROL.sub("", text.replace("\r", " ").replace("\n", " ").replace("\t", " "))


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _strings(v)


def _fallback_plan(c: Comprobante, style: PdfStyle) -> dict[str, frozenset[int]]:
    """Characters outside the Latin fonts, per fallback family that has them."""
    chars: set[str] = set()
    for s in _strings(c.model_dump(exclude={"OtrosComplementos", "Certificado"})):
        chars.update(s)
    for raw in c.OtrosComplementos:  # drawn when Nómina (pdf_nomina12): its text too
        chars.update(raw.decode("utf-8", "replace"))
    if style.footer_note:
        chars.update(style.footer_note)
    latin = _font("dv", "").font.cmap
    missing = {ord(ch) for ch in chars if ord(ch) not in latin and ord(ch) >= 0x20}
    plan: dict[str, frozenset[int]] = {}
    for family in _FALLBACK_FAMILIES:
        if not missing:
            break
        found = missing & _font(family, "").font.cmap.keys()
        if found:
            plan[family] = frozenset(found)
            missing -= found
    return plan
