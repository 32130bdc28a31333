"""What the sandbox does as a PAC, independent of SOAP: authenticate, validate, stamp, recover,
cancel, answer SAT's status query.

Over 500 lines for a reason: the code table below and one engine (``PacEngine``) whose
operations share the accounts, the store and the lock; split further, its decisions would
scatter. What it reads and writes in a document is in ``documents``.

Checks on a sealed CFDI, in order, with the codes the PACs use (Anexo 20 / FEL / Finkok):

====== ===========================================================================
code   meaning
====== ===========================================================================
203    usuario o contraseña inválidos (FEL authentication; Finkok: same message)
301    XML mal formado or not valid against SAT's XSD
307    previamente timbrado (same Sello, or same referencia in the account): the existing
       UUID and XML come back, never a second UUID
905    the account has no credits left
302    sello mal formado o inválido (does not verify with the embedded certificate)
303    sello no corresponde al emisor (certificate RFC ≠ Emisor/@Rfc)
305    Fecha outside the certificate's validity
401    Fecha older than 72 hours, or in the future
402    the emisor RFC is not registered in the account
CRP20… a Pagos 2.0 document that breaks SAT's Pagos 2.0 rules (``rules_pagos``: amounts,
       sums, totals, decimals): the code and message of SAT's matrix, as PACs answer
CONN-CCE… a Comercio Exterior 2.0 document that breaks the complement's rules (``rules_cce20``)
CONN-CP… a Carta Porte 3.1 document that breaks the complement's rules (``rules_cp31``; only
       autotransporte federal is modelled: maritime, air and rail are CONN-CP-002)
404    not found (by referencia, UUID or seal)
====== ===========================================================================

Cancellation codes (SAT's): 201 accepted, 202 previously cancelled, 205 UUID unknown to this
account, 312 motivo not in 01–04, 313 motivo 01 without a FolioSustitucion.

Test knob ``engine.con_aceptacion`` (a set of UUIDs and/or receptor RFCs): those CFDIs are
"Cancelable con aceptación". A request for one is answered 201 like any other, but SAT's status
then says ``Vigente`` / ``En proceso`` until ``engine.answer_cancellation(uuid, answer)`` plays
the receptor: ``"aceptada"`` (``Cancelado con aceptación``), ``"plazo_vencido"`` (``Plazo
vencido``, cancelled) or ``"rechazada"`` (``Solicitud rechazada``, still vigente; a new request
is allowed). Every other CFDI is "Cancelable sin aceptación": cancelled at once.

Test knob ``engine.no_cancelable`` (a set of UUIDs): those CFDIs play one with related
documents still vigente (e.g. an invoice whose payment complement is not cancelled): SAT's
status says ``Vigente`` / ``No cancelable`` and a request is refused with 204 (SAT's "Folio
Fiscal no aplicable a cancelación").

Fecha (and the 72-hour window, with 2 minutes of tolerance for the future) is read against the
machine's local clock: the sandbox runs beside the connector, so both share one clock. A Fecha
ahead of that clock is still accepted while it is not in the future in Mexico's easternmost
zone (UTC−5), as a real PAC does: a CFDI dated in Mexico City time (``seal --now``) stamps on a
machine set to Tijuana's or California's clock.
FechaTimbrado is local time too, without zone, as SAT writes it. The Addenda is not validated
(it is not part of the CFDI's schema nor of its seal).

The CFDI domain work (safe parsing, XSD, seal verification, cadena of the TFD, building and
sealing in remote mode) is done by ``connector.cfdi``; what the sandbox reads and writes in a
document (its own certificate, the TFD, the acuses) by ``documents``; this module only decides
and stores.
"""

from __future__ import annotations

import secrets
import threading
import uuid as uuidlib
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from lxml import etree

from connector.cfdi.cce20 import NS_CCE20
from connector.cfdi.cp31 import NS_CP31
from connector.cfdi.model import NS_PAGO20

