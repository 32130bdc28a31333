"""SAT's public CFDI status service: ``ConsultaCFDIService.Consulta(expresionImpresa)``.

The input is the text of the QR code, ``?re=<emisor>&rr=<receptor>&tt=<total>&id=<UUID>``;
the answer says whether SAT knows the CFDI (``S - Comprobante obtenido satisfactoriamente``),
whether it is ``Vigente`` or ``Cancelado``, whether and how it can be cancelled, and the EFOS
check. Reads only: every failure is transient (retrying is harmless).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from xml.sax.saxutils import escape

import requests

from .addresses import SAT_STATUS_URL
from .base import Timeouts, reader
from .errors import PacInvalid
from .failures import garbled
from .soap import SoapService, make_session

WSDL_SAT = "sat_ConsultaCFDIService.offline.RECONSTRUCTED.wsdl"
SAT_URL = SAT_STATUS_URL  # the one address, also the configuration's default
_UUID = re.compile(r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$")
_RFC = re.compile(r"^[A-ZÑ&]{3,4}[0-9]{6}[A-Z0-9]{3}$")


@dataclass(frozen=True, slots=True)
class SatStatus:
    codigo_estatus: str | None
    estado: str | None  # Vigente, Cancelado, No Encontrado
    es_cancelable: str | None
    estatus_cancelacion: str | None
    validacion_efos: str | None

    @property
    def found(self) -> bool:
        return bool(self.codigo_estatus and self.codigo_estatus.strip().upper().startswith("S"))


def expresion_impresa(uuid: str, rfc_emisor: str, rfc_receptor: str, total: Decimal | str) -> str:
    """The QR text SAT's service expects; ``total`` with 6 decimals, RFCs XML-escaped (``&``)."""
    problems = []
    if not _UUID.match(uuid or ""):
        problems.append(f"el UUID '{uuid}' no tiene el formato de un folio fiscal")
    for label, rfc in (("emisor", rfc_emisor), ("receptor", rfc_receptor)):
        if not _RFC.match((rfc or "").upper()):
            problems.append(f"el RFC del {label} '{rfc}' no es válido")
    try:
        amount = Decimal(str(total))
        if not amount.is_finite() or amount < 0:
            raise InvalidOperation
    except (InvalidOperation, ValueError):
        problems.append(f"el total '{total}' no es un importe")
        amount = Decimal(0)
    if problems:
        raise PacInvalid(
            "CONN-SAT-DATOS",
            "No se puede consultar el estado en el SAT: " + "; ".join(problems) + ".",
            pac="sat",
            operation="Consulta",
        )
    tt = f"{amount.quantize(Decimal('0.000001')):f}"
    return (
        f"?re={escape(rfc_emisor.upper())}&rr={escape(rfc_receptor.upper())}"
        f"&tt={tt}&id={uuid.upper()}"
    )


class SatStatusClient:
    """Client of SAT's status service (address from configuration, SAT's by default)."""

    def __init__(
        self,
        url: str = SAT_URL,
        *,
        timeouts: Timeouts | None = None,
        verify: bool | str = True,
        proxy: str | None = None,
        session: requests.Session | None = None,
        pool_size: int = 4,
    ) -> None:
        self._own_session = session is None
        self.session = session or make_session(pool_size, verify, proxy)
        self.service = SoapService(
            WSDL_SAT, url, session=self.session, timeouts=timeouts or Timeouts()
        )

    def close(self) -> None:
        if self._own_session:
            self.session.close()

    def consulta(
        self, uuid: str, rfc_emisor: str, rfc_receptor: str, total: Decimal | str
    ) -> SatStatus:
        expr = expresion_impresa(uuid, rfc_emisor, rfc_receptor, total)
        r = self.service.call("Consulta", pac="sat", write=False, secrets=(), expresionImpresa=expr)
        if r is None:
            raise garbled("sat", "Consulta", write=False, detail="respuesta vacía")
        f = reader(r)
        status = SatStatus(
            codigo_estatus=f("CodigoEstatus"),
            estado=f("Estado"),
            es_cancelable=f("EsCancelable"),
            estatus_cancelacion=f("EstatusCancelacion"),
            validacion_efos=f("ValidacionEFOS"),
        )
        if status.codigo_estatus is None and status.estado is None:
            raise garbled("sat", "Consulta", write=False, detail="acuse sin CodigoEstatus")
        return status
