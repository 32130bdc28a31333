"""The demo's ERP: sample export files, their mappings and lookup tables.

The files here are *templates*: ``{FECHA}`` (and ``{FECHA_DMY}`` in the CSV) become the current
local time when the demo writes them, because SAT rejects invoices dated more than 72 hours
before stamping; ``{MES}``/``{ANIO}`` fill the global invoice's period; ``{RUN}`` prefixes the
folios so repeated runs against one journal do not collide (empty by default).

=========================  ========  ==============================================================
file written               adapter   content
=========================  ========  ==============================================================
``ventas_demo.dat``        dat       4 valid invoices: IVA 16 %, IEPS 8 % + IVA, retención de IVA,
                                     público en general with InformacionGlobal (default layout)
``ventas_demo.csv``        csv       3 valid invoices, one row per line, ';', decimal comma,
                                     dd/mm/yyyy dates, cp1252 with accents and ñ; articles and
                                     customers resolved through ``articulos.csv``/``clientes.csv``
``factura_sin_sello.xml``  xml       1 valid unsealed CFDI 4.0 XML (the connector seals it)
``ventas_error.dat``       dat       2 invalid invoices: a wrong RFC and an unknown ClaveProdServ;
                                     a CONCEPTO with missing fields and a non-numeric quantity
=========================  ========  ==============================================================

``SOURCES`` says how a source of each kind is configured (adapter, options, mapping, include).
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Any

ERP_DIR = Path(__file__).resolve().parent
CSV_MAPPING = ERP_DIR / "ventas_csv.mapping.toml"
ARTICULOS = ERP_DIR / "articulos.csv"
CLIENTES = ERP_DIR / "clientes.csv"

# template in this folder -> (name written, output encoding)
TEMPLATES: dict[str, tuple[str, str]] = {
    "ventas_demo.dat": ("ventas_demo.dat", "utf-8"),
    "ventas_demo.csv": ("ventas_demo.csv", "cp1252"),
    "factura_sin_sello.xml.txt": ("factura_sin_sello.xml", "utf-8"),
    "ventas_error.dat": ("ventas_error.dat", "utf-8"),
}

# How the daemon's demo configures one source per kind of file.
SOURCES: dict[str, dict[str, Any]] = {
    "dat": {"adapter": "dat", "include": ["*.dat"], "options": {}, "mapping": None},
    "csv": {
        "adapter": "csv",
        "include": ["*.csv"],
        "options": {"delimiter": ";", "encoding": "cp1252"},
        "mapping": CSV_MAPPING,
    },
    "xml": {"adapter": "xml", "include": ["*.xml"], "options": {}, "mapping": None},
}

VALID_INVOICES = {"ventas_demo.dat": 4, "ventas_demo.csv": 3, "factura_sin_sello.xml": 1}
INVALID_INVOICES = {"ventas_error.dat": 2}


def render(template: str, now: datetime, run: str = "") -> str:
    """A template's text with its placeholders filled for ``now`` (local time)."""
    return (
        template.replace("{FECHA}", now.strftime("%Y-%m-%dT%H:%M:%S"))
        .replace("{FECHA_DMY}", now.strftime("%d/%m/%Y %H:%M:%S"))
        .replace("{MES}", now.strftime("%m"))
        .replace("{ANIO}", f"{now.year:04d}")
        .replace("{RUN}", run)
    )


def write_demo_exports(
    target_dir: Path, now: datetime, *, run: str = "", only: list[str] | None = None
) -> list[Path]:
    """Write the demo export files into ``target_dir`` (each appears whole: temp name + rename).

    ``now`` is the local time to put on the invoices; ``run`` an optional folio prefix (letters
    and digits) for repeated runs; ``only`` restricts to some written names. Returns the paths
    in the order of ``TEMPLATES``.
    """
    if run and not run.isalnum():
        raise ValueError("run debe ser alfanumérico (se antepone a los folios)")
    target_dir = Path(target_dir)
    target_dir.mkdir(parents=True, exist_ok=True)
    now = now.replace(microsecond=0)
    written: list[Path] = []
    for template, (name, encoding) in TEMPLATES.items():
        if only is not None and name not in only:
            continue
        text = render((ERP_DIR / template).read_text(encoding="utf-8"), now, run)
        if encoding != "utf-8":
            text = text.replace("\n", "\r\n")  # a Windows ERP
        target = target_dir / name
        tmp = target_dir / f".{name}.tmp"
        with open(tmp, "wb") as fh:
            fh.write(text.encode(encoding))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        written.append(target)
    return written
