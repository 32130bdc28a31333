"""The Comercio Exterior 2.0 section of the PDF: every value of the complement, read back from the
sealed XML, is on the page (what a customs broker needs), with the section's labels."""

from __future__ import annotations

import io
import re
from decimal import Decimal
from typing import Any

import pypdf

from connector.cfdi.amounts import complete
from connector.cfdi.pdf import render_pdf
from connector.cfdi.seal import seal_invoice
from connector.cfdi.xmlio import from_xml
from tests.cfdi.base_invoice import cce_data, load
from tests.cfdi.strategies import shared_test_csd


def _flat(text: str) -> str:
    return re.sub(r"\s+", "", text)


def _values(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [v for x in node.values() for v in _values(x)]
    if isinstance(node, list):
        return [v for x in node for v in _values(x)]
    if isinstance(node, str | Decimal):
        return [str(node)]
    return []


def _full() -> dict[str, Any]:
    """The export invoice with every node and attribute of the complement given."""
    data = cce_data()
    cce = data["ComercioExterior"]
    cce.update(
        MotivoTraslado="02",
        NumCertificadoOrigen="CO-2025-000123",
        CertificadoOrigen="1",
        NumeroExportadorConfiable="MXEC12345",
        Observaciones="Entrega en Laredo, andén 3",
    )
    cce["Emisor"]["Curp"] = "GOAJ040229HDFNRNA6"
    cce["Emisor"]["Domicilio"].update(
        NumeroInterior="B", Colonia="0001", Localidad="01", Municipio="004", Referencia="Esquina"
    )
    cce["Propietario"] = [{"NumRegIdTrib": "987654321", "ResidenciaFiscal": "CAN"}]
    cce["Receptor"]["NumRegIdTrib"] = "121585958"
    cce["Destinatario"] = [
        {
            "NumRegIdTrib": "555666777",
            "Nombre": "WAREHOUSE INC",
            "Domicilio": [
                {"Calle": "Dock 4", "Estado": "TX", "Pais": "USA", "CodigoPostal": "78040"},
                {"Calle": "Pier 9", "Estado": "ON", "Pais": "CAN", "CodigoPostal": "M5V2T6"},
            ],
        }
    ]
    cce["Mercancias"][1]["DescripcionesEspecificas"].append(
        {"Marca": "OTRA", "SubModelo": "B2", "NumeroSerie": "SN-0002"}
    )
    return data


def test_every_value_of_the_complement_is_on_the_pdf() -> None:
    c = complete(load(_full()))
    parsed = from_xml(seal_invoice(c, shared_test_csd()))  # what the pipeline renders from
    assert parsed.ComercioExterior == c.ComercioExterior
    reader = pypdf.PdfReader(io.BytesIO(render_pdf(parsed)))
    text = _flat("".join(page.extract_text() for page in reader.pages))
    assert "COMPLEMENTODECOMERCIOEXTERIOR2.0" in text.upper()
    assert parsed.ComercioExterior is not None
    values = _values(parsed.ComercioExterior.model_dump())
    assert len(values) > 50
    missing = [v for v in values if _flat(v) not in text]
    assert missing == []
    for label in ("Fracciónarancelaria", "Cantidadaduana", "Valorendólares", "Domiciliodelemisor"):
        assert label.upper() in text.upper()
