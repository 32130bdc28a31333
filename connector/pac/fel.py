"""Facturación en Línea (FEL): Timbrado (WSCFDI33) and Conexión Remota (CR33) over zeep.

Over 500 lines for a reason: one PAC's driver, its two services sharing the session, the
credentials and the mapping of FEL's answers to our results.

Two services, both optional, both from configuration:

* **Timbrado** (``timbrado_url``): the connector sends its own sealed XML —
  ``TimbrarCFDI``, ``ConsultarTimbrePorReferencia``, ``CancelarCFDI`` (needs the emisor's
  CSD key), ``ConsultarCreditos``, ``CambiarPassword``, ``ObtenerAcuseEnvio``,
  ``ObtenerAcuseCancelacion``.
* **Conexión Remota** (``remote_url`` + ``cuenta``): FEL builds, seals and stamps from the data —
  ``GenerarCFDI40`` (``Comprobante40R``), ``ObtenerXMLPorReferencia40``, ``CancelarCFDIsV4``,
  ``ObtenerNumerosCreditos``, ``ObtenerAcuseEnvio40``, ``ObtenerAcuseCancelacion40``.

When both are configured the Timbrado service answers the operations both offer, except
cancellation, which goes through Conexión Remota (it uses the CSD stored at FEL, so the
connector does not need to send the private key).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any, ClassVar

import requests

from connector.cfdi.model import Comprobante

from .base import (
    CancelResult,
    CreditPackage,
    Credits,
    Secret,
    StampResult,
    Timeouts,
    iso,
    reader,
    redact,
    stamp_result_from_xml,
    to_bytes,
)
from .errors import (
    ACCOUNT_CODES,
    PacError,
    PacInvalid,
    PacNotFound,
    PacTransient,
    PacUnsupported,
    error_for_code,
    kind_of,
)
from .failures import garbled
from .soap import SoapPacDriver, SoapService

WSDL_TIMBRADO = "fel_WSCFDI33.offline.RECONSTRUCTED.wsdl"
WSDL_REMOTE = "fel_CR33_ConexionRemota_TEST.wsdl"
# Timbrado's two calls per invoice go by the lxml template path, not zeep (connector.pac.soap_lxml)
LXML_OPERATIONS = ("TimbrarCFDI", "ObtenerAcuseEnvio")

# "307 - El CFDI contiene un timbre previo", "[AUTH] Usuario…", "CFDI40101: …"
_CODE_IN_TEXT = re.compile(r"^\s*\[?([A-Z]*[0-9]{3,6}|[A-Z][A-Z0-9-]{2,20})\]?\s*[-:|]\s*")


def split_code(text: str | None) -> tuple[str | None, str]:
    """(code, message) from FEL's ``ErrorGeneral`` texts, which carry the code in front."""
    text = (text or "").strip()
    m = _CODE_IN_TEXT.match(text)
    if m:
        return m.group(1), text[m.end() :].strip() or text
    return None, text


