"""The SOAP operations of each service the sandbox speaks, as plain functions.

Over 500 lines for a reason: one small function per SOAP operation of four services, kept side
by side so the same operation in each PAC's dialect reads together.

Each operation takes the request deserialized by zeep from the shipped WSDL (so parameter names
are exactly the WSDL's: ``uUID``, ``rFCEmisor``, ``credenciales.Usuario``…) and returns the
keyword arguments for the WSDL's output message plus what to write in the request log. zeep
serializes the reply from the same WSDL, so element names, namespaces and WCF's alphabetical
order are the WSDL's by construction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from lxml import etree
from zeep.helpers import serialize_object

from connector.cfdi.model import NS_CFDI, NS_TFD

from .stamping import MSG, Outcome, PacEngine, parse_expresion_impresa
from .store import StampRecord

_C = "{" + NS_CFDI + "}"
_T = "{" + NS_TFD + "}"


@dataclass
class LogEntry:
    outcome: str = "ok"
    code: str | None = None
    account: str | None = None
    referencia: str | None = None
    uuid: str | None = None


@dataclass
class Reply:
    body: dict[str, Any]
    log: LogEntry = field(default_factory=LogEntry)


Handler = Callable[[PacEngine, Any], Reply]


def _tfd(record: StampRecord) -> dict[str, str]:
    root = etree.fromstring(record.xml, etree.XMLParser(resolve_entities=False, no_network=True))
    tfd = root.find(f"{_C}Complemento/{_T}TimbreFiscalDigital")
    return dict(tfd.attrib) if tfd is not None else {}


def _log(o: Outcome, account: str | None, referencia: str | None = None) -> LogEntry:
    if o.ok:
        outcome = "ok"
    elif o.code == "307":
        outcome = "duplicate"
    else:
        outcome = "error"
    return LogEntry(
        outcome=outcome,
        code=o.code,
        account=account,
        referencia=referencia or (o.record.referencia if o.record else None),
        uuid=o.record.uuid if o.record else None,
    )


def _auth_failed(account: str | None, referencia: str | None = None) -> LogEntry:
    return LogEntry(outcome="auth", code="203", account=account, referencia=referencia)


# --- FEL Timbrado (WSCFDI33) -------------------------------------------------------------------


def _respuesta_tfd(o: Outcome, *, xml: bytes | None = None, credits: int | None = None) -> dict:
    out: dict[str, Any] = {
        "OperacionExitosa": o.ok,
        "CodigoRespuesta": o.code,
        "MensajeError": None if o.ok else o.message,
        "MensajeErrorDetallado": o.detail,
    }
    if credits is not None:
        out["CreditosRestantes"] = credits
    if o.record is not None:
        out["XMLResultado"] = (xml if xml is not None else o.record.xml).decode("utf-8")
        t = _tfd(o.record)
        out["Timbre"] = {
            "Estado": "Cancelado" if o.record.status == "cancelado" else "Vigente",
            "FechaTimbrado": t.get("FechaTimbrado"),
            "NumeroCertificadoSAT": t.get("NoCertificadoSAT"),
            "SelloCFD": t.get("SelloCFD"),
            "SelloSAT": t.get("SelloSAT"),
            "UUID": o.record.uuid,
        }
    return out


def _fel_denied() -> dict[str, Any]:
    return {"OperacionExitosa": False, "CodigoRespuesta": "203", "MensajeError": MSG["203"]}


def fel_timbrar(engine: PacEngine, req: Any) -> Reply:
    if engine.authenticate(req.usuario, req.password) is None:
        return Reply(
            {"TimbrarCFDIResult": _fel_denied()}, _auth_failed(req.usuario, req.referencia)
        )
    xml = (req.cadenaXML or "").encode("utf-8")
    o = engine.stamp(req.usuario, xml, req.referencia)
    credits = engine.store.credits(req.usuario)
    return Reply(
        {"TimbrarCFDIResult": _respuesta_tfd(o, credits=credits)},
        _log(o, req.usuario, req.referencia),
    )


def _fel_query(result: str, find: Callable[[PacEngine, Any], Outcome], acuse: str | None = None):
    def handler(engine: PacEngine, req: Any) -> Reply:
        if engine.authenticate(req.usuario, req.password) is None:
            return Reply({result: _fel_denied()}, _auth_failed(req.usuario))
        o = find(engine, req)
        xml = None
        if o.ok and o.record is not None and acuse is not None:
            xml = getattr(o.record, acuse)
            if xml is None:
                o = Outcome(
                    False, "404", "El comprobante no tiene acuse de cancelación (no está cancelado)"
                )
        body = _respuesta_tfd(o, xml=xml)
        return Reply({result: body}, _log(o, req.usuario, getattr(req, "referencia", None)))

    return handler


fel_consultar_referencia = _fel_query(
    "ConsultarTimbrePorReferenciaResult", lambda e, r: e.by_referencia(r.usuario, r.referencia)
)
fel_consultar_sello = _fel_query(
    "ConsultarTimbrePorSelloResult", lambda e, r: e.by_sello(r.usuario, r.sello)
)
fel_acuse_envio = _fel_query(
    "ObtenerAcuseEnvioResult", lambda e, r: e.by_uuid(r.usuario, r.uUID), acuse="acuse_envio"
)
fel_acuse_cancelacion = _fel_query(
    "ObtenerAcuseCancelacionResult",
    lambda e, r: e.by_uuid(r.usuario, r.uUID),
    acuse="acuse_cancelacion",
)


def fel_cambiar_password(engine: PacEngine, req: Any) -> Reply:
    o = engine.change_password(req.usuario, req.passwordActual or "", req.passwordNuevo)
    body = {
        "OperacionExitosa": o.ok,
        "CodigoRespuesta": o.code,
        "MensajeError": None if o.ok else o.message,
    }
    outcome = "ok" if o.ok else ("auth" if o.code == "203" else "error")
    return Reply({"CambiarPasswordResult": body}, LogEntry(outcome, o.code, req.usuario))


def fel_consultar_creditos(engine: PacEngine, req: Any) -> Reply:
    state = engine.authenticate(req.usuario, req.password)
    if state is None:
        body = {"OperacionExitosa": False, "MensajeError": MSG["203"]}
        return Reply({"ConsultarCreditosResult": body}, _auth_failed(req.usuario))
    now = datetime.now().replace(microsecond=0)
    paquete = {
        "EnUso": True,
        "FechaActivacion": now - timedelta(days=1),
        "FechaVencimiento": now + timedelta(days=365),
        "Paquete": "SANDBOX",
        "Timbres": state.creditos + state.usados,
        "TimbresRestantes": state.creditos,
        "TimbresUsados": state.usados,
        "Vigente": True,
    }
    body = {"OperacionExitosa": True, "Paquetes": {"DetallesPaqueteCreditos": [paquete]}}
    return Reply({"ConsultarCreditosResult": body}, LogEntry("ok", "200", req.usuario))


def fel_cancelar(engine: PacEngine, req: Any) -> Reply:
    if engine.authenticate(req.usuario, req.password) is None:
        body = {"OperacionExitosa": False, "MensajeError": MSG["203"]}
        return Reply({"CancelarCFDIResult": body}, _auth_failed(req.usuario))
    items = serialize_object(req.listaCFDI, dict) or {}
    detalles = []
    acuse: bytes | None = None
    ok = True
    uuids = []
    for item in items.get("DetalleCFDICancelacion") or []:
        o = engine.cancel(
            req.usuario,
            item.get("UUID"),
            item.get("Motivo"),
            item.get("FolioSustitucion"),
            req.rFCEmisor,
        )
        uuids.append(item.get("UUID"))
        ok = ok and o.ok
        if o.ok and o.record is not None:
            acuse = o.record.acuse_cancelacion
        detalles.append(
            {
                "CodigoResultado": o.code,
                "EsCancelable": engine.es_cancelable(o.record) if o.ok and o.record else None,
                "MensajeResultado": o.message,
                "UUID": item.get("UUID"),
            }
        )
    if not detalles:
        ok = False
    body = {
        "DetallesCancelacion": {"DetalleCancelacion": detalles},
        "MensajeError": None if ok else "No se cancelaron todos los UUID solicitados",
        "OperacionExitosa": ok,
        "XMLAcuse": acuse.decode("utf-8") if acuse else None,
    }
    code = detalles[0]["CodigoResultado"] if detalles else None
    return Reply(
        {"CancelarCFDIResult": body},
        LogEntry("ok" if ok else "error", code, req.usuario, uuid=",".join(filter(None, uuids))),
    )


FEL_TIMBRADO: dict[str, Handler] = {
    "TimbrarCFDI": fel_timbrar,
    "CancelarCFDI": fel_cancelar,
    "ConsultarCreditos": fel_consultar_creditos,
    "CambiarPassword": fel_cambiar_password,
    "ObtenerAcuseEnvio": fel_acuse_envio,
    "ObtenerAcuseCancelacion": fel_acuse_cancelacion,
    "ConsultarTimbrePorReferencia": fel_consultar_referencia,
    "ConsultarTimbrePorSello": fel_consultar_sello,
}


# --- FEL Conexión Remota ----------------------------------------------------------------------


def _cr_user(engine: PacEngine, req: Any) -> str | None:
    cred = req.credenciales
    if cred is None:
        return None
    state = engine.authenticate(cred.Usuario, cred.Password, cred.Cuenta or "")
    return state.usuario if state else None


def _cr_denied() -> dict[str, Any]:
    return {"OperacionExitosa": False, "ErrorGeneral": "203 - " + MSG["203"]}


def _cr_operacion(o: Outcome, xml: bytes | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "OperacionExitosa": o.ok,
        "ErrorGeneral": None if o.ok else f"{o.code} - {o.message}",
        "ErrorDetallado": o.detail,
    }
    if o.record is not None:
        out["XML"] = (xml if xml is not None else o.record.xml).decode("utf-8")
        out["FechaGenerada"] = o.record.fecha_timbrado
    return out


def _cr_account(req: Any) -> str | None:
    return req.credenciales.Usuario if req.credenciales is not None else None


def cr_generar(engine: PacEngine, req: Any) -> Reply:
    data = serialize_object(req.cfdi, dict) if req.cfdi is not None else {}
    referencia = (data or {}).get("Referencia")
    usuario = _cr_user(engine, req)
    if usuario is None:
        log = _auth_failed(_cr_account(req), referencia)
        return Reply({"GenerarCFDI40Result": _cr_denied()}, log)
    o = engine.generate(usuario, data or {})
    return Reply({"GenerarCFDI40Result": _cr_operacion(o)}, _log(o, usuario, referencia))


def _cr_query(
    result: str, find: Callable[[PacEngine, str, Any], Outcome], acuse: str | None = None
):
    def handler(engine: PacEngine, req: Any) -> Reply:
        usuario = _cr_user(engine, req)
        if usuario is None:
            return Reply({result: _cr_denied()}, _auth_failed(_cr_account(req)))
        o = find(engine, usuario, req)
        xml = None
        if o.ok and o.record is not None and acuse is not None:
            xml = getattr(o.record, acuse)
            if xml is None:
                o = Outcome(
                    False, "404", "El comprobante no tiene acuse de cancelación (no está cancelado)"
                )
        body = _cr_operacion(o, xml)
        return Reply({result: body}, _log(o, usuario, getattr(req, "referencia", None)))

    return handler


cr_xml_por_referencia = _cr_query(
    "ObtenerXMLPorReferencia40Result", lambda e, u, r: e.by_referencia(u, r.referencia)
)
cr_acuse_envio = _cr_query(
    "ObtenerAcuseEnvio40Result", lambda e, u, r: e.by_uuid(u, r.uuid), acuse="acuse_envio"
)
cr_acuse_cancelacion = _cr_query(
    "ObtenerAcuseCancelacion40Result",
    lambda e, u, r: e.by_uuid(u, r.uuid),
    acuse="acuse_cancelacion",
)


def cr_creditos(engine: PacEngine, req: Any) -> Reply:
    usuario = _cr_user(engine, req)
    if usuario is None:
        return Reply({"ObtenerNumerosCreditosResult": _cr_denied()}, _auth_failed(_cr_account(req)))
    state = engine.store.account(usuario)
    assert state is not None
    body = {
        "CreditosRestantes": state.creditos,
        "CreditosUsados": state.usados,
        "OperacionExitosa": True,
    }
    return Reply({"ObtenerNumerosCreditosResult": body}, LogEntry("ok", "200", usuario))


def cr_cancelar(engine: PacEngine, req: Any) -> Reply:
    usuario = _cr_user(engine, req)
    if usuario is None:
        return Reply({"CancelarCFDIsV4Result": _cr_denied()}, _auth_failed(_cr_account(req)))
    items = (serialize_object(req.uuids, dict) or {}).get("UUIDMotivoCancelacionCR") or []
    detalles = []
    acuse: bytes | None = None
    ok = bool(items)
    for item in items:
        o = engine.cancel(
            usuario, item.get("UUID"), item.get("Motivo"), item.get("FolioSustitucion")
        )
        ok = ok and o.ok
        if o.ok and o.record is not None:
            acuse = o.record.acuse_cancelacion
        detalles.append(
            {
                "EsCancelable": engine.es_cancelable(o.record) if o.ok and o.record else None,
                "MensajeError": None if o.ok else o.message,
                "RespuestaServicio": o.code,
                "UUID": item.get("UUID"),
            }
        )
    body = {
        "Acuse": acuse.decode("utf-8") if acuse else None,
        "ErrorGeneral": None if ok else "No se cancelaron todos los UUID solicitados",
        "OperacionExitosa": ok,
        "UUIDS": {"DetalleCancelacionCR": detalles},
    }
    code = detalles[0]["RespuestaServicio"] if detalles else None
    uuids = ",".join(str(i.get("UUID")) for i in items)
    return Reply(
        {"CancelarCFDIsV4Result": body},
        LogEntry("ok" if ok else "error", code, usuario, uuid=uuids or None),
    )


FEL_REMOTE: dict[str, Handler] = {
    "GenerarCFDI40": cr_generar,
    "ObtenerXMLPorReferencia40": cr_xml_por_referencia,
    "CancelarCFDIsV4": cr_cancelar,
    "ObtenerNumerosCreditos": cr_creditos,
    "ObtenerAcuseEnvio40": cr_acuse_envio,
    "ObtenerAcuseCancelacion40": cr_acuse_cancelacion,
}


# --- Finkok -------------------------------------------------------------------------------------


def _incidencia(o: Outcome, rfc: str | None = None) -> dict[str, Any]:
    return {
        "Incidencia": [
            {
                "CodigoError": o.code,
                "MensajeIncidencia": o.message,
                "ExtraInfo": o.detail,
                "RfcEmisor": rfc,
                "Uuid": o.record.uuid if o.record else None,
                "FechaRegistro": datetime.now().isoformat(timespec="seconds"),
            }
        ]
    }


def _acuse_recepcion(o: Outcome) -> dict[str, Any]:
    if o.ok and o.record is not None:
        t = _tfd(o.record)
        return {
            "xml": o.record.xml.decode("utf-8"),
            "UUID": o.record.uuid,
            "Fecha": o.record.fecha_timbrado,
            "CodEstatus": MSG["200"],
            "SatSeal": t.get("SelloSAT"),
            "NoCertificadoSAT": t.get("NoCertificadoSAT"),
        }
    out: dict[str, Any] = {"Incidencias": _incidencia(o, o.record.rfc_emisor if o.record else None)}
    if o.record is not None:  # 307: the UUID is given back; recover the XML with `stamped`
        out["UUID"] = o.record.uuid
        out["Fecha"] = o.record.fecha_timbrado
    return out


def finkok_stamp(engine: PacEngine, req: Any) -> Reply:
    if engine.authenticate(req.username, req.password) is None:
        o = Outcome(False, "203", MSG["203"])
        return Reply({"stampResult": _acuse_recepcion(o)}, _auth_failed(req.username))
    o = engine.stamp(req.username, bytes(req.xml or b""))
    return Reply({"stampResult": _acuse_recepcion(o)}, _log(o, req.username))


def finkok_quick_stamp(engine: PacEngine, req: Any) -> Reply:
    """``quick_stamp``: the same checks and stamp as ``stamp`` in the sandbox."""
    reply = finkok_stamp(engine, req)
    return Reply({"quick_stampResult": reply.body["stampResult"]}, reply.log)


def finkok_stamped(engine: PacEngine, req: Any) -> Reply:
    if engine.authenticate(req.username, req.password) is None:
        o = Outcome(False, "203", MSG["203"])
        return Reply({"stampedResult": _acuse_recepcion(o)}, _auth_failed(req.username))
    o = engine.by_xml(req.username, bytes(req.xml or b""))
    return Reply({"stampedResult": _acuse_recepcion(o)}, _log(o, req.username))


def finkok_cancel(engine: PacEngine, req: Any) -> Reply:
    now = datetime.now().isoformat(timespec="seconds")
    if engine.authenticate(req.username, req.password) is None:
        body: dict[str, Any] = {"CodEstatus": "203 - " + MSG["203"], "Fecha": now}
        return Reply({"cancelResult": body}, _auth_failed(req.username))
    items = (serialize_object(req.UUIDS, dict) or {}).get("UUID") or []
    folios = []
    acuse: bytes | None = None
    codes = []
    for item in items:
        o = engine.cancel(
            req.username,
            item.get("UUID"),
            item.get("Motivo"),
            item.get("FolioSustitucion"),
            req.taxpayer_id,
        )
        codes.append(o.code)
        if o.ok and o.record is not None:
            acuse = o.record.acuse_cancelacion
        folios.append(
            {
                "UUID": item.get("UUID"),
                "EstatusUUID": o.code,
                "EstatusCancelacion": (
                    (engine.store.cancel_estatus(o.record.uuid) or "Cancelado sin aceptación")
                    if o.ok and o.record
                    else o.message
                ),
            }
        )
    body = {
        "Folios": {"Folio": folios},
        "Acuse": acuse.decode("utf-8") if acuse else None,
        "Fecha": now,
        "RfcEmisor": req.taxpayer_id,
        "CodEstatus": None if folios else "No se recibieron UUID para cancelar",
    }
    ok = bool(codes) and all(c == "201" for c in codes)
    uuids = ",".join(str(i.get("UUID")) for i in items)
    return Reply(
        {"cancelResult": body},
        LogEntry(
            "ok" if ok else "error", codes[0] if codes else None, req.username, uuid=uuids or None
        ),
    )


def finkok_get_receipt(engine: PacEngine, req: Any) -> Reply:
    """``get_receipt``: the cancellation acuse (``type`` "C", the default) or the acuse de
    recepción (``type`` "R") of a UUID of the account."""
    now = datetime.now().isoformat(timespec="seconds")
    if engine.authenticate(req.username, req.password) is None:
        body = {"success": False, "error": "203 - " + MSG["203"], "date": now}
        return Reply({"get_receiptResult": body}, _auth_failed(req.username))
    o = engine.by_uuid(req.username, req.uuid)
    kind = (req.type or "C").strip().upper()
    receipt = None
    if o.ok and o.record is not None:
        receipt = o.record.acuse_envio if kind == "R" else o.record.acuse_cancelacion
        if receipt is None:
            o = Outcome(False, "404", "El comprobante no tiene acuse de cancelación")
    body = {
        "uuid": req.uuid,
        "success": o.ok,
        "receipt": receipt.decode("utf-8") if receipt else None,
        "taxpayer_id": req.taxpayer_id,
        "error": None if o.ok else f"{o.code} - {o.message}",
        "date": now,
    }
    return Reply({"get_receiptResult": body}, _log(o, req.username))


def finkok_sat_status(engine: PacEngine, req: Any) -> Reply:
    if engine.authenticate(req.username, req.password) is None:
        body: dict[str, Any] = {"error": "203 - " + MSG["203"]}
        return Reply({"get_sat_statusResult": body}, _auth_failed(req.username))
    sat = engine.sat_status(req.uuid, req.taxpayer_id, req.rtaxpayer_id, req.total)
    body = {"sat": {**sat, "DetallesValidacionEFOS": None}}
    return Reply(
        {"get_sat_statusResult": body},
        LogEntry("ok", None, req.username, uuid=req.uuid),
    )


FINKOK_STAMP: dict[str, Handler] = {
    "stamp": finkok_stamp,
    "quick_stamp": finkok_quick_stamp,
    "stamped": finkok_stamped,
}
FINKOK_CANCEL: dict[str, Handler] = {
    "cancel": finkok_cancel,
    "get_sat_status": finkok_sat_status,
    "get_receipt": finkok_get_receipt,
}


# --- SAT ConsultaCFDIService --------------------------------------------------------------------


def sat_consulta(engine: PacEngine, req: Any) -> Reply:
    q = parse_expresion_impresa(req.expresionImpresa)
    acuse = engine.sat_status(q.get("id"), q.get("re"), q.get("rr"), q.get("tt"))
    return Reply({"ConsultaResult": acuse}, LogEntry("ok", None, uuid=q.get("id")))


SAT_STATUS: dict[str, Handler] = {"Consulta": sat_consulta}
