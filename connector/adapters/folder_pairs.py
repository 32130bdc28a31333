"""The two files of an export as a pair (``ventas_0415_H.csv`` + ``ventas_0415_D.csv``):
``PairSpec`` tells a pair's file names apart and finds a name's partner; ``beside`` and
``free_pair_name`` say where the other file of a pair goes (next to its partner's final place,
back into an inbox). The folder source (``connector.adapters.folder``) claims pairs with it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class PairSpec:
    """How the two files of an export are named: ``<base><suffix><.ext>``."""

    header_suffix: str = "_H"
    lines_suffix: str = "_D"
    orphan_seconds: float = 3600.0

    def __post_init__(self) -> None:
        h, d = self.header_suffix.lower(), self.lines_suffix.lower()
        for what, suffix in (("header_suffix", h), ("lines_suffix", d)):
            if not suffix or any(c in suffix for c in "./\\*?[]"):
                raise ValueError(
                    f"{what} debe ser un sufijo de nombre no vacío, sin '.', '/', ni comodines"
                )
        if h.endswith(d) or d.endswith(h):
            raise ValueError(
                f"los sufijos {self.header_suffix!r} y {self.lines_suffix!r} se confunden: uno "
                "termina con el otro"
            )
        if self.orphan_seconds <= 0:
            raise ValueError("orphan_seconds debe ser mayor que cero")

    def split(self, name: str) -> tuple[str, str, str] | None:
        """``("header" | "lines", base, ext)`` of a file name of a pair; None otherwise."""
        stem, dot, ext = name.rpartition(".")
        if not dot or not stem:
            stem, ext = name, ""
        else:
            ext = dot + ext
        low = stem.lower()
        for role, suffix in (("header", self.header_suffix), ("lines", self.lines_suffix)):
            if low.endswith(suffix.lower()) and len(stem) > len(suffix):
                return role, stem[: len(stem) - len(suffix)], ext
        return None

    def role(self, name: str) -> str | None:
        parts = self.split(name)
        return parts[0] if parts else None

    def partner(self, name: str) -> str | None:
        """The name the other file of ``name``'s pair should have."""
        parts = self.split(name)
        if parts is None:
            return None
        role, base, ext = parts
        return base + (self.lines_suffix if role == "header" else self.header_suffix) + ext


def beside(dest: Path, name: str, other: str) -> Path:
    """Where the file ``other`` of a pair goes: next to ``dest``, the final place of ``name``
    (its partner), with the same ``-N`` that ``sinks.free_name`` may have given ``dest``."""
    stem, dot, ext = name.partition(".")
    if dest.name != name and dest.name.startswith(f"{stem}-") and dest.name.endswith(dot + ext):
        n = dest.name[len(stem) + 1 : len(dest.name) - len(dot + ext)]
        if n.isdigit():
            ostem, odot, oext = other.partition(".")
            return dest.with_name(f"{ostem}-{n}{odot}{oext}")
    return dest.with_name(other)


def free_pair_name(folder: Path, name: str, pair: PairSpec) -> Path:
    """Where ``name``, a file of a pair, goes back into the inbox ``folder`` (``replay``):
    ``name`` itself when neither it nor its partner's name is taken there, else
    ``<base>-N<suffix><ext>`` (``ventas-1_H.csv``; its partner ``pair.partner`` of that:
    ``ventas-1_D.csv``), so that both still end in their suffix and still match each other.
    Names are compared without regard to case, as the scan matches them."""
    parts = pair.split(name)
    if parts is None:
        raise ValueError(f"{name} no es un archivo de un par")
    role, base, ext = parts
    suffix = pair.header_suffix if role == "header" else pair.lines_suffix
    try:
        taken = {n.lower() for n in os.listdir(folder)}
    except FileNotFoundError:
        taken = set()
    n = 0
    while True:
        cand = name if n == 0 else f"{base}-{n}{suffix}{ext}"
        if cand.lower() not in taken and (pair.partner(cand) or "").lower() not in taken:
            return Path(folder) / cand
        n += 1