class FelDriver(SoapPacDriver):
    """FEL over SOAP. Credentials and addresses come from configuration."""

    name: ClassVar[str] = "fel"

    def __init__(
        self,
        usuario: str,
        password: str,
        *,
        cuenta: str | None = None,
        timbrado_url: str | None = None,
        remote_url: str | None = None,
        timeouts: Timeouts | None = None,
        pool_size: int = 10,
        verify: bool | str = True,
        proxy: str | None = None,
        session: requests.Session | None = None,
        cancel_rfc: str | None = None,
        cancel_key_der: bytes | None = None,
        cancel_key_password: str | None = None,
    ) -> None:
        if not timbrado_url and not remote_url:
            raise ValueError("FEL necesita la dirección de Timbrado o de Conexión Remota.")
        self.usuario = usuario
        self.cuenta = cuenta
        self._password = Secret(password)
        self._cancel_rfc = cancel_rfc
        self._cancel_key = (
            Secret(base64.b64encode(cancel_key_der).decode()) if cancel_key_der else None
        )
        self._cancel_key_password = Secret(cancel_key_password) if cancel_key_password else None
        self._open(session, pool_size, verify, timeouts, proxy)
        self.timbrado = self._service(WSDL_TIMBRADO, timbrado_url, LXML_OPERATIONS)
        self.remote = self._service(WSDL_REMOTE, remote_url)

    def __repr__(self) -> str:
        return (
            f"FelDriver(usuario={self.usuario!r}, cuenta={self.cuenta!r}, "
            f"timbrado={getattr(self.timbrado, 'address', None)!r}, "
            f"remote={getattr(self.remote, 'address', None)!r})"
        )

    # --- helpers ---------------------------------------------------------------------------

    @property
    def _secrets(self) -> list[str]:
        out = [self._password.get(), *self._network_secrets]
        if self._cancel_key_password:
            out.append(self._cancel_key_password.get())
        if self._cancel_key:
            out.append(self._cancel_key.get())
        return out

    def _need(self, svc: SoapService | None, operation: str, what: str) -> SoapService:
        if svc is None:
            raise PacUnsupported(self.name, f"{operation} (falta configurar {what})")
        return svc

    def _t(self, operation: str, *, write: bool = False, **params: Any) -> Any:
        svc = self._need(self.timbrado, operation, "la dirección de Timbrado")
        return svc.call(
            operation,
            pac=self.name,
            write=write,
            secrets=self._secrets,
            usuario=self.usuario,
            password=self._password.get(),
            **params,
        )

    def _r(self, operation: str, *, write: bool = False, **params: Any) -> Any:
        svc = self._need(self.remote, operation, "la dirección de Conexión Remota")
        if not self.cuenta:
            raise PacUnsupported(self.name, f"{operation} (falta configurar la cuenta)")
        cred = {"Cuenta": self.cuenta, "Usuario": self.usuario, "Password": self._password.get()}
        return svc.call(
            operation,
            pac=self.name,
            write=write,
            secrets=self._secrets,
            credenciales=cred,
            **params,
        )

    def _tfd_error(self, r: Any, operation: str, *, write: bool) -> PacError:
        f = reader(r)
        code = str(f("CodigoRespuesta") or "").strip() or None
        msg = self._clean(f("MensajeError"))
        detail = self._clean(f("MensajeErrorDetallado"))
        if not code:
            code, msg = split_code(msg)
        text = f"{msg} {detail}".strip() if detail and detail != msg else msg
        return error_for_code(
            code or "FEL-ERROR",
            f"FEL rechazó '{operation}': {text}" if text else f"FEL rechazó '{operation}'.",
            pac=self.name,
            operation=operation,
            write=write,
        )

    def _cr_error(self, r: Any, operation: str, *, write: bool) -> PacError:
        f = reader(r)
        code, msg = split_code(self._clean(f("ErrorGeneral")))
        detail = self._clean(f("ErrorDetallado"))
        if not code and detail:
            code, detail = split_code(detail)
        text = f"{msg} {detail}".strip() if detail and detail != msg else msg
        return error_for_code(
            code or "FEL-ERROR",
            f"FEL rechazó '{operation}': {text}" if text else f"FEL rechazó '{operation}'.",
            pac=self.name,
            operation=operation,
            write=write,
        )

    @staticmethod
    def _creditos(r: Any) -> int | None:
        v = reader(r)("CreditosRestantes")
        try:
            return int(v) if v is not None else None
        except (TypeError, ValueError):
            return None

    def _tfd_stamp(self, r: Any, operation: str, *, write: bool, previous: bool) -> StampResult:
        f = reader(r)
        timbre = reader(f("Timbre"))
        return stamp_result_from_xml(
            to_bytes(f("XMLResultado")),
            pac=self.name,
            operation=operation,
            write=write,
            previously_stamped=previous,
            creditos_restantes=self._creditos(r),
            code=str(f("CodigoRespuesta") or "") or None,
            message=self._clean(f("MensajeError")) or None,
            fallback={
                "uuid": timbre("UUID"),
                "fecha": timbre("FechaTimbrado"),
                "cert": timbre("NumeroCertificadoSAT"),
            },
        )

    def _not_found_or_error(self, err: PacError, referencia: str) -> PacError:
        """During recover, a rejection means 'not there' unless it says auth/transient."""
        if isinstance(err, PacTransient | PacNotFound):
            return err
        if err.code in ACCOUNT_CODES:
            return err  # authentication, account: the caller must know
        return PacNotFound(
            err.code,
            f"FEL no tiene un comprobante timbrado con la referencia '{referencia}'.",
            pac=self.name,
            operation="recover",
        )

    # --- stamping ----------------------------------------------------------------------------

    def stamp(self, sealed_xml: bytes, referencia: str) -> StampResult:
        try:
            text = sealed_xml.decode("utf-8")
        except UnicodeDecodeError:
            raise PacInvalid(
                "CONN-PAC-SOLICITUD",
                "El XML sellado no está en UTF-8; no se envía al PAC.",
                pac=self.name,
                operation="TimbrarCFDI",
            ) from None
        r = self._t("TimbrarCFDI", write=True, cadenaXML=text, referencia=referencia)
        if r is None:
            raise garbled(self.name, "TimbrarCFDI", write=True, detail="respuesta vacía")
        f = reader(r)
        code = str(f("CodigoRespuesta") or "").strip()
        if f("OperacionExitosa") and f("XMLResultado"):
            return self._tfd_stamp(r, "TimbrarCFDI", write=True, previous=code == "307")
        if code == "307" or kind_of(split_code(self._clean(f("MensajeError")))[0]) == (
            "previously_stamped"
        ):
            if f("XMLResultado"):
                return self._tfd_stamp(r, "TimbrarCFDI", write=True, previous=True)
            return self.recover(referencia)
        if f("OperacionExitosa"):
            raise garbled(self.name, "TimbrarCFDI", write=True, detail="éxito sin XML")
        raise self._tfd_error(r, "TimbrarCFDI", write=True)

    def generate(self, c: Comprobante, referencia: str) -> StampResult:
        from connector.cfdi.errors import CfdiError

        from . import fel_remote_types

        self._need(self.remote, "GenerarCFDI40", "la dirección de Conexión Remota")
        try:
            cfdi = fel_remote_types.to_comprobante40r(c, referencia=referencia)
        except CfdiError as exc:
            raise PacInvalid(
                exc.code,
                f"No se puede enviar a Conexión Remota: {exc}",
                pac=self.name,
                operation="GenerarCFDI40",
            ) from None
        r = self._r("GenerarCFDI40", write=True, cfdi=cfdi)
        if r is None:
            raise garbled(self.name, "GenerarCFDI40", write=True, detail="respuesta vacía")
        f = reader(r)
        if f("OperacionExitosa") and f("XML"):
            return stamp_result_from_xml(
                to_bytes(f("XML")), pac=self.name, operation="GenerarCFDI40", write=True
            )
        code, _ = split_code(self._clean(f("ErrorGeneral")))
        if kind_of(code) == "previously_stamped":
            if f("XML"):
                return stamp_result_from_xml(
                    to_bytes(f("XML")),
                    pac=self.name,
                    operation="GenerarCFDI40",
                    write=True,
                    previously_stamped=True,
                )
            return self.recover(referencia, remote=True)
        if f("OperacionExitosa"):
            raise garbled(self.name, "GenerarCFDI40", write=True, detail="éxito sin XML")
        raise self._cr_error(r, "GenerarCFDI40", write=True)

    def recover(self, referencia: str, *, remote: bool | None = None) -> StampResult:
        """The stamp FEL holds for ``referencia``: Timbrado first, then Conexión Remota.

        ``remote=True``/``False`` asks only that service. ``PacNotFound`` when neither has it.
        """
        services: list[bool] = []
        if remote is not True and self.timbrado is not None:
            services.append(False)
        if remote is not False and self.remote is not None and self.cuenta:
            services.append(True)
        if not services:
            raise PacUnsupported(self.name, "recover")
        last: PacError | None = None
        for use_remote in services:
            try:
                return (
                    self._recover_remote(referencia)
                    if use_remote
                    else self._recover_timbrado(referencia)
                )
            except PacNotFound as exc:
                last = exc
        assert last is not None
        raise last

    def recover_generated(self, referencia: str) -> StampResult:
        """A ``GenerarCFDI40`` result lives in Conexión Remota: ask there only."""
        return self.recover(referencia, remote=True)

    def _recover_timbrado(self, referencia: str) -> StampResult:
        op = "ConsultarTimbrePorReferencia"
        r = self._t(op, referencia=referencia)
        if r is None:
            raise garbled(self.name, op, write=False, detail="respuesta vacía")
        f = reader(r)
        if f("XMLResultado"):
            return self._tfd_stamp(r, op, write=False, previous=True)
        raise self._not_found_or_error(self._tfd_error(r, op, write=False), referencia)

    def _recover_remote(self, referencia: str) -> StampResult:
        op = "ObtenerXMLPorReferencia40"
        r = self._r(op, referencia=referencia)
        if r is None:
            raise garbled(self.name, op, write=False, detail="respuesta vacía")
        f = reader(r)
        if f("XML"):
            return stamp_result_from_xml(
                to_bytes(f("XML")),
                pac=self.name,
                operation=op,
                write=False,
                previously_stamped=True,
            )
        raise self._not_found_or_error(self._cr_error(r, op, write=False), referencia)

    # --- cancellation ------------------------------------------------------------------------

    def cancel(
        self,
        uuid: str,
        motivo: str,
        folio_sustitucion: str | None,
        rfc_receptor: str,
        total: Decimal,
    ) -> CancelResult:
        if motivo == "01" and not folio_sustitucion:
            raise PacInvalid(
                "CONN-PAC-CANCELACION",
                "El motivo 01 requiere el UUID que sustituye (folio de sustitución).",
                pac=self.name,
                operation="cancel",
            )
        if self.remote is not None and self.cuenta:
            return self._cancel_remote(uuid, motivo, folio_sustitucion)
        if self.timbrado is not None and self._cancel_key and self._cancel_rfc:
            return self._cancel_timbrado(uuid, motivo, folio_sustitucion, rfc_receptor, total)
        raise PacUnsupported(
            self.name, "cancel (configure Conexión Remota o la llave del CSD para Timbrado)"
        )

    def _cancel_outcome(
        self,
        uuid: str,
        operation: str,
        code: str | None,
        message: str,
        es_cancelable: str | None,
        acuse: Any,
    ) -> CancelResult:
        """201 request accepted, 202 already cancelled (asking again is harmless): both are
        success. A 201 is not "cancelled": for a CFDI "Cancelable con aceptación" it only files
        the request (see ``connector.pac.cancellation``), so no estatus is claimed for it."""
        if code in ("201", "202"):
            return CancelResult(
                uuid=uuid.upper(),
                accepted=True,
                estatus=None if code == "201" else "Previamente cancelado",
                es_cancelable=es_cancelable or None,
                acuse=to_bytes(acuse) if acuse else None,
                code=code,
                message=message or None,
            )
        raise error_for_code(
            code or "FEL-CANCELACION",
            f"FEL no canceló {uuid}: {message or 'sin detalle'}",
            pac=self.name,
            operation=operation,
            write=False,
        )

    @staticmethod
    def _mine(items: list[Any], uuid: str) -> Any:
        return next(
            (d for d in items if str(reader(d)("UUID") or "").upper() == uuid.upper()), None
        )

    def _cancel_remote(self, uuid: str, motivo: str, folio: str | None) -> CancelResult:
        op = "CancelarCFDIsV4"
        item = {"UUID": uuid, "Motivo": motivo, "FolioSustitucion": folio or None}
        r = self._r(op, write=True, uuids={"UUIDMotivoCancelacionCR": [item]})
        f, d = self._cancel_detail(r, op, uuid, ("UUIDS", "DetalleCancelacionCR"), self._cr_error)
        code = str(d("RespuestaServicio") or "").strip() or None
        if code and not code.isdigit():
            code, _ = split_code(code)
        if code is None and f("OperacionExitosa") and not d("MensajeError"):
            code = "201"
        return self._cancel_outcome(
            uuid,
            op,
            code,
            self._clean(d("MensajeError")),
            self._clean(d("EsCancelable")),
            f("Acuse"),
        )

    def _cancel_detail(
        self, r: Any, op: str, uuid: str, path: tuple[str, str], error: Callable[..., PacError]
    ) -> tuple[Any, Any]:
        """(reply reader, reader of this UUID's detail) of a cancellation reply; a reply
        without it is garbled when it says it worked, else the PAC's error."""
        if r is None:
            raise garbled(self.name, op, write=True, detail="respuesta vacía")
        f = reader(r)
        mine = self._mine(reader(f(path[0]))(path[1]) or [], uuid)
        if mine is None:
            if f("OperacionExitosa"):
                raise garbled(self.name, op, write=True, detail="sin detalle del UUID")
            raise error(r, op, write=False)
        return f, reader(mine)

    def _cancel_timbrado(
        self, uuid: str, motivo: str, folio: str | None, rfc_receptor: str, total: Decimal
    ) -> CancelResult:
        op = "CancelarCFDI"
        assert self._cancel_key is not None
        item = {
            "UUID": uuid,
            "Motivo": motivo,
            "FolioSustitucion": folio or None,
            "RFCReceptor": rfc_receptor,
            "Total": Decimal(total),
        }
        r = self._t(
            op,
            write=True,
            rFCEmisor=self._cancel_rfc,
            listaCFDI={"DetalleCFDICancelacion": [item]},
            clavePrivada_Base64=self._cancel_key.get(),
            passwordClavePrivada=(
                self._cancel_key_password.get() if self._cancel_key_password else ""
            ),
        )
        f, d = self._cancel_detail(
            r, op, uuid, ("DetallesCancelacion", "DetalleCancelacion"), self._tfd_error
        )
        code = str(d("CodigoResultado") or "").strip() or None
        return self._cancel_outcome(
            uuid,
            op,
            code,
            self._clean(d("MensajeResultado")),
            self._clean(d("EsCancelable")),
            f("XMLAcuse"),
        )

    # --- account -----------------------------------------------------------------------------

    def credits(self) -> Credits:
        if self.timbrado is not None:
            op = "ConsultarCreditos"
            r = self._t(op)
            if r is None:
                raise garbled(self.name, op, write=False, detail="respuesta vacía")
            f = reader(r)
            if not f("OperacionExitosa"):
                raise self._tfd_error(r, op, write=False)
            paquetes = []
            for p in reader(f("Paquetes"))("DetallesPaqueteCreditos") or []:
                g = reader(p)
                paquetes.append(
                    CreditPackage(
                        nombre=g("Paquete"),
                        timbres=g("Timbres"),
                        restantes=g("TimbresRestantes"),
                        usados=g("TimbresUsados"),
                        vigente=g("Vigente"),
                        vencimiento=iso(g("FechaVencimiento")) or None,
                    )
                )
            vigentes = [p for p in paquetes if p.vigente is not False]
            return Credits(
                restantes=sum(p.restantes or 0 for p in vigentes),
                usados=sum(p.usados or 0 for p in paquetes),
                paquetes=tuple(paquetes),
            )
        op = "ObtenerNumerosCreditos"
        r = self._r(op)
        if r is None:
            raise garbled(self.name, op, write=False, detail="respuesta vacía")
        f = reader(r)
        if not f("OperacionExitosa"):
            raise self._cr_error(r, op, write=False)
        return Credits(restantes=f("CreditosRestantes"), usados=f("CreditosUsados"))

    def _acuse(self, uuid: str, t_op: str, r_op: str) -> bytes:
        if self.timbrado is not None:
            r = self._t(t_op, uUID=uuid)
            f = reader(r)
            if r is not None and f("XMLResultado"):
                return to_bytes(f("XMLResultado"))
            if r is None:
                raise garbled(self.name, t_op, write=False, detail="respuesta vacía")
            raise self._tfd_error(r, t_op, write=False)
        r = self._r(r_op, uuid=uuid)
        f = reader(r)
        if r is not None and f("XML"):
            return to_bytes(f("XML"))
        if r is None:
            raise garbled(self.name, r_op, write=False, detail="respuesta vacía")
        raise self._cr_error(r, r_op, write=False)

    def acuse_envio(self, uuid: str) -> bytes:
        return self._acuse(uuid, "ObtenerAcuseEnvio", "ObtenerAcuseEnvio40")

    def acuse_cancelacion(self, uuid: str) -> bytes:
        return self._acuse(uuid, "ObtenerAcuseCancelacion", "ObtenerAcuseCancelacion40")

    def change_password(self, new: str) -> None:
        op = "CambiarPassword"
        if not new or len(new) < 8:
            raise PacInvalid(
                "CONN-PAC-PASSWORD",
                "La nueva contraseña debe tener al menos 8 caracteres.",
                pac=self.name,
                operation=op,
            )
        svc = self._need(self.timbrado, op, "la dirección de Timbrado")
        secrets = [*self._secrets, new]
        r = svc.call(
            op,
            pac=self.name,
            write=True,
            secrets=secrets,
            usuario=self.usuario,
            passwordActual=self._password.get(),
            passwordNuevo=new,
        )
        if r is None:
            raise garbled(self.name, op, write=True, detail="respuesta vacía")
        if not reader(r)("OperacionExitosa"):
            err = self._tfd_error(r, op, write=True)
            err.message = redact(err.message, secrets)
            raise err
        self._password = Secret(new)
