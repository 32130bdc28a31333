"""Comercio Exterior 2.0 and Carta Porte 3.1 from CSV sets, end to end (issue 15): a header
file, a lines file and the complements' files (``_CCE``, ``_CCEM``, ``_CP``, ``_CPU``…) joined by
SERIE+FOLIO go through the real daemon pipeline — claim of the whole set, the CSV adapter, the
DAT default mapping's complement sections, SAT rules and the complements' rules, seal, the
sandbox PAC over HTTP — and come back stamped: each document valid by SAT's XSD with its
complement, its cadena SAT's XSLT's byte for byte, its seal verifying. Bad sets fail whole, with
coded Spanish errors naming the file and the line; a claim killed between its renames is
finished at the next start."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from connector.cfdi.cadena import cadena_original, cadena_original_xslt
from connector.cfdi.seal import verify_seal, verify_tfd
from connector.cfdi.xmlio import from_xml, validate_xsd
from connector.config import check_config
from tests.daemon.conftest import REPO, fecha, run_once, stamps_by_key, write_config

EXAMPLES = REPO / "config" / "examples"
MAPPING = EXAMPLES / "complementos-csv.mapping.toml"
FILES = {  # the complements' files of the source below, by their default suffixes
    "cce": "_CCE", "cce_propietario": "_CCEP", "cce_destinatario": "_CCED",
    "cce_mercancia": "_CCEM", "carta_porte": "_CP", "cp_ubicacion": "_CPU",
    "cp_mercancia": "_CPM", "cp_remolque": "_CPR", "cp_figura": "_CPF",
}  # fmt: skip
SOURCE = f"""
[[sources]]
name = "csv-complementos"
inbox = "inbox-cx"
adapter = "csv"
include = ["*.csv"]
mapping = "{MAPPING.as_posix()}"
emisor = "EKU9003173C9"
pac = "sandbox"
stable_seconds = 0.2
archive = "archive"
failed = "failed"
[sources.options]
key = ["SERIE", "FOLIO"]
[sources.pair]
complement_files = {json.dumps(list(FILES))}
orphan_seconds = 600
[sources.output]
xml = "out/xml"
errors = "out/errors"
"""

H = ("SERIE,FOLIO,FECHA,TIPO,EXPORTACION,MONEDA,TIPO_CAMBIO,FORMA_PAGO,METODO_PAGO,RECEPTOR_RFC,"
     "RECEPTOR_NOMBRE,RECEPTOR_CP,RECEPTOR_REGIMEN,USO_CFDI,RESIDENCIA_FISCAL,NUM_REG_ID_TRIB")
D = ("SERIE,FOLIO,ARTICULO,CLAVE_PROD_SERV,DESCRIPCION,CANTIDAD,CLAVE_UNIDAD,UNIDAD,PRECIO,"
     "OBJETO_IMP,IVA_TASA")
HEADERS = {
    "cce": "SERIE,FOLIO,clave_de_pedimento,certificado_origen,num_certificado_origen,incoterm,"
           "observaciones,tipo_cambio_usd,total_usd,emisor_calle,emisor_numero_exterior,"
           "emisor_estado,emisor_pais,emisor_codigo_postal,receptor_calle,"
           "receptor_numero_exterior,receptor_estado,receptor_pais,receptor_codigo_postal",
    "cce_propietario": "SERIE,FOLIO,num_reg_id_trib,residencia_fiscal",
    "cce_destinatario": "SERIE,FOLIO,num_reg_id_trib,nombre,calle,numero_exterior,estado,pais,"
                        "codigo_postal",
    "cce_mercancia": "SERIE,FOLIO,no_identificacion,fraccion_arancelaria,cantidad_aduana,"
                     "unidad_aduana,valor_unitario_aduana,valor_dolares,marca,modelo",
    "carta_porte": "SERIE,FOLIO,transp_internac,perm_sct,num_permiso_sct,config_vehicular,"
                   "peso_bruto_vehicular,placa_vm,anio_modelo_vm,asegura_resp_civil,"
                   "poliza_resp_civil",
    "cp_ubicacion": "SERIE,FOLIO,tipo_ubicacion,id_ubicacion,rfc_remitente_destinatario,"
                    "nombre_remitente_destinatario,fecha_hora_salida_llegada,"
                    "distancia_recorrida,calle,numero_exterior,estado,pais,codigo_postal",
    "cp_mercancia": "SERIE,FOLIO,bienes_transp,descripcion,cantidad,clave_unidad,unidad,"
                    "material_peligroso,peso_en_kg,cantidad_transporta,id_origen,id_destino,"
                    "unidad_peso_merc,peso_bruto,peso_neto,peso_tara,num_piezas",
    "cp_remolque": "SERIE,FOLIO,sub_tipo_rem,placa",
    "cp_figura": "SERIE,FOLIO,tipo_figura,rfc_figura,num_licencia,nombre_figura,calle,"
                 "numero_exterior,estado,pais,codigo_postal,partes_transporte",
}  # fmt: skip
EMISOR_DOM = "Av. Paseo Tabasco,1203,TAB,MEX,86000"


class Export:
    """The files of one CSV export, row by row."""

    def __init__(self) -> None:
        self.rows: dict[str, list[str]] = {"H": [], "D": [], **{n: [] for n in FILES}}

    def add(self, file: str, *rows: str) -> Export:
        self.rows[file].extend(rows)
        return self

    def files(self, base: str) -> dict[str, bytes]:
        heads = {"H": H, "D": D, **HEADERS}
        suffix = {"H": "_H", "D": "_D", **FILES}
        return {
            f"{base}{suffix[k]}.csv": ("\r\n".join([heads[k], *rows]) + "\r\n").encode()
            for k, rows in self.rows.items()
        }

    def write(self, inbox: Path, base: str, skip: tuple[str, ...] = ()) -> dict[str, bytes]:
        written = {}
        for name, data in self.files(base).items():
            if not any(name.endswith(f"{s}.csv") for s in skip):
                (inbox / name).write_bytes(data)
                written[name] = data
        return written


def export_invoice(x: Export, folio: str, goods: list[tuple[str, str, str, str, str]],
                   **kw: str) -> None:  # fmt: skip
    """An export invoice in USD: goods are (artículo, clave, descripción, cantidad, precio)."""
    f = fecha()
    x.add("H", f"EC,{folio},{f},I,02,USD,17.5000,03,PUE,XEXX010101000,ACME INC,86000,616,S01,"
               "USA,121585958")  # fmt: skip
    total = 0
    for art, clave, desc, qty, price in goods:
        x.add("D", f"EC,{folio},{art},{clave},{desc},{qty},H87,Pieza,{price},02,0.000000")
        value = int(qty) * float(price)
        total += value
        x.add("cce_mercancia", f"EC,{folio},{art},8471300101,{qty},06,{price},{value:.2f},"
                               f"{kw.get('marca', '')},{kw.get('modelo', '')}")  # fmt: skip
    cert = kw.get("certificado", ",")
    x.add("cce", f"EC,{folio},A1,{cert if cert != ',' else '0,'},FOB,{kw.get('obs', '')},"
                 f"17.5000,{total:.2f},{EMISOR_DOM},Main St,1,TX,USA,73301")  # fmt: skip


def traslado(x: Export, folio: str, goods: list[tuple[str, str, str, str]], **kw: str) -> None:
    """A traslado of own goods with Carta Porte: goods are (clave, descripción, cantidad, kg)."""
    x.add("H", f"CP,{folio},{fecha()},T,01,MXN,,,,EKU9003173C9,ESCUELA KEMPER URGATE,86000,601,"
               "S01,,")  # fmt: skip
    x.add("carta_porte", f"CP,{folio},No,TPAF01,0X2XTXZ0X5X0X3X2X1X0,{kw.get('config', 'C2')},"
                         f"10.50,{kw.get('placa', '501AAA')},2020,SW Seguros,123456")  # fmt: skip
    x.add("cp_ubicacion", f"CP,{folio},Origen,OR000001,EKU9003173C9,ESCUELA KEMPER URGATE,"
                          f"2025-06-02T09:00:00,,{EMISOR_DOM}")  # fmt: skip
    destinos = kw.get("destinos", "1")
    for n in range(1, int(destinos) + 1):
        x.add("cp_ubicacion", f"CP,{folio},Destino,DE00000{n},CACX7605101P8,XOCHILT CASAS CHAVEZ,"
                              f"2025-06-0{2 + n}T07:30:00,{100 * n}.5,Calle 1,10,GUA,MEX,36257")  # fmt: skip
    for i, (clave, desc, qty, kg) in enumerate(goods, 1):
        x.add("D", f"CP,{folio},,{clave},{desc},{qty},H87,Pieza,0,01,")
        to = f"{qty},OR000001,DE00000{i}" if destinos != "1" else ",,"
        neto, tara = f"{float(kg) * 0.9:.3f}", f"{float(kg) * 0.1:.3f}"
        detail = f"KGM,{kg},{neto},{tara},{qty}" if kw.get("detalle") else ",,,,"
        x.add("cp_mercancia", f"CP,{folio},{clave},{desc},{qty},H87,Pieza,No,{kg},{to},{detail}")
    x.add("cp_figura", f"CP,{folio},01,VAAM130719H60,a234567890,Miguel Vázquez,,,,,,")
    if kw.get("propietario"):
        x.add("cp_figura", f"CP,{folio},02,EKU9003173C9,,ESCUELA KEMPER URGATE,{EMISOR_DOM},"
                           "PT01 PT05")  # fmt: skip


def workspace(tmp_path: Path, sandbox: object, source: str = SOURCE) -> Path:
    config = write_config(
        tmp_path / "ws",
        timbrado_url=sandbox.fel_timbrado_url,  # type: ignore[attr-defined]
        sat_cert_der=sandbox.certificate_der,  # type: ignore[attr-defined]
        extra_sources=source,
    )
    (config.parent / "inbox-cx").mkdir()
    return config


def _errors(ws: Path, header: str) -> list[tuple[str, str, str]]:
    doc = json.loads((ws / "failed" / f"{header}.error.json").read_text("utf-8"))
    return [(e["code"], e["location"], e["message"]) for e in doc["errors"]]


def _valid_export() -> Export:
    x = Export()
    export_invoice(x, "1", [("USB32", "43201800", "Memoria USB 32 GB", "10", "100.00")])
    export_invoice(x, "2", [("USB32", "43201800", "Memoria USB 32 GB", "10", "100.00"),
                            ("LAP14", "43211503", "Computadora portátil", "5", "250.50")])  # fmt: skip
    export_invoice(x, "3", [("LAP14", "43211503", "Computadora portátil", "2", "999.99")],
                   marca="Lenovo", modelo="ThinkPad T14")  # fmt: skip
    export_invoice(x, "4", [("USB32", "43201800", "Memoria USB 32 GB", "1", "7.25")])
    x.add("cce_destinatario", "EC,4,998877,ACME WAREHOUSE,Dock Rd,7,CA,USA,90001")
    export_invoice(x, "5", [("USB32", "43201800", "Memoria USB 32 GB", "3", "100.00")],
                   certificado="1,CO-2025-0001", obs="Entrega en frontera")  # fmt: skip
    traslado(x, "1", [("52161557", "Control de juego", "40", "24.000")])
    traslado(x, "2", [("52161557", "Control de juego", "4", "2.400"),
                      ("43211503", "Computadora portátil", "12", "28.800")])  # fmt: skip
    traslado(x, "3", [("52161557", "Control de juego", "4", "2.400"),
                      ("43211503", "Computadora portátil", "12", "28.800")],
             destinos="2")  # fmt: skip
    traslado(x, "4", [("43201800", "Memoria USB", "100", "1.000")], placa="XYZ987", detalle="1")
    traslado(x, "5", [("52161557", "Control de juego", "400", "240.000")], propietario="1")
    return x


def test_five_exports_and_five_traslados_from_a_csv_set_are_stamped_valid(
    tmp_path: Path, sandbox
) -> None:
    config = workspace(tmp_path, sandbox)
    ws = config.parent
    written = _valid_export().write(ws / "inbox-cx", "ventas_0415")
    assert len(written) == 11  # header, lines and the 9 complements' files
    run_once(config)
    errors = list((ws / "failed").glob("*.error.txt"))
    assert errors == [], errors[0].read_text(encoding="utf-8") if errors else ""
    assert set(stamps_by_key(sandbox.store)) == {
        (s, str(i)) for s in ("EC", "CP") for i in range(1, 6)
    }
    xmls = sorted((ws / "out" / "xml").glob("*.xml"))
    assert len(xmls) == 10
    for path in xmls:
        xml = path.read_bytes()
        assert validate_xsd(xml) == [], path.name
        assert verify_seal(xml) == [], path.name
        assert verify_tfd(xml, sandbox.certificate_der) == [], path.name
        assert cadena_original(xml) == cadena_original_xslt(xml), path.name
        c = from_xml(xml)
        if path.name.startswith("EC"):
            assert c.ComercioExterior is not None and c.CartaPorte is None, path.name
            assert b"<cce20:ComercioExterior" in xml
        else:
            assert c.CartaPorte is not None and c.ComercioExterior is None, path.name
            assert c.CartaPorte.Mercancias.Autotransporte is not None
    docs = {p.name.split("_")[0]: from_xml(p.read_bytes()) for p in xmls}
    assert [m.NoIdentificacion for m in docs["EC2"].ComercioExterior.Mercancias] == ["USB32", "LAP14"]  # fmt: skip
    (desc,) = docs["EC3"].ComercioExterior.Mercancias[0].DescripcionesEspecificas
    assert (desc.Marca, desc.Modelo) == ("Lenovo", "ThinkPad T14")
    (dest,) = docs["EC4"].ComercioExterior.Destinatario
    assert dest.Nombre == "ACME WAREHOUSE" and dest.Domicilio[0].Estado == "CA"
    assert docs["EC5"].ComercioExterior.NumCertificadoOrigen == "CO-2025-0001"
    assert [u.TipoUbicacion for u in docs["CP3"].CartaPorte.Ubicaciones] == [
        "Origen", "Destino", "Destino"
    ]  # fmt: skip
    assert docs["CP4"].CartaPorte.Mercancias.Mercancia[0].DetalleMercancia is not None
    assert [f.TipoFigura for f in docs["CP5"].CartaPorte.FiguraTransporte] == ["01", "02"]
    # the eleven files are archived together, under their names, as they were written
    (day,) = (ws / "archive").iterdir()
    assert {p.name: p.read_bytes() for p in day.iterdir()} == written
    assert list((ws / "inbox-cx").iterdir()) == []


def test_bad_sets_fail_whole_with_coded_errors_naming_file_and_line(
    tmp_path: Path, sandbox, capsys
) -> None:
    from connector.cli import main

    config = workspace(tmp_path, sandbox, SOURCE.replace("orphan_seconds = 600",
                                                         "orphan_seconds = 0.5"))  # fmt: skip
    ws = config.parent
    inbox = ws / "inbox-cx"
    # a mercancía whose invoice is not in the header file
    a = Export()
    export_invoice(a, "11", [("USB32", "43201800", "Memoria USB 32 GB", "10", "100.00")])
    a.add("cce_mercancia", "EC,99,USB32,8471300101,1,06,1.00,1.00,,")
    files_a = a.write(inbox, "ventas_0501")
    # an export whose mercancías file never arrives
    b = Export()
    export_invoice(b, "12", [("USB32", "43201800", "Memoria USB 32 GB", "10", "100.00")])
    files_b = b.write(inbox, "ventas_0502", skip=("_CCEM",))
    # malformed values, and a mercancía of an invoice without its complement's row
    c = Export()
    export_invoice(c, "13", [("USB32", "43201800", "Memoria USB 32 GB", "10", "100.00")])
    c.rows["cce_mercancia"][0] = c.rows["cce_mercancia"][0].replace(",1000.00,", ",1000.0x,")
    traslado(c, "13", [("52161557", "Control de juego", "40", "24.000")])
    c.rows["cp_ubicacion"][1] = c.rows["cp_ubicacion"][1].replace("2025-06-03T07:30:00", "mañana")
    x = Export()
    export_invoice(x, "14", [("USB32", "43201800", "Memoria USB 32 GB", "10", "100.00")])
    c.add("H", *x.rows["H"]).add("D", *x.rows["D"]).add("cce_mercancia", *x.rows["cce_mercancia"])
    traslado(c, "15", [("52161557", "Control de juego", "40", "24.000")])  # a valid one
    c.write(inbox, "ventas_0503")
    # a column that is not one of the file's: nothing of the set is read
    d = Export()
    traslado(d, "16", [("52161557", "Control de juego", "40", "24.000")])
    files_d = d.files("ventas_0504")
    files_d["ventas_0504_CPU.csv"] = files_d["ventas_0504_CPU.csv"].replace(
        b",codigo_postal", b",codigo_postl", 1
    )
    for name, data in files_d.items():
        (inbox / name).write_bytes(data)
    run_once(config)

    assert set(stamps_by_key(sandbox.store)) == {("EC", "11"), ("CP", "15")}
    failed = {p.name for p in (ws / "failed").iterdir()}
    for base, count in (("ventas_0501", 11), ("ventas_0502", 10), ("ventas_0503", 11),
                        ("ventas_0504", 11)):  # fmt: skip
        assert len([n for n in failed if n.startswith(base) and n.endswith(".csv")]) == count
        assert f"{base}_H.csv.error.json" in failed  # one error file, named after the header
    assert list(inbox.iterdir()) == [] and list((ws / "archive").rglob("*.csv")) == []
    assert (ws / "failed" / "ventas_0501_CCEM.csv").read_bytes() == files_a["ventas_0501_CCEM.csv"]

    ((code, where, message),) = _errors(ws, "ventas_0501_H.csv")
    assert (code, where) == ("CONN-CSV-KEY", "ventas_0501_CCEM.csv:3")
    assert "SERIE='EC', FOLIO='99'" in message and "no tiene factura en ventas_0501_H.csv" in message

    ((code, where, message),) = _errors(ws, "ventas_0502_H.csv")
    assert code == "CONN-PAR-INCOMPLETO" and "ventas_0502_CCEM.csv" in message
    assert set(files_b) <= failed

    found = {(e[0], e[1]) for e in _errors(ws, "ventas_0503_H.csv")}
    messages = " ".join(e[2] for e in _errors(ws, "ventas_0503_H.csv"))
    assert ("CONN-MAP-NUMBER", "ventas_0503_CCEM.csv:2:valor_dolares") in found, found
    assert ("CONN-XSD", "ventas_0503_CPU.csv:3:fecha_hora_salida_llegada") in found, found
    assert ("CONN-CSV-COMPLEMENTO", "ventas_0503_CCEM.csv:3") in found, found
    assert "ventas_0503_CCE.csv" in messages and "1000.0x" in messages

    ((code, where, message),) = _errors(ws, "ventas_0504_H.csv")
    assert (code, where) == ("CONN-CSV-HEADER", "ventas_0504_CPU.csv:1")
    assert "codigo_postl" in message and "cfdi_cp_ubicacion" in message

    # replay puts the whole set back in the inbox, under matching names
    assert main(["replay", "--config", str(config), "--file", "ventas_0502_H.csv"]) == 0
    back = sorted(p.name for p in inbox.iterdir())
    assert back == sorted(files_b), capsys.readouterr().out


CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from connector.adapters.folder import FolderSource
    from connector.config import check_config

    cfg, _ = check_config(sys.argv[1])
    s = cfg.source(sys.argv[2])
    work = s.work / sys.argv[4] if sys.argv[4] else s.work  # <work>/<instance>/ when shared
    src = FolderSource(s.inbox, work, include=s.include, stable_seconds=0,
                       done_marker=s.done_marker, pair=s.pair.spec())
    real, left = os.rename, [int(sys.argv[3])]
    def rename(a, b):  # the kernel kills us right after the N-th rename into work/
        real(a, b)
        if os.path.dirname(os.fspath(b)) == os.fspath(work):
            left[0] -= 1
            if left[0] == 0:
                os.kill(os.getpid(), signal.SIGKILL)
    os.rename = rename
    (path,) = src.scan()
    src.claim(path)
    """
)


