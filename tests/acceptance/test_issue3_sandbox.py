"""Issue 3 acceptance, over real HTTP to the sandbox PAC on 127.0.0.1:

- invoices of many shapes (several conceptos, IVA 16/8/0/exento, IEPS, retenciones, USD,
  público en general, tipo E/T, Pagos 2.0), stamped (``TimbrarCFDI``) and remote-generated
  (``GenerarCFDI40``) by the FEL driver, come back XSD-valid, with a Sello and a SelloSAT that
  verify and a TFD cadena equal to SAT's ``cadenaoriginal_TFD_1_1.xslt`` — one UUID per
  referencia in the sandbox's own store;
- "previously stamped" (307) returns the existing UUID, also under another referencia and
  through Finkok;
- passwords (old, new, wrong) never appear in logs nor in an exception's whole chain.
"""

from __future__ import annotations

import logging
import traceback
import uuid as uuidlib
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from connector.cfdi import rules
from connector.cfdi.cadena import cadena_tfd, cadena_tfd_xslt
from connector.cfdi.csd import Csd
from connector.cfdi.model import Comprobante
from connector.cfdi.seal import seal_invoice, verify_seal, verify_tfd
from connector.cfdi.xmlio import from_xml, parse_xml_bytes, validate_xsd
from connector.pac.base import StampResult, Timeouts
from connector.pac.errors import PacError, PacInvalid
from connector.pac.fel import FelDriver
from connector.pac.finkok import FinkokDriver
from connector.pac.sandbox import SandboxAccount, SandboxPac
from tests.cfdi.strategies import comprobantes, shared_test_csd
from tests.pac.drivers_support import EMISOR, invoice, sealed

USUARIO, CUENTA = "qa", "QA1"
PASSWORD = (
    "qa-" + uuidlib.uuid4().hex
)  # built at run time: a traceback's source lines never hold it


@pytest.fixture(scope="module")
def csd() -> Csd:
    return shared_test_csd()


@pytest.fixture(scope="module")
def pac(tmp_path_factory: pytest.TempPathFactory, csd: Csd) -> Iterator[SandboxPac]:
    db = tmp_path_factory.mktemp("issue3") / "pac.db"
    accounts = [SandboxAccount(USUARIO, PASSWORD, CUENTA, 100_000, csds={EMISOR: csd})]
    with SandboxPac(db, accounts=accounts) as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def fel(pac: SandboxPac) -> Iterator[FelDriver]:
    d = FelDriver(
        USUARIO,
        PASSWORD,
        cuenta=CUENTA,
        timbrado_url=pac.fel_timbrado_url,
        remote_url=pac.fel_remote_url,
        timeouts=Timeouts(connect=2, read=20),
    )
    yield d
    d.close()


def _now(c: Comprobante) -> Comprobante:
    fecha = (datetime.now() - timedelta(minutes=2)).replace(microsecond=0).isoformat()
    return c.model_copy(update={"Fecha": fecha})


def _assert_good_stamp(xml: bytes, pac: SandboxPac) -> None:
    root = parse_xml_bytes(xml)
    assert validate_xsd(root) == []
    assert verify_seal(root) == []
    assert verify_tfd(root, pac.certificate_der) == []
    assert cadena_tfd(root) == cadena_tfd_xslt(root)


def _assert_one_uuid(pac: SandboxPac, ref: str, res: StampResult) -> None:
    """New content: stored under this referencia. Content identical to an earlier example
    (hypothesis repeats small ones, same Fecha second): 307, the existing UUID, nothing new."""
    if res.previously_stamped:
        assert pac.store.uuids_for_referencia(ref) == []
        assert pac.store.get(res.uuid) is not None
    else:
        assert pac.store.uuids_for_referencia(ref) == [res.uuid]


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(c=comprobantes())
def test_generated_shapes_stamped_and_remote_generated_are_valid(
    pac: SandboxPac, fel: FelDriver, csd: Csd, c: Comprobante
) -> None:
    c = _now(c)
    ref = f"STAMP-{uuidlib.uuid4().hex}"
    res = fel.stamp(seal_invoice(c, csd), ref)
    _assert_good_stamp(res.xml, pac)
    _assert_one_uuid(pac, ref, res)
    assert from_xml(res.xml).Total == c.Total

    ref = f"REMOTE-{uuidlib.uuid4().hex}"
    assert rules.validate(c) == []  # so the PAC, applying SAT's rules, has nothing to refuse
    gen = fel.generate(c, ref)
    _assert_good_stamp(gen.xml, pac)
    _assert_one_uuid(pac, ref, gen)
    stamped = from_xml(gen.xml)
    assert (stamped.TipoDeComprobante, stamped.Total) == (c.TipoDeComprobante, c.Total)


