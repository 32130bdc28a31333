"""The files of an export as a set: a pair (``ventas_0415_H.csv`` + ``ventas_0415_D.csv``) and
the complements' files beside it (``ventas_0415_CCE.csv``…): ``PairSpec`` tells a set's file
names apart and finds a name's partners; ``beside`` and
``free_pair_name`` say where the other file of a pair goes (next to its partner's final place,
back into an inbox). The folder source (``connector.adapters.folder``) claims pairs with it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class PairSpec:
    """How the files of an export are named: ``<base><suffix><.ext>``. A header file and a
    lines file, and ``extras``: the other files of the set (``(role, suffix)``, e.g. the
    complements' files ``("cce", "_CCE")``), each required like the lines file."""

    header_suffix: str = "_H"
    lines_suffix: str = "_D"
    orphan_seconds: float = 3600.0
    extras: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        roles = self.roles()
        names = [r for r, _ in roles]
        if len(set(names)) != len(names):
            raise ValueError("un archivo del conjunto aparece dos veces")
        for role, suffix in roles:
            what = {"header": "header_suffix", "lines": "lines_suffix"}.get(role, role)
            if not suffix or any(c in suffix for c in "./\\*?[]"):
                raise ValueError(
                    f"{what} debe ser un sufijo de nombre no vacío, sin '.', '/', ni comodines"
                )
        for i, (_, a) in enumerate(roles):
            for _, b in roles[i + 1 :]:
                if a.lower().endswith(b.lower()) or b.lower().endswith(a.lower()):
                    raise ValueError(
                        f"los sufijos {a!r} y {b!r} se confunden: uno termina con el otro"
                    )
        if self.orphan_seconds <= 0:
            raise ValueError("orphan_seconds debe ser mayor que cero")

    def roles(self) -> list[tuple[str, str]]:
        """Every file of a set as ``(role, suffix)``, the header first, then the lines file,
        then the extras: the first one present is the one a claim returns."""
        return [("header", self.header_suffix), ("lines", self.lines_suffix), *self.extras]

    def suffix(self, role: str) -> str:
        return dict(self.roles())[role]

    def split(self, name: str) -> tuple[str, str, str] | None:
        """``(role, base, ext)`` of a file name of a set; None otherwise."""
        stem, dot, ext = name.rpartition(".")
        if not dot or not stem:
            stem, ext = name, ""
        else:
            ext = dot + ext
        low = stem.lower()
        for role, suffix in self.roles():
            if low.endswith(suffix.lower()) and len(stem) > len(suffix):
                return role, stem[: len(stem) - len(suffix)], ext
        return None

    def role(self, name: str) -> str | None:
        parts = self.split(name)
        return parts[0] if parts else None

    def order(self, name: str) -> int:
        """The place of ``name``'s role in ``roles`` (a name of no set: after all)."""
        role = self.role(name)
        names = [r for r, _ in self.roles()]
        return names.index(role) if role in names else len(names)

    def named(self, name: str, role: str) -> str | None:
        """The name the file of ``role`` of ``name``'s set should have."""
        parts = self.split(name)
        if parts is None:
            return None
        _, base, ext = parts
        return base + self.suffix(role) + ext

    def partner(self, name: str) -> str | None:
        """The name the other file of ``name``'s pair should have (an extra's: the header)."""
        role = self.role(name)
        if role is None:
            return None
        return self.named(name, "lines" if role == "header" else "header")

    def members(self, name: str) -> list[str]:
        """The names the other files of ``name``'s set should have, in ``roles`` order."""
        role = self.role(name)
        if role is None:
            return []
        return [self.named(name, r) or "" for r, _ in self.roles() if r != role]


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
    suffix = pair.suffix(role)
    try:
        taken = {n.lower() for n in os.listdir(folder)}
    except FileNotFoundError:
        taken = set()
    n = 0
    while True:
        cand = name if n == 0 else f"{base}-{n}{suffix}{ext}"
        if cand.lower() not in taken and not any(m.lower() in taken for m in pair.members(cand)):
            return Path(folder) / cand
        n += 1
