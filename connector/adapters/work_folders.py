"""One work folder per connector instance (issue 16): with a shared journal a folder source
claims into ``<work>/<instance>/``, and the claims of an instance that stopped are brought into
the folder of the instance that took its work over.

A claim may be several entries (a pair's or a CSV set's files, a done-marker, the hidden
``.claiming`` name of a claim under way): they share the claim's unique prefix
(``adapters.folder``: ``<time>-<random>--<name>``), so they move together.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

_SEP = "--"  # as adapters.folder names its claims


def claim_group(name: str) -> str:
    """What the entries of one claim share in a work folder (its unique prefix); an entry
    that is no claim's is a group of its own."""
    bare = name[1:] if name.startswith(".") else name
    return bare.split(_SEP, 1)[0] if _SEP in bare else name


def bring_claim(found: Path, folder: Path) -> Path:
    """Move the claim ``found`` belongs to (every entry of its group in its folder) into
    ``folder``; the new path of ``found``. An entry already there under that name stays
    where it was."""
    group = claim_group(found.name)
    for entry in sorted(os.listdir(found.parent)):
        if claim_group(entry) != group:
            continue
        target = folder / entry
        if not target.exists():
            with contextlib.suppress(FileNotFoundError):  # finished meanwhile
                os.rename(found.parent / entry, target)
    return folder / found.name


def find_claim(work: Path, mine: Path) -> Path | None:
    """Where the claimed file a journal row says is at ``work`` is now, brought into this
    instance's folder ``mine`` when it is in another's (or in ``<work>/`` itself, claimed
    before the journal was shared); None when it is nowhere under the source's ``<work>/``."""
    base = mine.parent
    try:
        others = sorted(p for p in base.iterdir() if p.is_dir() and p != mine)
    except OSError:
        others = []
    for place in (work.parent, mine, base, *others):
        if (place / work.name).is_file():
            found = place / work.name
            return found if place == mine else bring_claim(found, mine)
    return None