from .documents import (
    _C,
    RFC_PROV_CERTIF,
    PacCertificate,
    _embedded_certificate,
    _parse_fecha,
    _problems_text,
    _same_total,
    _serialize,
    _with_acuse_envio,
    _without_addenda,
    acuse_cancelacion,
    fecha_out_of_window,
    insert_tfd,
    now_local,
    parse_expresion_impresa,
)
from .store import (
    STATUS_CANCELADO,
    STATUS_EN_PROCESO,
    STATUS_VIGENTE,
    AccountState,
    SandboxStore,
    StampRecord,
    sello_digest,
)

__all__ = [
    "MSG",
    "RFC_PROV_CERTIF",
    "Outcome",
    "PacCertificate",
    "PacEngine",
    "SandboxAccount",
    "parse_expresion_impresa",
]

if TYPE_CHECKING:
    from connector.cfdi.csd import Csd


CON_ACEPTACION = "Cancelable con aceptación"
_VALIDITY_CODES = frozenset({"CONN-CSD-EXPIRED", "CONN-CSD-NOT-YET-VALID"})

MSG = {
    "200": "Comprobante timbrado satisfactoriamente",
    "203": "Usuario o contraseña inválidos",
    "301": "XML mal formado",
    "302": "Sello mal formado o inválido",
    "303": "Sello no corresponde al emisor",
    "305": "La fecha de emisión no está dentro de la vigencia del certificado del emisor",
    "307": "El CFDI contiene un timbre previo (previamente timbrado)",
    "401": "Fecha y hora de generación fuera de rango (más de 72 horas o en el futuro)",
    "402": "El RFC del emisor no está registrado en la cuenta",
    "404": "No se encontró el comprobante solicitado",
    "905": "La cuenta no tiene créditos disponibles",
}


@dataclass
class SandboxAccount:
    """A PAC account: credentials, credits, and the emisor RFCs it may stamp for.

    ``csds`` maps RFC → ``connector.cfdi.csd.Csd``: those RFCs may stamp, and in remote mode
    (FEL ``GenerarCFDI40``) the sandbox seals with that CSD. ``rfcs`` registers more RFCs for
    stamp mode only (no CSD needed).
    """

    usuario: str
    password: str
    cuenta: str = ""
    creditos: int = 1000
    csds: dict[str, Csd] = field(default_factory=dict)
    rfcs: tuple[str, ...] = ()

    @property
    def registered_rfcs(self) -> set[str]:
        return {r.upper() for r in self.csds} | {r.upper() for r in self.rfcs}


@dataclass(frozen=True)
class Outcome:
    """The result of one PAC operation. ``ok`` is False for every error, including 307 (which
    still carries the existing ``record``)."""

    ok: bool
    code: str
    message: str
    record: StampRecord | None = None
    detail: str | None = None
    remaining: int | None = None


def _fail(code: str, detail: str | None = None, record: StampRecord | None = None) -> Outcome:
    return Outcome(False, code, MSG.get(code, code), record=record, detail=detail)


def _previously_stamped(usuario: str, existing: StampRecord) -> Outcome:
    """307 with the existing stamp, unless another account stamped it: then no XML leaks."""
    if existing.account != usuario:
        return _fail("307", "El documento ya fue timbrado por otra cuenta")
    return _fail("307", record=existing)


def _check_complements(root: etree._Element) -> Outcome | None:
    """SAT's rules of the complements a document carries, as a PAC applies them: Pagos 2.0
    (``CRP20xxx``), Comercio Exterior 2.0 (``rules_cce20``) and Carta Porte 3.1 (``rules_cp31``);
    the first problem's code and message, every problem in the detail."""
    from connector.cfdi import rules_cce20, rules_cp31, rules_pagos, xmlio
    from connector.cfdi.errors import XmlError

    checks = [
        check
        for tag, check in (
            (f"{{{NS_PAGO20}}}Pagos", rules_pagos.validate_pagos),
            (f"{{{NS_CCE20}}}ComercioExterior", rules_cce20.validate_cce20),
            (f"{{{NS_CP31}}}CartaPorte", rules_cp31.validate_cp31),
        )
        if root.find(f"{_C}Complemento/{tag}") is not None
    ]
    if not checks:
        return None
    try:
        comprobante = xmlio.from_element(root)
    except XmlError as exc:
        return _fail("301", _problems_text(exc.problems))
    problems = [p for check in checks for p in check(comprobante) if p.severity == "error"]
    if not problems:
        return None
    first = problems[0]
    return Outcome(False, first.code, first.message, detail=_problems_text(problems))


