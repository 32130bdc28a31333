"""PAC drivers behind one interface; ``create_driver`` is the factory the configuration uses.

Imports are lazy so ``import connector.pac`` stays cheap (zeep loads only when a driver is made).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .base import PacDriver

DRIVERS = ("fel", "finkok")


def create_driver(kind: str, url: str | None = None, **credentials: Any) -> PacDriver:
    """Build the driver ``kind`` (``fel`` or ``finkok``).

    ``url`` is the main service address: FEL Timbrado (``remote_url=`` adds Conexión Remota),
    Finkok stamp (``cancel_url=`` adds cancellation). The remaining keywords are the driver's
    constructor arguments: ``usuario``/``password``/``cuenta`` for FEL, ``username``/``password``
    for Finkok (``usuario`` is accepted too), ``timeouts``, ``pool_size``, ``verify``…
    """
    from .errors import PacInvalid

    name = (kind or "").strip().lower()
    if name == "fel":
        from .fel import FelDriver

        if url and "timbrado_url" not in credentials:
            credentials["timbrado_url"] = url
        return FelDriver(**credentials)
    if name == "finkok":
        from .finkok import FinkokDriver

        if "usuario" in credentials and "username" not in credentials:
            credentials["username"] = credentials.pop("usuario")
        if url and "stamp_url" not in credentials:
            credentials["stamp_url"] = url
        return FinkokDriver(**credentials)
    raise PacInvalid(
        "CONN-PAC-CONFIG",
        f"PAC desconocido '{kind}'; use uno de: {', '.join(DRIVERS)}.",
        pac=kind,
        operation="create_driver",
    )
