"""The page of the representación impresa (``pdf``): Letter size and its measures, our own line
breaking (fast, exact) and text runs per font, sections and field grids, table headers repeated
on every page, the QR as vector squares, footers and the CANCELADO watermark. ``pdf._Renderer``
draws the CFDI's sections on it."""

from __future__ import annotations

import re
from typing import Any

import segno
from fpdf import FPDF
from fpdf.fonts import TTFFont

from .model import Comprobante
from .pdf_fonts import (
    _FONT_FILES,
    PdfStyle,
    _attach,
    _clean,
    _fallback_plan,
    _font,
    _piece,
    _rgb,
)
from .pdf_text import LEGEND, TITLE

# --- The document ------------------------------------------------------------------------------

_PAGE_W = 215.9  # Letter, mm
_PAGE_H = 279.4
_MARGIN = 10.0
_CONTENT_W = _PAGE_W - 2 * _MARGIN
_BOTTOM = 16.0  # room for the footer
_LH = 3.4  # line height of 7 pt text
_DLH = 2.9  # line height of 6 pt detail text
_SLH = 2.7  # line height of the seals
_QR_MM = 30.0
_PT = 25.4 / 72  # mm per point
_GREY = (90, 90, 90)

# conceptos table: (title, width, align); Descripción takes the rest
_COLUMNS = [
    ("Clave SAT", 17.0, "L"),
    ("Cantidad", 16.0, "R"),
    ("Unidad", 22.0, "L"),
    ("Descripción", 0.0, "L"),
    ("Valor unitario", 23.0, "R"),
    ("Descuento", 19.0, "R"),
    ("Importe", 23.0, "R"),
]
_COLUMNS[3] = ("Descripción", _CONTENT_W - sum(w for _, w, _ in _COLUMNS), "L")
_DR_COLUMNS = [
    ("Documento relacionado (UUID)", 58.0, "L"),
    ("Serie / folio", 24.0, "L"),
    ("Moneda / equiv.", 26.0, "L"),
    ("Parcialidad", 17.0, "R"),
    ("Saldo anterior", 22.0, "R"),
    ("Importe pagado", 22.0, "R"),
    ("Saldo insoluto", 0.0, "R"),
]
_DR_COLUMNS[6] = ("Saldo insoluto", _CONTENT_W - sum(w for _, w, _ in _DR_COLUMNS), "R")


class _Doc(FPDF):
    """fpdf2 document whose page header repeats the running title and the open table's header."""

    def __init__(self, renderer: _Layout) -> None:
        super().__init__(orientation="P", unit="mm", format="Letter")
        self.renderer = renderer
        self.repeat_header: Any = None  # callable drawing the open table's header
        self.set_margins(_MARGIN, _MARGIN, _MARGIN)
        self.set_auto_page_break(False, _BOTTOM)
        # page numbers are written once the count is known: no alias to replace (fpdf2 takes
        # None, though its annotation says str)
        self.alias_nb_pages(None)  # type: ignore[arg-type]
        self.set_creator("cfdi-connector")

    def header(self) -> None:
        if self.page_no() > 1:
            self.renderer.running_header()
            if self.repeat_header is not None:
                self.repeat_header()


class _WidthTable(dict[str, int]):
    """char → advance width in font units for one weight; computed on first use."""

    def __init__(self, renderer: _Layout, bold: bool) -> None:
        super().__init__()
        self._renderer = renderer
        self._bold = bold

    def __missing__(self, ch: str) -> int:
        width = self[ch] = self._renderer._width_of(self._bold, ch)
        return width


