"""Where a stamped invoice's outputs go, and the outputs of its cancellation (beside the
delivered ones). Below the pipeline and ``connector.cancellations``, which both use it."""

from __future__ import annotations

from pathlib import Path

from connector.config import EmisorConfig, SourceConfig
from connector.journal import Entry
from connector.rendering import render_pdf_bytes
from connector.sinks import atomic_write, output_stem


def output_paths(src: SourceConfig, e: Entry) -> dict[str, Path]:
    """Where a stamped invoice's outputs go (the kinds the source writes)."""
    assert e.uuid and src.output is not None  # asked only of a source that writes files
    stem = output_stem(
        src.filename_pattern, serie=e.serie, folio=e.folio, uuid=e.uuid, rfc=e.emisor_rfc
    )
    o = src.output
    out = {"xml": o.xml / f"{stem}.xml"}
    if o.pdf is not None:
        out["pdf"] = o.pdf / f"{stem}.pdf"
    if o.acuse is not None:
        out["acuse"] = o.acuse / f"{stem}_acuse.xml"
    return out


def deliver_cancellation(
    src: SourceConfig, emisor: EmisorConfig, e: Entry, acuse: bytes | None
) -> dict[str, str]:
    """After the journal recorded a cancellation: the PDF again with the CANCELADO mark, in
    place of the delivered one (same name, atomic), and the acuse de cancelación beside the
    other acuses (``<stem>_cancelacion.xml``). Safe to repeat."""
    assert e.stamped_xml is not None and e.uuid
    if src.output is None:  # a table source that writes no files
        return {}
    paths = output_paths(src, e)
    out: dict[str, str] = {}
    pdf_path = e.outputs.get("pdf") or paths.get("pdf")
    if pdf_path:
        pdf = render_pdf_bytes(e.stamped_xml, emisor, cancelled=True)
        if pdf is not None:
            out["pdf"] = str(atomic_write(Path(pdf_path), pdf))
    if "acuse" in paths and acuse:
        dest = paths["acuse"].with_name(f"{paths['xml'].stem}_cancelacion.xml")
        out["acuse_cancelacion"] = str(atomic_write(dest, acuse))
    return out