@pytest.mark.parametrize(("after", "journal"), [(1, "sqlite"), (2, "sqlite"), (3, "sqlite"),
                                                (2, "postgresql")])  # fmt: skip
def test_a_set_claim_killed_between_its_renames_is_finished_and_stamped_whole(
    tmp_path: Path, sandbox, after: int, journal: str, request: pytest.FixtureRequest
) -> None:
    """With a PostgreSQL journal the instance claims into ``<work>/<instance>/``."""
    source = SOURCE.replace(json.dumps(list(FILES)), '["cce", "cce_mercancia"]')
    config = workspace(tmp_path, sandbox, source)
    ws = config.parent
    instance = ""
    if journal == "postgresql":
        from tests.daemon.conftest import pg_schema_url

        url = pg_schema_url(request.getfixturevalue("pg_journal_db"))
        instance = "cx1"
        text = config.read_text(encoding="utf-8")
        config.write_text(text.replace('journal = "var/journal.sqlite"',
                                       f'journal = "{url}"\ninstance = "{instance}"'),
                          encoding="utf-8")  # fmt: skip
    x = Export()
    export_invoice(x, "21", [("USB32", "43201800", "Memoria USB 32 GB", "10", "100.00")])
    written = {
        n: b for n, b in x.files("ventas_0601").items() if n[len("ventas_0601"):] in (
            "_H.csv", "_D.csv", "_CCE.csv", "_CCEM.csv")
    }  # fmt: skip
    for name, data in written.items():
        (ws / "inbox-cx" / name).write_bytes(data)
    proc = subprocess.run([sys.executable, "-c", CHILD, str(config), "csv-complementos",
                           str(after), instance], cwd=REPO, capture_output=True)  # fmt: skip
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    assert len(os.listdir(ws / "inbox-cx")) == 4 - after  # killed mid-claim
    cfg, _ = check_config(config)
    assert cfg is not None
    work = cfg.source("csv-complementos").work
    assert work is not None
    work = work / instance if instance else work
    hidden = [n for n in os.listdir(work) if n.startswith(".")]
    assert len(hidden) == 1 and hidden[0].endswith("ventas_0601_H.csv.claiming")
    run_once(config)
    assert {k: len(v) for k, v in stamps_by_key(sandbox.store).items()} == {("EC", "21"): 1}
    (day,) = (ws / "archive").iterdir()
    assert {p.name: p.read_bytes() for p in day.iterdir()} == written
    assert list((ws / "failed").iterdir()) == [] and list((ws / "inbox-cx").iterdir()) == []
    assert list(work.iterdir()) == []