# --- the engine -------------------------------------------------------------------------------


class PacEngine:
    def __init__(
        self,
        store: SandboxStore,
        accounts: list[SandboxAccount],
        certificate: PacCertificate,
        rfc_prov_certif: str = RFC_PROV_CERTIF,
    ) -> None:
        self.store = store
        self.certificate = certificate
        self.rfc_prov_certif = rfc_prov_certif
        self.accounts: dict[str, SandboxAccount] = {}
        self._stamp_lock = threading.Lock()
        # test knob: UUIDs or receptor RFCs whose CFDIs are "Cancelable con aceptación"
        self.con_aceptacion: set[str] = set()
        # test knob: UUIDs of CFDIs with related documents still vigente ("No cancelable")
        self.no_cancelable: set[str] = set()
        for account in accounts:
            self.add_account(account)

    def es_cancelable(self, record: StampRecord) -> str:
        """SAT's EsCancelable of a vigente CFDI (see the ``con_aceptacion`` knob)."""
        if record.uuid.upper() in {x.upper() for x in self.no_cancelable}:
            return "No cancelable"
        knob = {x.upper() for x in self.con_aceptacion}
        if record.uuid.upper() in knob or record.rfc_receptor.upper() in knob:
            return CON_ACEPTACION
        return "Cancelable sin aceptación"

    def answer_cancellation(self, uuid: str, answer: str) -> None:
        """Play the receptor of a request in process: aceptada, rechazada or plazo_vencido."""
        outcomes = {
            "aceptada": (STATUS_CANCELADO, "Cancelado con aceptación"),
            "plazo_vencido": (STATUS_CANCELADO, "Plazo vencido"),
            "rechazada": (STATUS_VIGENTE, "Solicitud rechazada"),
        }
        found = self.store.get(uuid)
        if found is None or found.status != STATUS_EN_PROCESO or answer not in outcomes:
            raise ValueError(f"no hay una solicitud en proceso para {uuid} o {answer!r} no vale")
        self.store.answer_cancellation(found.uuid, *outcomes[answer])

    def add_account(self, account: SandboxAccount) -> None:
        self.accounts[account.usuario] = account
        self.store.ensure_account(
            account.usuario, account.password, account.cuenta, account.creditos
        )

    # --- accounts ------------------------------------------------------------------------------

    def authenticate(
        self, usuario: str | None, password: str | None, cuenta: str | None = None
    ) -> AccountState | None:
        if not usuario or password is None:
            return None
        state = self.store.account(usuario)
        if state is None or not secrets.compare_digest(state.password.encode(), password.encode()):
            return None
        if cuenta is not None and state.cuenta and cuenta != state.cuenta:
            return None
        return state

    def change_password(self, usuario: str, actual: str, nuevo: str | None) -> Outcome:
        if self.authenticate(usuario, actual) is None:
            return _fail("203")
        if not nuevo or not nuevo.strip():
            return Outcome(False, "206", "La nueva contraseña no puede estar vacía")
        self.store.set_password(usuario, nuevo)
        return Outcome(True, "200", "Contraseña actualizada")

    # --- stamping -----------------------------------------------------------------------------

    def stamp(
        self,
        usuario: str,
        xml: bytes,
        referencia: str | None = None,
        *,
        source: str = "stamp",
    ) -> Outcome:
        """Validate a sealed CFDI like a PAC and stamp it (or return the existing stamp)."""
        from connector.cfdi import xmlio
        from connector.cfdi.errors import XmlError

        referencia = referencia or None
        try:
            root = xmlio.parse_xml_bytes(xml)
        except XmlError as exc:
            return _fail("301", _problems_text(exc.problems))
        if root.tag != _C + "Comprobante":
            return _fail("301", f"El elemento raíz no es cfdi:Comprobante 4.0 ({root.tag})")
        sello = root.get("Sello") or ""
        digest = sello_digest(sello) if sello else None

        existing = self._existing(usuario, digest, referencia)
        if existing is not None:
            return _previously_stamped(usuario, existing)
        if self.store.credits(usuario) <= 0:
            return _fail("905")

        problems = xmlio.validate_xsd(_without_addenda(root))
        if problems:
            return _fail("301", _problems_text(problems))
        refused = self._check_sealed(usuario, root, xml) or _check_complements(root)
        if refused is not None:
            return refused
        return self._stamp_now(usuario, root, sello, referencia, source)

    def _existing(
        self, usuario: str, digest: str | None, referencia: str | None
    ) -> StampRecord | None:
        if referencia:
            found = self.store.find_by_referencia(usuario, referencia)
            if found is not None:
                return found
        if digest:
            return self.store.find_by_sello(digest)
        return None

    def _check_sealed(self, usuario: str, root: etree._Element, xml: bytes) -> Outcome | None:
        from connector.cfdi import seal

        emisor = root.find(_C + "Emisor")
        rfc_emisor = (emisor.get("Rfc") if emisor is not None else "") or ""
        info = _embedded_certificate(root.get("Certificado") or "")
        if info is None or not root.get("Sello"):
            return _fail("302", "El comprobante no trae un Certificado o Sello utilizable")
        if info.rfc != rfc_emisor.upper():
            return _fail(
                "303", f"El certificado es de {info.rfc}; el emisor del comprobante es {rfc_emisor}"
            )
        # the certificate's validity at Fecha is answered below with its own code (305)
        problems = [p for p in seal.verify_seal(root) if p.code not in _VALIDITY_CODES]
        if problems:
            return _fail("302", _problems_text(problems))
        fecha = _parse_fecha(root.get("Fecha"))
        if fecha is None:
            return _fail("301", f"Fecha no válida: {root.get('Fecha')!r}")
        if not info.not_before <= fecha <= info.not_after:
            return _fail(
                "305",
                f"Fecha {fecha.isoformat()} fuera de la vigencia del certificado "
                f"({info.not_before.isoformat()} – {info.not_after.isoformat()})",
            )
        if fecha_out_of_window(fecha):
            return _fail(
                "401", f"Fecha {fecha.isoformat()}; hora del PAC {now_local().isoformat()}"
            )
        account = self.accounts.get(usuario)
        if account is None or rfc_emisor.upper() not in account.registered_rfcs:
            return _fail("402", f"RFC {rfc_emisor} no registrado en la cuenta {usuario}")
        return None

    def _stamp_now(
        self,
        usuario: str,
        root: etree._Element,
        sello: str,
        referencia: str | None,
        source: str,
    ) -> Outcome:
        from connector.cfdi.cadena import cadena_tfd
        from connector.cfdi.model import TimbreFiscalDigital

        emisor = root.find(_C + "Emisor")
        receptor = root.find(_C + "Receptor")
        try:
            total = Decimal(root.get("Total") or "0")
        except InvalidOperation:
            return _fail("301", f"Total no válido: {root.get('Total')!r}")
        tfd = TimbreFiscalDigital(
            UUID=str(uuidlib.uuid4()).upper(),
            FechaTimbrado=now_local().isoformat(timespec="seconds"),
            RfcProvCertif=self.rfc_prov_certif,
            SelloCFD=sello,
            NoCertificadoSAT=self.certificate.no_certificado,
            SelloSAT="",
        )
        tfd.SelloSAT = self.certificate.sign(cadena_tfd(tfd))
        insert_tfd(root, tfd.model_dump(exclude_none=True))
        stamped = _serialize(root)
        record = StampRecord(
            uuid=tfd.UUID,
            account=usuario,
            referencia=referencia,
            rfc_emisor=(emisor.get("Rfc") or "").upper() if emisor is not None else "",
            rfc_receptor=(receptor.get("Rfc") or "").upper() if receptor is not None else "",
            total=total,
            sello_sha256=sello_digest(sello),
            xml=stamped,
            fecha_timbrado=tfd.FechaTimbrado,
            status=STATUS_VIGENTE,
            acuse_envio=None,
            acuse_cancelacion=None,
            motivo=None,
            folio_sustitucion=None,
            fecha_cancelacion=None,
            source=source,
        )
        record = _with_acuse_envio(record, tfd)
        with self.store.transaction() as db:
            # Re-check under the write lock: two identical requests racing get one UUID.
            existing = self._existing(usuario, record.sello_sha256, referencia)
            if existing is not None:
                return _previously_stamped(usuario, existing)
            remaining = self.store.credits(usuario)
            if remaining <= 0:
                return _fail("905")
            self.store.insert_stamp(db, record)
        return Outcome(True, "200", MSG["200"], record=record, remaining=remaining - 1)

    # --- remote mode (FEL Conexión Remota) ----------------------------------------------------

    def generate(self, usuario: str, data: dict[str, Any]) -> Outcome:
        """Build, validate, seal with the account's CSD and stamp (``GenerarCFDI40``)."""
        from connector.pac.fel_remote_types import from_comprobante40r

        referencia = (data.get("Referencia") or None) if isinstance(data, dict) else None
        if referencia:
            existing = self.store.find_by_referencia(usuario, referencia)
            if existing is not None:
                return _fail("307", record=existing)
        if self.store.credits(usuario) <= 0:
            return _fail("905")
        account = self.accounts.get(usuario)
        if account is None or not account.csds:
            return _fail("402", "La cuenta no tiene un CSD cargado para sellar")
        rfc, csd = next(iter(account.csds.items()))
        from connector.cfdi.errors import CfdiError, Problem

        try:
            comprobante = from_comprobante40r(data, rfc_emisor=rfc.upper())
        except CfdiError as exc:
            return Outcome(
                False,
                exc.code,
                "Datos del comprobante no válidos",
                detail=_problems_text(exc.problems),
            )
        from connector.cfdi import amounts, rules, seal

        given = comprobante
        try:
            comprobante = amounts.complete(given)
        except Exception as exc:  # a defect in the data the amounts code cannot handle
            return Outcome(False, "301", "No se pudieron calcular los importes", detail=str(exc))
        problems = rules.validate(comprobante, given=given)
        errors = [p for p in problems if p.severity == "error"]
        fecha = _parse_fecha(comprobante.Fecha)
        if fecha is not None and fecha_out_of_window(fecha):  # the same window as stamp()
            when = f"Fecha {fecha.isoformat()}; hora del PAC {now_local().isoformat()}"
            errors.insert(0, Problem("401", "Fecha", f"{MSG['401']}. {when}"))
        if errors:
            return Outcome(False, errors[0].code, errors[0].message, detail=_problems_text(errors))
        try:
            sealed = seal.seal_invoice(comprobante, csd)
        except CfdiError as exc:
            return Outcome(False, exc.code, "No se pudo sellar el comprobante", detail=str(exc))
        return self.stamp(usuario, sealed, referencia, source="remote")

    # --- queries ------------------------------------------------------------------------------

    def by_referencia(self, usuario: str, referencia: str | None) -> Outcome:
        found = self.store.find_by_referencia(usuario, referencia) if referencia else None
        if found is None:
            return _fail("404", f"Referencia {referencia!r} no encontrada")
        return Outcome(True, "200", "Comprobante encontrado", record=found)

    def by_uuid(self, usuario: str, uuid: str | None) -> Outcome:
        found = self.store.get(uuid) if uuid else None
        if found is None or found.account != usuario:
            return _fail("404", f"UUID {uuid!r} no encontrado en la cuenta")
        return Outcome(True, "200", "Comprobante encontrado", record=found)

    def by_sello(self, usuario: str, sello: str | None) -> Outcome:
        found = self.store.find_by_sello(sello_digest(sello)) if sello else None
        if found is None or found.account != usuario:
            return _fail("404", "No hay un comprobante timbrado con ese sello en la cuenta")
        return Outcome(True, "200", "Comprobante encontrado", record=found)

    def by_xml(self, usuario: str, xml: bytes | None) -> Outcome:
        """Finkok ``stamped``: find the stamp of a sealed XML by its Sello."""
        from connector.cfdi import xmlio
        from connector.cfdi.errors import XmlError

        try:
            root = xmlio.parse_xml_bytes(xml or b"")
        except XmlError as exc:
            return _fail("301", _problems_text(exc.problems))
        return self.by_sello(usuario, root.get("Sello"))

    # --- cancellation -------------------------------------------------------------------------

    def cancel(
        self,
        usuario: str,
        uuid: str | None,
        motivo: str | None,
        folio_sustitucion: str | None,
        rfc_emisor: str | None = None,
    ) -> Outcome:
        found = self.store.get(uuid) if uuid else None
        if found is None or found.account != usuario:
            return Outcome(False, "205", "UUID no existe o no pertenece a la cuenta")
        if rfc_emisor and rfc_emisor.upper() != found.rfc_emisor:
            return Outcome(False, "203", "UUID no corresponde al RFC del emisor", record=found)
        if found.status == STATUS_CANCELADO:
            return Outcome(False, "202", "UUID previamente cancelado", record=found)
        if motivo not in ("01", "02", "03", "04"):
            return Outcome(False, "312", "Motivo de cancelación no válido (01, 02, 03 o 04)")
        if self.es_cancelable(found) == "No cancelable":
            return Outcome(
                False,
                "204",
                "Folio Fiscal no aplicable a cancelación: tiene documentos relacionados vigentes",
            )
        folio_sustitucion = (folio_sustitucion or "").strip().upper() or None
        if motivo == "01":
            try:
                uuidlib.UUID(folio_sustitucion or "")
            except ValueError:
                return Outcome(
                    False,
                    "313",
                    "El motivo 01 requiere FolioSustitucion con el UUID que sustituye",
                )
        else:
            folio_sustitucion = None
        when = now_local().isoformat(timespec="seconds")
        if self.es_cancelable(found) == CON_ACEPTACION:
            if found.status == STATUS_EN_PROCESO:  # asked again while the receptor decides
                return Outcome(True, "201", "Solicitud de cancelación en proceso", record=found)
            acuse = acuse_cancelacion(found, motivo, folio_sustitucion, when, "En proceso")
            self.store.mark_cancelled(
                found.uuid,
                motivo,
                folio_sustitucion,
                acuse,
                when,
                status=STATUS_EN_PROCESO,
                estatus="En proceso",
            )
            return Outcome(
                True,
                "201",
                "Solicitud de cancelación recibida; en espera de la aceptación del receptor",
                record=self.store.get(found.uuid),
            )
        acuse = acuse_cancelacion(found, motivo, folio_sustitucion, when)
        self.store.mark_cancelled(found.uuid, motivo, folio_sustitucion, acuse, when)
        return Outcome(
            True, "201", "Solicitud de cancelación exitosa", record=self.store.get(found.uuid)
        )

    # --- SAT status -----------------------------------------------------------------------------

    def sat_status(
        self, uuid: str | None, rfc_emisor: str | None, rfc_receptor: str | None, total: str | None
    ) -> dict[str, str]:
        found = self.store.get(uuid) if uuid else None
        matches = found is not None and (
            (rfc_emisor or "").upper() == found.rfc_emisor
            and (rfc_receptor or "").upper() == found.rfc_receptor
            and _same_total(total, found.total)
        )
        if not matches or found is None:
            return {
                "CodigoEstatus": "N - 602: Comprobante no encontrado.",
                "EsCancelable": "",
                "Estado": "No Encontrado",
                "EstatusCancelacion": "",
                "ValidacionEFOS": "",
            }
        cancelled = found.status == STATUS_CANCELADO
        estatus = self.store.cancel_estatus(found.uuid)
        return {
            "CodigoEstatus": "S - Comprobante obtenido satisfactoriamente.",
            "EsCancelable": "No cancelable" if cancelled else self.es_cancelable(found),
            "Estado": "Cancelado" if cancelled else "Vigente",
            "EstatusCancelacion": estatus or ("Cancelado sin aceptación" if cancelled else ""),
            "ValidacionEFOS": "200",
        }