def test_previously_stamped_under_another_referencia_is_the_same_uuid(
    pac: SandboxPac, fel: FelDriver, csd: Csd
) -> None:
    xml = sealed(csd, f"D{uuidlib.uuid4().hex[:8]}")
    first = fel.stamp(xml, f"A-{uuidlib.uuid4().hex}")
    before = pac.store.count()
    again = fel.stamp(xml, f"B-{uuidlib.uuid4().hex}")  # e.g. a journal lost its referencia
    assert (again.uuid, again.previously_stamped) == (first.uuid, True)
    assert again.xml == first.xml
    assert pac.store.count() == before


def test_finkok_resend_is_307_with_the_same_uuid(pac: SandboxPac, csd: Csd) -> None:
    d = FinkokDriver(USUARIO, PASSWORD, stamp_url=pac.finkok_stamp_url, timeouts=Timeouts(2, 20))
    try:
        xml = sealed(csd, f"K{uuidlib.uuid4().hex[:8]}")
        first = d.stamp(xml, "x")
        again = d.stamp(xml, "y")
        assert (again.uuid, again.previously_stamped) == (first.uuid, True)
        assert d.stamped(xml).uuid == first.uuid
    finally:
        d.close()


def _whole(exc: BaseException) -> str:
    """The exception as a log handler or a crash report would show it, causes included."""
    return "".join(traceback.format_exception(exc)) + repr(exc) + repr(vars(exc))


def test_passwords_never_in_logs_or_exception_chains(
    tmp_path: Path, csd: Csd, caplog: pytest.LogCaptureFixture
) -> None:
    old, new, wrong = (f"{k}-{uuidlib.uuid4().hex}" for k in ("old", "new", "wrong"))
    caplog.set_level(logging.DEBUG)  # zeep and urllib3 log requests at DEBUG
    account = SandboxAccount("pw", old, "PW1", 50, csds={EMISOR: csd})
    with SandboxPac(tmp_path / "pw.db", accounts=[account]) as sb:
        kw = {"cuenta": "PW1", "timbrado_url": sb.fel_timbrado_url, "remote_url": sb.fel_remote_url}
        good = FelDriver("pw", old, **kw)
        bad = FelDriver("pw", wrong, **kw)
        try:
            assert good.stamp(sealed(csd, "PW1"), "R-PW1").uuid
            good.change_password(new)
            assert good.credits().restantes is not None  # the driver now uses the new one
            errors: list[PacError] = []
            for call in (
                lambda: bad.stamp(sealed(csd, "PW2"), "R-PW2"),
                lambda: bad.generate(invoice("PW3"), "R-PW3"),
                bad.credits,
                lambda: bad.recover("R-PW1"),
                lambda: bad.change_password(f"x-{new}"),
            ):
                with pytest.raises(PacError) as info:
                    call()
                errors.append(info.value)
            assert {e.code for e in errors} <= {"203", "FEL-ERROR"}
            sb.faults.add("http500", times=1)
            sb.faults.add("garbage", times=1)
            for _ in range(2):
                with pytest.raises(PacError) as info:
                    good.credits()
                errors.append(info.value)
            text = "".join(_whole(e) for e in errors) + repr(good) + repr(bad) + caplog.text
        finally:
            good.close()
            bad.close()
    assert caplog.text  # there were logs to look at
    for secret in (old, new, wrong):
        assert secret not in text


def test_fel_conexion_remota_alone_covers_its_operations(pac: SandboxPac) -> None:
    """A driver with only Conexión Remota: GenerarCFDI40, ObtenerXMLPorReferencia40,
    ObtenerAcuseEnvio40, CancelarCFDIsV4, ObtenerAcuseCancelacion40, ObtenerNumerosCreditos
    (the sandbox tests call these with raw zeep; here the driver does)."""
    d = FelDriver(USUARIO, PASSWORD, cuenta=CUENTA, remote_url=pac.fel_remote_url)
    try:
        before = d.credits().restantes
        c = invoice(f"R{uuidlib.uuid4().hex[:8]}")
        ref = f"CR-{uuidlib.uuid4().hex}"
        gen = d.generate(c, ref)
        _assert_good_stamp(gen.xml, pac)
        assert d.credits().restantes == before - 1
        assert d.recover(ref).uuid == gen.uuid
        assert gen.uuid.encode() in d.acuse_envio(gen.uuid).upper()
        out = d.cancel(gen.uuid, "02", None, c.Receptor.Rfc, c.Total)
        assert out.accepted and out.code == "201"
        assert gen.uuid.encode() in d.acuse_cancelacion(gen.uuid).upper()
        assert pac.store.get(gen.uuid).status == "cancelado"
    finally:
        d.close()


