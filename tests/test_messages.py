"""Messages say the facts in correct Spanish (issue 17, item 11): the minimum, the allowed
values, no "campo(s)", no lxml English inside CONN-XML-*."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.adapters import load_invoices
from connector.cfdi.errors import XmlError
from connector.cfdi.xmlio import parse_xml_bytes, validate_limits
from connector.cli import main


def test_check_config_gives_the_limit_and_the_allowed_values(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        '[daemon]\njournal = "j.sqlite"\nworkers = 0\nlog_format = "xml"\n', encoding="utf-8"
    )
    assert main(["check-config", "--config", str(config)]) == 2
    out = capsys.readouterr().out
    assert "La opción daemon.workers debe ser al menos 1; se dio 0." in out
    assert (
        "La opción daemon.log_format no es uno de los valores permitidos ('json', 'console'); "
        "se dio 'xml'." in out
    )
    assert "demasiado" not in out


@pytest.mark.parametrize(
    ("data", "said"),
    [
        (b"<cfdi:Comprobante", "el prefijo cfdi no tiene declarado su espacio de nombres"),
        (b"<a><b></a>", "<b> se cierra con </a>"),
        (b"<a>", "el archivo termina antes de cerrar <a>"),
        (b'<a x="1" x="2"/>', "el atributo x aparece dos veces"),
        (b"<a>Pan & vino</a>", "'&' o '<' sin escapar"),
        (b"<a>\xc3(</a>", "bytes que no son de la codificación declarada"),
    ],
)
def test_malformed_xml_is_explained_in_spanish(data: bytes, said: str) -> None:
    with pytest.raises(XmlError) as info:
        parse_xml_bytes(data)
    (p,) = info.value.problems
    assert p.code == "CONN-XML-MALFORMED" and said in p.message, p.message
    assert p.message.startswith("El archivo no es un XML bien formado (línea 1, columna ")
    for english in ("not defined", "Premature", "mismatch", "redefined", "expecting", "Input"):
        assert english not in p.message


def _dat(descripcion: str = "Memoria USB", concepto_extra: str = "") -> bytes:
    return (
        "COMPROBANTE|4.0|A|1|2025-01-15T10:00:00|03||CONTADO|||MXN|||I|01|PUE|42501||\n"
        "EMISOR|EKU9003173C9|ESCUELA KEMPER URGATE|601||\n"
        "RECEPTOR|CACX7605101P8|XOCHILT CASAS CHAVEZ|26015|||612|G03|\n"
        f"\tCONCEPTO|43201800|USB32|1|H87|Pieza|{descripcion}|100.00|||02|{concepto_extra}\n"
        "\t\tTRASLADOCONCEPTO||002|Tasa|0.160000||\n"
    ).encode()


def test_control_character_names_the_field_and_dat_counts_fields_in_spanish() -> None:
    from connector.cfdi.amounts import complete

    (inv,) = load_invoices(_dat("Memoria\x01USB"), "v.dat", adapter="dat", mapping=None)
    (p,) = [inv.locate(p) for p in validate_limits(complete(inv.comprobante))]
    assert p.code == "CONN-XML-CHARS" and p.location == "v.dat:4:Descripcion"
    assert "El valor de Conceptos[0].Descripcion contiene el carácter U+0001" in p.message
    assert "XML compatible" not in p.message
    (inv,) = load_invoices(_dat(concepto_extra="x|y|"), "v.dat", adapter="dat", mapping=None)
    (p,) = [p for p in inv.problems if p.code == "CONN-DAT-FIELDS"]
    assert "debe tener 10 campos (" in p.message and "(s)" not in p.message
