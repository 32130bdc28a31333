"""The emisores' CSD in the configuration: loaded (``load_csd``, checked against the emisor's
RFC), its expiry (``csd_expiry``, ``csd_expiry_problems``) and the check of each
``[[emisores]]`` entry.
"""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from connector.cfdi.errors import Problem

from .loading import _Reporter
from .models import Config, EmisorConfig
from .secrets import SecretError, read_secret


def _check_emisores(cfg: Config, rep: _Reporter) -> None:
    for i, e in enumerate(cfg.emisores):
        kp = f"emisores[{rep.ix('emisores', i)}]"
        _check_csd(e, kp, rep)
        if e.pdf.logo is not None and not e.pdf.logo.is_file():
            rep.add("CONN-CFG-ARCHIVO", f"{kp}.pdf.logo", f"El logotipo {e.pdf.logo} no existe.")


def _check_csd(e: EmisorConfig, kp: str, rep: _Reporter) -> None:
    ok = True
    for key in ("cer", "key"):
        f: Path | None = getattr(e, key)
        if f is None:  # a shape error, reported already
            ok = False
        elif not f.is_file():
            rep.add("CONN-CFG-CSD", f"{kp}.{key}", f"El archivo del CSD {f} no existe.")
            ok = False
        elif not os.access(f, os.R_OK):
            rep.add("CONN-CFG-CSD", f"{kp}.{key}", f"El archivo del CSD {f} no se puede leer.")
            ok = False
    try:
        password = read_secret(e, f"el CSD de {e.rfc or kp}")
    except SecretError as exc:
        rep.add(exc.code, kp, exc.message)
        return
    if not ok or e.rfc is None:
        return
    try:
        csd = load_csd(e, password)
    except Exception as exc:  # CsdError or anything the CSD loader raises
        problems = getattr(exc, "problems", None)
        msg = "; ".join(p.message for p in problems) if problems else str(exc)
        code = getattr(exc, "code", "CONN-CFG-CSD")
        rep.add(code if isinstance(code, str) else "CONN-CFG-CSD", f"{kp}.key", msg)
        return
    found = csd_expiry(e, csd.not_after)
    if found is not None:
        rep.add(found.code, f"{kp}.cer", found.message, severity=found.severity)


CSD_WARNING_DAYS = 30


def csd_expiry(e: EmisorConfig, not_after: datetime, now: datetime | None = None) -> Problem | None:
    """An error when the emisor's CSD (valid until ``not_after``) has expired: it cannot seal
    any invoice; a warning when it expires within ``CSD_WARNING_DAYS`` days."""
    from connector.cfdi.csd import MEXICO_TZ

    now = now or datetime.now(UTC)
    cer = e.cer.name if e.cer is not None else "(sin archivo)"
    until = not_after.astimezone(MEXICO_TZ).strftime("%Y-%m-%d %H:%M")
    if not_after <= now:
        return Problem(
            "CONN-CSD-EXPIRED",
            "",
            f"El CSD {cer} del emisor {e.rfc} venció el {until} (hora del centro de México): "
            "no puede sellar ninguna factura. Tramite un CSD nuevo ante el SAT y configúrelo "
            "en [[emisores]].",
        )
    left = not_after - now
    if left <= timedelta(days=CSD_WARNING_DAYS):
        return Problem(
            "CONN-CSD-EXPIRING",
            "",
            f"El CSD {cer} del emisor {e.rfc} vence el {until} (hora del centro de México), "
            f"en {left.days} día(s): tramite uno nuevo ante el SAT antes de esa fecha.",
            severity="warning",
        )
    return None


def csd_expiry_problems(cfg: Config, now: datetime | None = None) -> list[Problem]:
    """``csd_expiry`` of every emisor whose certificate (.cer, no password needed) is readable
    (``status`` shows them; check-config reports them with the other CSD checks)."""
    from connector.cfdi.csd import load_certificate

    out: list[Problem] = []
    for i, e in enumerate(cfg.emisores):
        try:
            cert = load_certificate(e.cer.read_bytes())
        except Exception:  # unreadable: check-config says why
            continue
        found = csd_expiry(e, cert.not_valid_after_utc, now)
        if found is not None:
            out.append(replace(found, path=f"emisores[{i}].cer"))
    return out


def load_csd(e: EmisorConfig, password: str | None = None) -> Any:
    """The emisor's ``connector.cfdi.csd.Csd``; checks the CSD belongs to the emisor's RFC."""
    from connector.cfdi.csd import Csd

    if password is None:
        password = read_secret(e, f"el CSD de {e.rfc}")
    csd = Csd.from_files(e.cer, e.key, password)
    if getattr(csd, "rfc", e.rfc).upper() != e.rfc:
        from connector.cfdi.errors import CsdError

        raise CsdError.one(
            "CONN-CFG-CSD",
            f"El CSD {e.cer.name} es del RFC {csd.rfc}, no del emisor {e.rfc}.",
        )
    return csd
