"""CSD loading, refusals and signing (connector.cfdi.csd) with SAT's public test certificates."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509

from connector.cfdi.csd import Csd
from connector.cfdi.errors import CsdError

from .strategies import CSD_PASSWORD, TESTCSD

VALID = TESTCSD / "eku9003173c9_csd_2023_30001000000500003416"
EXPIRED = TESTCSD / "eku9003173c9_csd"
FIEL = TESTCSD / "eku9003173c9_fiel_2023_30001000000500003415"


def _files(base: Path) -> tuple[bytes, bytes]:
    return base.with_suffix(".cer").read_bytes(), base.with_suffix(".key").read_bytes()


def _refused(cer: bytes, key: bytes, password: str | bytes) -> CsdError:
    with pytest.raises(CsdError) as info:
        Csd.load(cer, key, password)
    return info.value


def test_valid_csd_loads_with_its_identity() -> None:
    csd = Csd.load(*_files(VALID), CSD_PASSWORD)
    assert csd.rfc == "EKU9003173C9"
    assert csd.no_certificado == "30001000000500003416"
    assert csd.not_before == datetime(2023, 5, 18, 11, 43, 51, tzinfo=UTC)
    assert csd.not_after == datetime(2027, 5, 18, 11, 43, 51, tzinfo=UTC)
    der = base64.b64decode(csd.certificado_b64)
    assert der == VALID.with_suffix(".cer").read_bytes()
    assert x509.load_der_x509_certificate(der).serial_number > 0
    same = Csd.from_files(
        VALID.with_suffix(".cer"), VALID.with_suffix(".key"), CSD_PASSWORD.encode()
    )
    assert same.no_certificado == csd.no_certificado


def test_sign_is_rsa_sha256_pkcs1_and_verifies() -> None:
    csd = Csd.load(*_files(VALID), CSD_PASSWORD)
    sig = csd.sign("||4.0|cadena con ñ||")
    assert len(base64.b64decode(sig)) == 256  # RSA-2048
    assert csd.sign(b"||4.0|cadena con \xc3\xb1||") == sig  # deterministic, UTF-8
    assert csd.verify("||4.0|cadena con ñ||", sig)
    assert not csd.verify("||4.0|cadena con n||", sig)
    assert not csd.verify("x", "no es base64!")


def test_wrong_password_is_refused_without_showing_it() -> None:
    err = _refused(*_files(VALID), "SuperSecreto-Equivocado")
    assert err.code == "CONN-CSD-PASSWORD"
    assert "contraseña" in err.problems[0].message
    assert "SuperSecreto" not in str(err) and "SuperSecreto" not in repr(err)


def test_password_never_appears_in_repr() -> None:
    csd = Csd.load(*_files(VALID), CSD_PASSWORD)
    assert CSD_PASSWORD not in repr(csd)
    assert "EKU9003173C9" in repr(csd)
    assert not hasattr(csd, "__dict__")  # nothing else stored on the object


def test_fiel_is_refused() -> None:
    err = _refused(*_files(FIEL), CSD_PASSWORD)
    assert err.code == "CONN-CSD-FIEL"
    assert "e.firma" in err.problems[0].message


def test_key_of_another_certificate_is_refused() -> None:
    cer, _ = _files(VALID)
    _, other_key = _files(EXPIRED)
    err = _refused(cer, other_key, CSD_PASSWORD)
    assert err.code == "CONN-CSD-MISMATCH"
    assert "no corresponde" in err.problems[0].message


def test_expired_csd_cannot_seal_a_current_invoice() -> None:
    old = Csd.load(*_files(EXPIRED), CSD_PASSWORD)
    assert old.no_certificado == "30001000000400002434"
    with pytest.raises(CsdError) as info:
        old.check_can_seal("EKU9003173C9", datetime(2025, 3, 1, 10, 0, 0))
    assert info.value.code == "CONN-CSD-EXPIRED"
    assert "venció el 2023-06-17" in info.value.problems[0].message
    assert not old.is_valid_at(datetime(2025, 3, 1, tzinfo=UTC))
    # while it was valid, it could
    old.check_can_seal("EKU9003173C9", "2022-01-10T12:00:00")


def test_not_yet_valid_and_boundaries() -> None:
    csd = Csd.load(*_files(VALID), CSD_PASSWORD)
    with pytest.raises(CsdError) as info:
        csd.check_can_seal("EKU9003173C9", datetime(2023, 5, 18, 5, 0, 0))  # 11:00 UTC
    assert info.value.code == "CONN-CSD-NOT-YET-VALID"
    csd.check_can_seal("EKU9003173C9", datetime(2023, 5, 18, 6, 0, 0))  # 12:00 UTC
    csd.check_can_seal("EKU9003173C9", "2027-05-18T05:43:00")
    with pytest.raises(CsdError) as info:
        csd.check_can_seal("EKU9003173C9", "2027-05-18T05:44:00")
    assert info.value.code == "CONN-CSD-EXPIRED"


def test_other_rfc_cannot_seal() -> None:
    csd = Csd.load(*_files(VALID), CSD_PASSWORD)
    with pytest.raises(CsdError) as info:
        csd.check_can_seal("AAA010101AAA", datetime(2025, 3, 1, 10, 0, 0))
    assert info.value.code == "CONN-CSD-RFC"
    assert info.value.problems[0].path == "Emisor.Rfc"
    csd.check_can_seal(" eku9003173c9 ", datetime(2025, 3, 1, 10, 0, 0))  # case/space tolerant


def test_bad_fecha_is_reported() -> None:
    csd = Csd.load(*_files(VALID), CSD_PASSWORD)
    with pytest.raises(CsdError) as info:
        csd.check_can_seal("EKU9003173C9", "ayer")
    assert info.value.code == "CFDI40101"


def test_garbage_files_are_refused_with_codes(tmp_path: Path) -> None:
    cer, key = _files(VALID)
    assert _refused(b"no es un certificado", key, CSD_PASSWORD).code == "CONN-CSD-CER"
    assert _refused(cer, b"no es una llave", CSD_PASSWORD).code == "CONN-CSD-KEY"
    assert _refused(cer, key[:200], CSD_PASSWORD).code == "CONN-CSD-KEY"
    assert _refused(cer, key, "").code == "CONN-CSD-PASSWORD"
    with pytest.raises(CsdError) as info:
        Csd.from_files(tmp_path / "nada.cer", VALID.with_suffix(".key"), CSD_PASSWORD)
    assert info.value.code == "CONN-CSD-FILE"


def test_pem_files_are_accepted_too() -> None:
    from cryptography.hazmat.primitives import serialization

    cer, key = _files(VALID)
    pem_cer = x509.load_der_x509_certificate(cer).public_bytes(serialization.Encoding.PEM)
    pk = serialization.load_der_private_key(key, CSD_PASSWORD.encode())
    pem_key = pk.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"otra-clave"),
    )
    csd = Csd.load(pem_cer, pem_key, "otra-clave")
    assert csd.no_certificado == "30001000000500003416"