def test_check_config_reports_bad_complement_files(tmp_path: Path, sandbox) -> None:
    bad = SOURCE.replace(json.dumps(list(FILES)), '["cce_mercanci", "cp_ubicacion"]')
    config = workspace(tmp_path, sandbox, bad)
    cfg, problems = check_config(config)
    assert cfg is None
    (p,) = [p for p in problems if p.path.endswith(".pair")]
    assert p.code == "CONN-CFG-VALOR"
    assert "'cce_mercanci' no es un archivo de complemento" in p.message
    assert "cp_ubicacion necesita el archivo carta_porte" in p.message
    good, problems = check_config(workspace(tmp_path / "ok", sandbox))
    assert good is not None and [p for p in problems if p.severity != "warning"] == []


def test_submit_takes_the_set_beside_the_header_file(tmp_path: Path, sandbox, capsys) -> None:
    from connector.cli import main

    source = SOURCE.replace(json.dumps(list(FILES)), '["carta_porte", "cp_ubicacion", '
                                                     '"cp_mercancia", "cp_figura"]')  # fmt: skip
    config = workspace(tmp_path, sandbox, source)
    given = tmp_path / "given"
    given.mkdir()
    x = Export()
    traslado(x, "31", [("52161557", "Control de juego", "40", "24.000")])
    wanted = ("_H.csv", "_D.csv", "_CP.csv", "_CPU.csv", "_CPM.csv", "_CPF.csv")
    files = {n: b for n, b in x.files("viaje_31").items() if n.endswith(wanted)}
    for name, data in files.items():
        (given / name).write_bytes(data)
    args = ["submit", str(given / "viaje_31_H.csv"), "--config", str(config)]
    assert main([*args, "--source", "csv-complementos"]) == 0, capsys.readouterr().out
    assert "TIMBRADA CP31" in capsys.readouterr().out
    assert {k: len(v) for k, v in stamps_by_key(sandbox.store).items()} == {("CP", "31"): 1}
    assert sorted(p.name for p in given.iterdir()) == sorted(files)  # the given files stay