@pytest.fixture
def tijuana_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The machine's clock set to Tijuana (UTC−8, west of Mexico City)."""
    import time

    monkeypatch.setenv("TZ", "America/Tijuana")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_fecha_in_mexico_city_time_stamps_on_a_machine_west_of_it(
    tijuana_clock: None, pac: SandboxPac, fel: FelDriver, csd: Csd
) -> None:
    """``seal --now`` dates in Mexico City time; the sandbox compared Fecha with the machine's
    naive clock only, so on a Tijuana (or US Pacific) machine every such CFDI was 401 "en el
    futuro" — a real PAC accepts a Fecha that is current in any Mexican zone."""
    from connector.cfdi.csd import MEXICO_TZ

    cdmx_now = datetime.now(MEXICO_TZ).replace(tzinfo=None, microsecond=0)
    assert cdmx_now > datetime.now() + timedelta(hours=1)  # the clock really is west of CDMX
    ok = fel.stamp(sealed(csd, "TJ1", fecha=cdmx_now - timedelta(minutes=1)), "TJ-1")
    _assert_good_stamp(ok.xml, pac)
    gen = fel.generate(invoice("TJ2", fecha=cdmx_now - timedelta(minutes=1)), "TJ-2")
    _assert_good_stamp(gen.xml, pac)
    for folio, fecha in (
        ("TJ3", cdmx_now + timedelta(hours=2)),  # future in every Mexican zone
        ("TJ4", cdmx_now - timedelta(hours=72 + 3)),  # older than 72 h everywhere
    ):
        with pytest.raises(PacInvalid) as info:
            fel.stamp(sealed(csd, folio, fecha=fecha), f"TJ-{folio}")
        assert info.value.code == "401"
        with pytest.raises(PacInvalid) as info:
            fel.generate(invoice(folio, fecha=fecha), f"TJ-R-{folio}")
        assert info.value.code == "401"


def test_finkok_cancel_without_configuration_names_what_is_missing(pac: SandboxPac) -> None:
    from decimal import Decimal

    cases = [
        ({"cancel_url": pac.finkok_cancel_url}, "el RFC del emisor"),  # was "configure la
        ({"rfc_emisor": EMISOR}, "la dirección de cancelación"),  # dirección… y el RFC" always
    ]
    for extra, missing in cases:
        d = FinkokDriver(USUARIO, PASSWORD, stamp_url=pac.finkok_stamp_url, **extra)
        try:
            with pytest.raises(PacInvalid) as info:
                d.cancel(str(uuidlib.uuid4()), "02", None, "XAXX010101000", Decimal("1"))
            assert info.value.code == "CONN-PAC-CONFIG"
            assert f"falta configurar {missing}." in info.value.message
        finally:
            d.close()


def _resigned(xml: bytes, signer: Csd) -> bytes:
    """``xml`` sealed again, by hand, with ``signer`` (which ``seal_invoice`` would refuse)."""
    from connector.cfdi.cadena import cadena_original
    from connector.cfdi.xmlio import serialize

    root = parse_xml_bytes(xml)
    root.set("NoCertificado", signer.no_certificado)
    root.set("Certificado", signer.certificado_b64)
    root.set("Sello", signer.sign(cadena_original(root)))
    return serialize(root)


def test_sandbox_refuses_a_fiel_seal_and_an_expired_csd(
    pac: SandboxPac, fel: FelDriver, csd: Csd
) -> None:
    from cryptography.hazmat.primitives.serialization import load_der_private_key

    from connector.cfdi.csd import load_certificate
    from tests.conftest import CSD_PASSWORD, TESTCSD

    fiel_base = TESTCSD / "eku9003173c9_fiel_2023_30001000000500003415"
    fiel = Csd(
        load_certificate(fiel_base.with_suffix(".cer").read_bytes()),
        load_der_private_key(fiel_base.with_suffix(".key").read_bytes(), CSD_PASSWORD.encode()),  # type: ignore[arg-type]
    )
    expired = Csd.from_files(
        TESTCSD / "eku9003173c9_csd.cer", TESTCSD / "eku9003173c9_csd.key", CSD_PASSWORD
    )
    assert fiel.certificate.is_fiel and not expired.is_valid_at()
    before = pac.store.count()
    for folio, signer, code in (("FIEL1", fiel, "302"), ("EXP1", expired, "305")):
        xml = _resigned(sealed(csd, folio), signer)
        # the seal itself is sound: only the kind or the validity of the certificate is wrong
        assert {p.code for p in verify_seal(xml)} & {"CONN-CSD-FIEL", "CONN-CSD-EXPIRED"}
        with pytest.raises(PacInvalid) as info:
            fel.stamp(xml, f"R-{folio}-{uuidlib.uuid4().hex}")
        assert info.value.code == code, info.value.message
    assert pac.store.count() == before
