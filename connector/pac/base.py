"""What the pipeline talks to: one interface for every PAC, its results, and reading stamps.

``PacDriver`` is the interface. A driver that lacks an operation inherits the default method,
which raises :class:`~connector.pac.errors.PacUnsupported` naming the PAC and the operation.
The results (:class:`StampResult`, :class:`CancelResult`, :class:`Credits`), the
:class:`Timeouts` of a call, :class:`Secret`/:func:`redact` and the readers of a stamped CFDI
(:func:`tfd_of`, :func:`stamp_result_from_xml`) live here too.

The rest of the PAC layer, below this module in reading order:

* :mod:`connector.pac.soap`: the SOAP plumbing every driver shares (WSDL loading, one
  ``requests.Session`` per driver, zeep's transport, :class:`~connector.pac.soap.SoapService`);
* :mod:`connector.pac.soap_lxml`: the lxml template path that replaces zeep for the
  operations a driver names (FEL's two calls per invoice);
* :mod:`connector.pac.failures`: every transport or SOAP failure mapped to one kind of
  :mod:`connector.pac.errors`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar, TypeVar

from lxml import etree

from connector.cfdi.model import Comprobante

from .errors import PacUnsupported
from .failures import garbled

NS_TFD = "http://www.sat.gob.mx/TimbreFiscalDigital"

T = TypeVar("T")


# --- Results ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StampResult:
    """A stamped CFDI as the PAC returned it.

    ``previously_stamped`` is True when the PAC already had this invoice (FEL/Finkok 307, or a
    stamp found by ``recover``): the UUID is the existing one, never a new one.
    """

    uuid: str
    xml: bytes
    fecha_timbrado: str
    no_certificado_sat: str
    previously_stamped: bool = False
    creditos_restantes: int | None = None
    code: str | None = None
    message: str | None = None

    def __repr__(self) -> str:
        return (
            f"StampResult(uuid={self.uuid!r}, fecha_timbrado={self.fecha_timbrado!r}, "
            f"previously_stamped={self.previously_stamped}, xml=<{len(self.xml)} bytes>)"
        )


@dataclass(frozen=True, slots=True)
class CancelResult:
    """Outcome of a cancellation request for one UUID.

    ``estatus`` is the PAC's/SAT's wording (e.g. ``Cancelado``, ``En proceso``);
    ``accepted`` is True when the request was accepted (cancelled or pending the
    receptor's answer).
    """

    uuid: str
    accepted: bool
    estatus: str | None = None
    es_cancelable: str | None = None
    acuse: bytes | None = None
    code: str | None = None
    message: str | None = None


@dataclass(frozen=True, slots=True)
class CreditPackage:
    nombre: str | None
    timbres: int | None
    restantes: int | None
    usados: int | None
    vigente: bool | None
    vencimiento: str | None = None


@dataclass(frozen=True, slots=True)
class Credits:
    """Stamps left in the account (``restantes``) and used, with the packages when known."""

    restantes: int | None
    usados: int | None = None
    paquetes: tuple[CreditPackage, ...] = ()


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds to establish a connection and to wait for the reply of one call."""

    connect: float = 5.0
    read: float = 30.0

    def as_tuple(self) -> tuple[float, float]:
        return (self.connect, self.read)


# --- The interface ---------------------------------------------------------------------------


class PacDriver(ABC):
    """What the pipeline needs from a PAC. Unsupported operations raise ``PacUnsupported``."""

    name: ClassVar[str] = "pac"

    @abstractmethod
    def stamp(self, sealed_xml: bytes, referencia: str) -> StampResult:
        """Stamp a sealed CFDI. The identical bytes may be sent again (307 → existing stamp)."""

    def generate(self, c: Comprobante, referencia: str) -> StampResult:
        """Remote generation: the PAC builds, seals and stamps from the invoice data."""
        raise PacUnsupported(self.name, "generate")

    def recover(self, referencia: str) -> StampResult:
        """The stamp the PAC made for ``referencia``; ``PacNotFound`` when it never did."""
        raise PacUnsupported(self.name, "recover")

    def recover_generated(self, referencia: str) -> StampResult:
        """Like ``recover``, for a remote ``generate`` (a PAC may keep those apart)."""
        return self.recover(referencia)

    def cancel(
        self,
        uuid: str,
        motivo: str,
        folio_sustitucion: str | None,
        rfc_receptor: str,
        total: Decimal,
    ) -> CancelResult:
        raise PacUnsupported(self.name, "cancel")

    def credits(self) -> Credits:
        raise PacUnsupported(self.name, "credits")

    def acuse_envio(self, uuid: str) -> bytes:
        raise PacUnsupported(self.name, "acuse_envio")

    def acuse_cancelacion(self, uuid: str) -> bytes:
        raise PacUnsupported(self.name, "acuse_cancelacion")

    def change_password(self, new: str) -> None:
        raise PacUnsupported(self.name, "change_password")

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release network resources."""

    def __enter__(self: T) -> T:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- Secrets ---------------------------------------------------------------------------------


class Secret:
    """A string that never shows itself in ``repr``/``str`` (passwords, key passwords)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


def redact(text: str, secrets: Iterable[str]) -> str:
    for s in secrets:
        if s and len(s) >= 3:
            text = text.replace(s, "***")
    return text


# --- Reading stamped XML ---------------------------------------------------------------------

_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, huge_tree=False, remove_blank_text=False
)


