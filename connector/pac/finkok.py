"""Finkok over zeep: ``stamp``, ``stamped`` (recover by the sealed XML), ``cancel``,
``get_sat_status`` and ``get_receipt``.

Finkok has no ``referencia``: it recognises a re-sent CFDI by its content and answers
incidence 307 ("El CFDI contiene un timbre previo"), never a second UUID. So ``recover``
by referencia is not offered (``PacUnsupported``) and the resilience layer re-sends the
identical sealed bytes instead; this driver turns a 307 into the existing stamp (from the
reply or, when the reply carries no XML, through ``stamped``).
"""

from __future__ import annotations

import base64
from decimal import Decimal
from typing import Any, ClassVar

import requests

from .base import (
    CancelResult,
    Secret,
    StampResult,
    Timeouts,
    reader,
    stamp_result_from_xml,
    to_bytes,
)
from .errors import ACCOUNT_CODES, PacError, PacInvalid, PacNotFound, error_for_code, kind_of
from .failures import garbled
from .sat_status import SatStatus
from .soap import SoapPacDriver, SoapService

WSDL_STAMP = "finkok_stamp.wsdl"
WSDL_CANCEL = "finkok_cancel40.wsdl"


class FinkokDriver(SoapPacDriver):
    name: ClassVar[str] = "finkok"

    def __init__(
        self,
        username: str,
        password: str,
        *,
        stamp_url: str,
        cancel_url: str | None = None,
        rfc_emisor: str | None = None,
        cancel_cer_der: bytes | None = None,
        cancel_key_pem: bytes | None = None,
        timeouts: Timeouts | None = None,
        pool_size: int = 10,
        verify: bool | str = True,
        proxy: str | None = None,
        session: requests.Session | None = None,
    ) -> None:
        self.username = username
        self._password = Secret(password)
        self.rfc_emisor = rfc_emisor
        self._cer = cancel_cer_der
        self._key = Secret(base64.b64encode(cancel_key_pem).decode()) if cancel_key_pem else None
        self._key_raw = cancel_key_pem
        self._open(session, pool_size, verify, timeouts, proxy)
        self.stamp_service = SoapService(
            WSDL_STAMP, stamp_url, session=self.session, timeouts=self.timeouts
        )
        self.cancel_service = self._service(WSDL_CANCEL, cancel_url)

    def __repr__(self) -> str:
        return (
            f"FinkokDriver(username={self.username!r}, "
            f"stamp={self.stamp_service.address!r}, "
            f"cancel={getattr(self.cancel_service, 'address', None)!r})"
        )

    @property
    def _secrets(self) -> list[str]:
        out = [self._password.get(), *self._network_secrets]
        if self._key:
            out.append(self._key.get())
        return out

    def _call(self, svc: SoapService, operation: str, *, write: bool, **params: Any) -> Any:
        return svc.call(
            operation,
            pac=self.name,
            write=write,
            secrets=self._secrets,
            username=self.username,
            password=self._password.get(),
            **params,
        )

    def _incidencias(self, r: Any) -> list[tuple[str, str]]:
        out = []
        for inc in reader(reader(r)("Incidencias"))("Incidencia") or []:
            g = reader(inc)
            code = str(g("CodigoError") or "").strip()
            msg = self._clean(g("MensajeIncidencia"))
            extra = self._clean(g("ExtraInfo"))
            out.append((code, f"{msg} {extra}".strip()))
        return out

    def _result(
        self, r: Any, operation: str, *, write: bool, previous: bool, code: str | None = None
    ) -> StampResult:
        f = reader(r)
        return stamp_result_from_xml(
            to_bytes(f("xml")),
            pac=self.name,
            operation=operation,
            write=write,
            previously_stamped=previous,
            code=code or (str(f("CodEstatus") or "") or None),
            message=self._clean(f("CodEstatus")) or None,
            fallback={"uuid": f("UUID"), "fecha": f("Fecha"), "cert": f("NoCertificadoSAT")},
        )

    def stamp(self, sealed_xml: bytes, referencia: str) -> StampResult:
        r = self._call(self.stamp_service, "stamp", write=True, xml=sealed_xml)
        if r is None:
            raise garbled(self.name, "stamp", write=True, detail="respuesta vacía")
        incid = self._incidencias(r)
        if reader(r)("xml") and reader(r)("UUID") and not incid:
            return self._result(r, "stamp", write=True, previous=False)
        if any(kind_of(c) == "previously_stamped" for c, _ in incid):
            if reader(r)("xml"):
                return self._result(r, "stamp", write=True, previous=True, code="307")
            return self.stamped(sealed_xml)
        if incid:
            code, msg = incid[0]
            raise error_for_code(
                code or "FINKOK-ERROR",
                f"Finkok rechazó el CFDI: {msg}",
                pac=self.name,
                operation="stamp",
                write=True,
            )
        if reader(r)("xml"):
            return self._result(r, "stamp", write=True, previous=False)
        raise garbled(self.name, "stamp", write=True, detail="sin XML ni incidencias")

    def stamped(self, sealed_xml: bytes) -> StampResult:
        """The stamp Finkok already made for these sealed bytes (``PacNotFound`` if none)."""
        r = self._call(self.stamp_service, "stamped", write=False, xml=sealed_xml)
        if r is None:
            raise garbled(self.name, "stamped", write=False, detail="respuesta vacía")
        if reader(r)("xml"):
            return self._result(r, "stamped", write=False, previous=True, code="307")
        incid = self._incidencias(r)
        code, msg = incid[0] if incid else ("603", "")
        err = error_for_code(code or "603", msg, pac=self.name, operation="stamped", write=False)
        if isinstance(err, PacInvalid) and code not in ACCOUNT_CODES:
            err = PacNotFound(
                code or "603",
                "Finkok no tiene un timbre para este CFDI.",
                pac=self.name,
                operation="stamped",
            )
        raise err

    def _need_cancel(self, operation: str) -> SoapService:
        if self.cancel_service is None or not self.rfc_emisor:
            missing = [
                what
                for what, ok in (
                    ("la dirección de cancelación", self.cancel_service is not None),
                    ("el RFC del emisor", bool(self.rfc_emisor)),
                )
                if not ok
            ]
            raise PacInvalid(
                "CONN-PAC-CONFIG",
                f"Finkok: para '{operation}' falta configurar {' y '.join(missing)}.",
                pac=self.name,
                operation=operation,
            )
        return self.cancel_service

    def cancel(
        self,
        uuid: str,
        motivo: str,
        folio_sustitucion: str | None,
        rfc_receptor: str,
        total: Decimal,
    ) -> CancelResult:
        svc = self._need_cancel("cancel")
        if not self._cer or not self._key_raw:
            raise PacInvalid(
                "CONN-PAC-CONFIG",
                "Finkok: para cancelar configure el certificado y la llave del CSD.",
                pac=self.name,
                operation="cancel",
            )
        item = {"UUID": uuid, "Motivo": motivo, "FolioSustitucion": folio_sustitucion or ""}
        r = self._call(
            svc,
            "cancel",
            write=True,
            UUIDS={"UUID": [item]},
            taxpayer_id=self.rfc_emisor,
            cer=self._cer,
            key=self._key_raw,
            store_pending=False,
        )
        if r is None:
            raise garbled(self.name, "cancel", write=True, detail="respuesta vacía")
        f = reader(r)
        folios = reader(f("Folios"))("Folio") or []
        mine = next(
            (x for x in folios if str(reader(x)("UUID") or "").upper() == uuid.upper()), None
        )
        cod = self._clean(f("CodEstatus"))
        if mine is None:
            raise error_for_code(
                cod.split(" ")[0] if cod else "FINKOK-CANCELACION",
                f"Finkok no canceló {uuid}: {cod or 'sin detalle'}",
                pac=self.name,
                operation="cancel",
                write=False,
            )
        g = reader(mine)
        estatus_uuid = str(g("EstatusUUID") or "").strip()
        accepted = estatus_uuid in ("201", "202")
        if not accepted:
            raise error_for_code(
                estatus_uuid or "FINKOK-CANCELACION",
                f"Finkok no canceló {uuid}: {self._clean(g('EstatusCancelacion'))}",
                pac=self.name,
                operation="cancel",
                write=False,
            )
        acuse = f("Acuse")
        return CancelResult(
            uuid=uuid.upper(),
            accepted=True,
            estatus=self._clean(g("EstatusCancelacion")) or None,
            acuse=to_bytes(acuse) if acuse else None,
            code=estatus_uuid,
            message=cod or None,
        )

    def acuse_cancelacion(self, uuid: str) -> bytes:
        svc = self._need_cancel("get_receipt")
        r = self._call(
            svc, "get_receipt", write=False, taxpayer_id=self.rfc_emisor, uuid=uuid, type="C"
        )
        f = reader(r)
        if r is not None and f("success") and f("receipt"):
            return to_bytes(f("receipt"))
        if r is None:
            raise garbled(self.name, "get_receipt", write=False, detail="respuesta vacía")
        raise PacNotFound(
            "FINKOK-ACUSE",
            f"Finkok no tiene acuse de cancelación para {uuid}: {self._clean(f('error'))}",
            pac=self.name,
            operation="get_receipt",
        )

    def sat_status(
        self, uuid: str, rfc_emisor: str, rfc_receptor: str, total: Decimal | str
    ) -> SatStatus:
        """SAT's status of a CFDI through Finkok's ``get_sat_status``."""
        svc = self._need_cancel("get_sat_status")
        r = self._call(
            svc,
            "get_sat_status",
            write=False,
            taxpayer_id=rfc_emisor,
            rtaxpayer_id=rfc_receptor,
            uuid=uuid,
            total=str(total),
        )
        if r is None:
            raise garbled(self.name, "get_sat_status", write=False, detail="respuesta vacía")
        f = reader(r)
        sat = reader(f("sat"))
        if f("sat") is None:
            err = self._clean(f("error"))
            if err:
                raise _sat_error(err)
            raise garbled(self.name, "get_sat_status", write=False, detail="sin acuse del SAT")
        return SatStatus(
            codigo_estatus=sat("CodigoEstatus"),
            estado=sat("Estado"),
            es_cancelable=sat("EsCancelable"),
            estatus_cancelacion=sat("EstatusCancelacion"),
            validacion_efos=sat("ValidacionEFOS"),
        )


def _sat_error(text: str) -> PacError:
    return PacInvalid(
        "FINKOK-SAT",
        f"Finkok no pudo consultar el estado en el SAT: {text}",
        pac="finkok",
        operation="get_sat_status",
    )