class _Layout:
    """The page and its text primitives; ``pdf._Renderer`` adds the CFDI's sections."""

    margin, content_w = _MARGIN, _CONTENT_W  # for the complements' sections (pdf_cce20, pdf_cp31)

    def __init__(self, c: Comprobante, style: PdfStyle, cancelled: bool) -> None:
        self.c = c
        self.style = style
        self.cancelled = cancelled
        self.primary = _rgb(style.primary_color)
        self.text_rgb = _rgb(style.text_color)
        serie_folio = "-".join(p for p in (_clean(c.Serie), _clean(c.Folio)) if p)
        head = f"{TITLE.get(c.TipoDeComprobante, 'CFDI')} {serie_folio}".strip()
        if c.uuid:
            head += f"  ·  Folio fiscal {_clean(c.uuid)}"
        self.running = head
        self.pdf = pdf = _Doc(self)
        pdf.set_title(head)
        self._fonts: dict[tuple[str, str], TTFFont] = {}
        for style_ in ("", "B"):
            loaded = _font("dv", style_)
            _attach(pdf, "dv", style_, loaded, ("dv", style_))
            self._fonts[("dv", style_)] = loaded.font
        plan = _fallback_plan(c, style)
        self.fallbacks = list(plan)
        for family, codepoints in plan.items():
            for style_ in ("", "B"):
                if (family, style_) in _FONT_FILES:
                    loaded = _piece(family, style_, codepoints)
                    _attach(pdf, family, style_, loaded, (family, style_, codepoints))
                    self._fonts[(family, style_)] = loaded.font
        self._family_of: dict[str, str] = {}
        self._widths = {bold: _WidthTable(self, bold) for bold in (False, True)}
        # characters drawn with a fallback font (None: the Latin fonts have them all)
        fallback_chars = sorted(chr(cp) for cps in plan.values() for cp in cps)
        self._other = (
            re.compile("[" + "".join(re.escape(ch) for ch in fallback_chars) + "]")
            if fallback_chars
            else None
        )
        self.bold = False
        self.size = 7.0
        self.y = _MARGIN
        pdf.add_page()

    # -- text primitives --------------------------------------------------------------------

    def font(self, bold: bool = False, size: float = 7.0) -> None:
        self.bold = bold
        self.size = size

    def color(self, rgb: tuple[int, int, int] | None = None) -> None:
        self.pdf.set_text_color(*(rgb or self.text_rgb))

    def _family(self, ch: str) -> str:
        family = self._family_of.get(ch)
        if family is None:
            code = ord(ch)
            family = "dv"
            if code not in self._fonts[("dv", "")].cmap:
                for candidate in self.fallbacks:
                    if code in self._fonts[(candidate, "")].cmap:
                        family = candidate
                        break
            self._family_of[ch] = family
        return family

    def _style_for(self, family: str) -> str:
        return "B" if self.bold and (family, "B") in self._fonts else ""

    def _units(self) -> dict[str, int]:
        """Advance widths (1/1000 em) per character in the current weight, filled lazily."""
        table = self._widths[self.bold]
        return table

    def _width_of(self, bold: bool, ch: str) -> int:
        family = self._family(ch)
        style = "B" if bold and (family, "B") in self._fonts else ""
        return int(self._fonts[(family, style)].cw[ord(ch)])

    def width(self, text: str) -> float:
        """Width in mm of ``text`` in the current font and size."""
        return sum(map(self._units().__getitem__, text)) * self.size * _PT / 1000

    def wrap(self, text: str, width: float, *, by_char: bool = False) -> list[str]:
        """Greedy line breaking at spaces (or anywhere with ``by_char``); never wider than width."""
        lines: list[str] = []
        units = self._units().__getitem__
        limit = width * 1000 / (self.size * _PT)  # the width in font units
        space = units(" ")
        for paragraph in text.split("\n"):
            if by_char or " " not in paragraph:
                lines.extend(self._wrap_chars(paragraph, limit))
                continue
            current, used = "", 0
            for word in paragraph.split(" "):
                w = sum(map(units, word))
                if current and used + space + w <= limit:
                    current, used = f"{current} {word}", used + space + w
                    continue
                if not current and w <= limit:
                    current, used = word, w
                    continue
                if current:
                    lines.append(current)
                if w <= limit:
                    current, used = word, w
                else:
                    parts = self._wrap_chars(word, limit)
                    lines.extend(parts[:-1])
                    current = parts[-1]
                    used = sum(map(units, current))
            lines.append(current)
        return lines or [""]

    def _wrap_chars(self, text: str, limit: float) -> list[str]:
        """Break anywhere (seals are unbroken base64); ``limit`` in font units."""
        units = self._units().__getitem__
        lines: list[str] = []
        start, used = 0, 0
        for i, ch in enumerate(text):
            w = units(ch)
            if used + w > limit and i > start:
                lines.append(text[start:i])
                start, used = i, 0
            used += w
        lines.append(text[start:])
        return lines

    def put(
        self, x: float, y: float, width: float, text: str, align: str = "L", lh: float = _LH
    ) -> None:
        """Draw one line inside the box (x, y, width, lh), split into runs per font."""
        if not text:
            return
        if align != "L":
            free = width - self.width(text)
            x += free if align == "R" else free / 2
        baseline = y + lh / 2 + 0.34 * self.size * _PT
        pdf = self.pdf
        if self._other is None or not self._other.search(text):
            pdf.set_font("dv", "B" if self.bold else "", self.size)
            pdf.text(x, baseline, text)
            return
        run_start = 0
        family = self._family(text[0])
        for i in range(1, len(text) + 1):
            next_family = self._family(text[i]) if i < len(text) else None
            if next_family == family:
                continue
            run = text[run_start:i]
            pdf.set_font(family, self._style_for(family), self.size)
            pdf.text(x, baseline, run)
            x += self.width(run)
            run_start, family = i, next_family or family

    def para(
        self,
        x: float,
        width: float,
        text: str,
        *,
        align: str = "L",
        lh: float = _LH,
        by_char: bool = False,
        breakable: bool = False,
    ) -> float:
        """Wrapped text from ``self.y``; returns the height used (page breaks when breakable)."""
        used = 0.0
        for line in self.wrap(text, width, by_char=by_char):
            if breakable and self.y + lh > self.pdf.page_break_trigger:
                self.new_page()
            self.put(x, self.y, width, line, align, lh)
            self.y += lh
            used += lh
        return used

    def height(self, text: str, width: float, lh: float = _LH, by_char: bool = False) -> float:
        return len(self.wrap(text, width, by_char=by_char)) * lh

    # -- layout helpers -----------------------------------------------------------------------

    def new_page(self) -> None:
        self.pdf.add_page()  # the header callback draws and sets self.y

    def ensure(self, height: float) -> None:
        if self.y + height > self.pdf.page_break_trigger:
            self.new_page()

    def running_header(self) -> None:
        self.font(False, 6.5)
        self.color(_GREY)
        self.put(_MARGIN, _MARGIN, _CONTENT_W, self.running, "R", 4)
        self.pdf.set_draw_color(*self.primary)
        self.pdf.line(_MARGIN, _MARGIN + 4.5, _PAGE_W - _MARGIN, _MARGIN + 4.5)
        self.y = _MARGIN + 6
        self.color()

    def section(self, title: str, keep: float = 12) -> None:
        self.ensure(keep + 7)
        self.y += 1.5
        self.font(True, 7.5)
        self.color(self.primary)
        self.put(_MARGIN, self.y, _CONTENT_W, title.upper(), "L", 4.5)
        self.y += 4.5
        pdf = self.pdf
        pdf.set_draw_color(*self.primary)
        pdf.set_line_width(0.3)
        pdf.line(_MARGIN, self.y, _PAGE_W - _MARGIN, self.y)
        pdf.set_line_width(0.2)
        self.y += 1
        self.color()

    def fields(
        self,
        pairs: list[tuple[str, str]],
        cols: int,
        x: float = _MARGIN,
        width: float = _CONTENT_W,
        spans: dict[str, int] | None = None,
    ) -> None:
        """Label above value, ``cols`` per row; a label in ``spans`` takes several columns."""
        spans = spans or {}
        items = [(label, _clean(value)) for label, value in pairs if value not in (None, "")]
        col_w = width / cols
        rows: list[list[tuple[str, str, int]]] = [[]]
        used = 0
        for label, value in items:
            span = min(spans.get(label, 1), cols)
            if used + span > cols:
                rows.append([])
                used = 0
            rows[-1].append((label, value, span))
            used += span
        for row in rows:
            if not row:
                continue
            self.font(False, 7)
            wrapped = [self.wrap(v, col_w * s - 2) for _, v, s in row]
            row_h = 3 + max(len(w) for w in wrapped) * _LH + 0.8
            if len(row) == 1 and row_h > 60:  # a long single value may run over pages
                label, value, span = row[0]
                self.ensure(3 + 2 * _LH)
                self.font(True, 5.8)
                self.color(self.primary)
                self.put(x, self.y, col_w * span - 2, label.upper(), "L", 3)
                self.y += 3
                self.font(False, 7)
                self.color()
                self.para(x, col_w * span - 2, value, breakable=True)
                self.y += 0.8
                continue
            self.ensure(row_h)
            cx = x
            for (label, _, span), lines in zip(row, wrapped, strict=True):
                self.font(True, 5.8)
                self.color(self.primary)
                self.put(cx, self.y, col_w * span - 2, label.upper(), "L", 3)
                self.font(False, 7)
                self.color()
                for n, line in enumerate(lines):
                    self.put(cx, self.y + 3 + n * _LH, col_w * span - 2, line)
                cx += col_w * span
            self.y += row_h

    # -- sections ---------------------------------------------------------------------------

    def _table_head(self, columns: list[tuple[str, float, str]], h: float = 5.0) -> None:
        pdf = self.pdf
        pdf.set_fill_color(*self.primary)
        pdf.rect(_MARGIN, self.y, _CONTENT_W, h, style="F")
        self.font(True, 6.3)
        self.color((255, 255, 255))
        x = _MARGIN
        for title, width, align in columns:
            self.put(x + 0.8, self.y, width - 1.6, title, "R" if align == "R" else "C", h)
            x += width
        self.y += h
        self.color()

    def draw_qr(self, url: str, x: float, y: float, size: float) -> None:
        """The QR as filled vector squares (dark runs merged per row)."""
        pdf = self.pdf
        # a fixed mask: choosing the "best" one costs ~100 ms in pure Python; every mask is valid
        matrix = segno.make(url, error="m", micro=False, boost_error=True, mask=0).matrix
        n = len(matrix)
        module = size / n  # the code itself is ``size`` wide; the quiet zone is white page
        ox, oy = x, y
        k, page_h = pdf.k, pdf.h
        ops = []
        for r, row in enumerate(matrix):
            col = 0
            top = (page_h - (oy + r * module)) * k
            height = -module * 1.02 * k
            while col < n:
                if row[col] & 1:
                    start = col
                    while col < n and row[col] & 1:
                        col += 1
                    ops.append(
                        f"{(ox + start * module) * k:.3f} {top:.3f} "
                        f"{(col - start) * module * k:.3f} {height:.3f} re"
                    )
                else:
                    col += 1
        # one path of rectangles filled at once (fpdf2's rect() per run costs ~10x more)
        pdf._out("q 0 g " + " ".join(ops) + " f Q")

    def finish(self) -> None:
        """Footers (legend, "Página N de M") and the CANCELADO watermark on every page."""
        pdf = self.pdf
        total = pdf.page_no()
        note = LEGEND
        if self.style.footer_note:
            note += "  ·  " + _clean(self.style.footer_note)
        for page in range(1, total + 1):
            pdf.page = page
            # fpdf2 tracks font and colours as emitted on the page being written: after going
            # back to a finished page, make it emit them again on that page.
            pdf.current_font_is_set_on_page = False
            pdf.set_fill_color(1, 2, 3)
            pdf.set_fill_color(255, 255, 255)
            pdf.set_draw_color(1, 2, 3)
            y = _PAGE_H - 12
            pdf.set_draw_color(*self.primary)
            pdf.line(_MARGIN, y, _PAGE_W - _MARGIN, y)
            self.font(False, 6.5)
            self.color(_GREY)
            number = f"Página {page} de {total}"
            self.put(_MARGIN, y + 1, _CONTENT_W - 32, note, "L", 4)
            self.put(_PAGE_W - _MARGIN - 30, y + 1, 30, number, "R", 4)
            if self.cancelled:
                self._watermark()
        pdf.page = total

    def _watermark(self) -> None:
        pdf = self.pdf
        with pdf.local_context(fill_opacity=0.22):
            self.color(_rgb(self.style.watermark_color))
            self.font(True, 90)
            cx, cy = _PAGE_W / 2, _PAGE_H / 2
            with pdf.rotation(55, cx, cy):
                w = self.width("CANCELADO")
                self.put(cx - w / 2, cy - 15, w, "CANCELADO", "L", 30)
        self.color()