def tfd_of(xml: bytes) -> dict[str, str] | None:
    """The TimbreFiscalDigital attributes of a stamped CFDI, or None when absent/unparsable."""
    try:
        root = etree.fromstring(xml, _PARSER)
    except (etree.XMLSyntaxError, ValueError):
        return None
    node = root.find(f".//{{{NS_TFD}}}TimbreFiscalDigital")
    if node is None:
        return None
    return {k: v for k, v in node.attrib.items()}


def to_bytes(value: Any) -> bytes:
    if value is None:
        return b""
    if isinstance(value, bytes):
        return value
    return str(value).encode("utf-8")


def iso(value: Any) -> str:
    if isinstance(value, datetime):
        return value.replace(tzinfo=None, microsecond=0).isoformat()
    return str(value or "")


def stamp_result_from_xml(
    xml: bytes,
    *,
    pac: str,
    operation: str,
    write: bool,
    previously_stamped: bool = False,
    creditos_restantes: int | None = None,
    code: str | None = None,
    message: str | None = None,
    fallback: dict[str, Any] | None = None,
) -> StampResult:
    """Build a StampResult from the stamped XML (the TFD is the truth); garbled if unusable."""
    tfd = tfd_of(xml) if xml else None
    fb = fallback or {}
    uuid = (tfd or {}).get("UUID") or fb.get("uuid")
    if not xml or not uuid:
        raise garbled(pac, operation, write=write, detail="sin XML timbrado o sin UUID")
    return StampResult(
        uuid=str(uuid).upper(),
        xml=xml,
        fecha_timbrado=(tfd or {}).get("FechaTimbrado") or iso(fb.get("fecha")),
        no_certificado_sat=(tfd or {}).get("NoCertificadoSAT") or str(fb.get("cert") or ""),
        previously_stamped=previously_stamped,
        creditos_restantes=creditos_restantes,
        code=code,
        message=message,
    )


@dataclass
class _Field:
    """Small helper to read attributes from zeep objects that may be None."""

    obj: Any
    missing: Any = field(default=None)

    def __call__(self, name: str) -> Any:
        if self.obj is None:
            return self.missing
        try:
            return self.obj[name]
        except (KeyError, TypeError, AttributeError):
            return getattr(self.obj, name, self.missing)


def reader(obj: Any) -> Callable[[str], Any]:
    return _Field(obj)
