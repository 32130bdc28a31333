"""check-config reports every problem at once, with where it is and a Spanish message."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.config import ConfigError, KeyLocator, check_config, load_config, read_secret


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "connector.toml"
    p.write_text(text, encoding="utf-8")
    return p


GOOD_SHAPE = """
[daemon]
journal = "var/journal.sqlite"
workers = 8

[[emisores]]
rfc = "EKU9003173C9"
cer = "csd/x.cer"
key = "csd/x.key"
password_env = "CFDI_TEST_CSD_PW"

[[pacs]]
name = "fel"
kind = "fel"
url = "http://127.0.0.1:9/timbrado"
usuario = "demo"
password_env = "CFDI_TEST_PAC_PW"

[[sources]]
name = "ventas"
inbox = "inbox"
adapter = "dat"
emisor = "EKU9003173C9"
pac = "fel"
archive = "archive"
failed = "failed"
[sources.output]
xml = "out/xml"
"""


def test_shape_loads_and_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, GOOD_SHAPE))
    s = cfg.source("ventas")
    assert s.inbox == tmp_path / "inbox"
    assert s.work == tmp_path / "work" / "ventas"
    assert s.output.xml == tmp_path / "out" / "xml"
    assert cfg.daemon.journal == tmp_path / "var" / "journal.sqlite"
    assert cfg.emisor("eku9003173c9").cer == tmp_path / "csd" / "x.cer"
    assert cfg.pac("fel").retry.attempts >= 1
    assert s.filename_pattern == "{serie}{folio}_{uuid}"


def test_check_config_reports_every_error_with_line_numbers(tmp_path: Path) -> None:
    text = GOOD_SHAPE.replace('pac = "fel"', 'pac = "otro"').replace(
        'emisor = "EKU9003173C9"', 'emisor = "XAXX010101000"'
    )
    text = text.replace('kind = "fel"', 'kind = "acme"\npassword = "secreto"')
    text += '\n[[sources]]\nname = "b"\ninbox = "inbox"\nadapter = "dat"\n'
    path = write(tmp_path, text)
    cfg, problems = check_config(path)
    assert cfg is None
    codes = [p.code for p in problems]
    by_path = {p.path: p for p in problems}
    # plain password in the file, unknown PAC kind, unknown emisor and PAC of the source
    assert "CONN-CFG-SECRETO" in codes
    assert by_path["pacs[0].password"].location.startswith(f"{path}:")
    assert "pacs[0].password" in by_path
    # a second source missing required keys: reported, at its line
    missing = [
        p for p in problems if p.path.startswith("sources[1]") and p.code == "CONN-CFG-VALOR"
    ]
    assert {p.path for p in missing} >= {
        "sources[1].emisor",
        "sources[1].pac",
        "sources[1].archive",
        "sources[1].failed",
        "sources[1].output",
    }
    line_of_second = (
        text.splitlines().index("[[sources]]", text.splitlines().index("[[sources]]") + 1) + 1
    )
    assert all(p.location.startswith(f"{path}:{line_of_second} ") for p in missing)
    assert all("obligatorio" in p.message for p in missing)


def test_check_config_reports_references_folders_and_secrets_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CFDI_TEST_CSD_PW", raising=False)
    monkeypatch.delenv("CFDI_TEST_PAC_PW", raising=False)
    text = (
        GOOD_SHAPE.replace('pac = "fel"', 'pac = "otro"')
        .replace('emisor = "EKU9003173C9"', 'emisor = "XAXX010101000"')
        .replace('kind = "fel"', 'kind = "acme"')
        .replace('adapter = "dat"', 'adapter = "dat"\nmapping = "no-existe.toml"')
    )
    path = write(tmp_path, text)
    cfg, problems = check_config(path)
    assert cfg is None
    found = {(p.code, p.path) for p in problems}
    expected = {
        ("CONN-CFG-PAC", "pacs[0].kind"),
        ("CONN-CFG-PAC", "sources[0].pac"),
        ("CONN-CFG-EMISOR", "sources[0].emisor"),
        ("CONN-CFG-CARPETA", "daemon.journal"),
        ("CONN-CFG-CARPETA", "sources[0].inbox"),
        ("CONN-CFG-CARPETA", "sources[0].archive"),
        ("CONN-CFG-CARPETA", "sources[0].failed"),
        ("CONN-CFG-CARPETA", "sources[0].output.xml"),
        ("CONN-CFG-CSD", "emisores[0].cer"),
        ("CONN-CFG-CSD", "emisores[0].key"),
        ("CONN-CFG-SECRETO", "emisores[0]"),
        ("CONN-CFG-SECRETO", "pacs[0]"),
        ("CONN-CFG-MAPEO", "sources[0].mapping"),
    }
    assert expected <= found, expected - found
    lines = text.splitlines()
    kind = next(p for p in problems if p.path == "pacs[0].kind")
    kind_line = lines.index('kind = "acme"') + 1
    assert kind.location == f"{path}:{kind_line} (pacs[0].kind)"
    inbox = next(p for p in problems if p.path == "sources[0].inbox")
    assert "no existe" in inbox.message


def test_toml_syntax_error_has_a_line(tmp_path: Path) -> None:
    path = write(tmp_path, '[daemon]\njournal = "x"\nworkers = = 3\n')
    cfg, problems = check_config(path)
    assert cfg is None
    assert problems[0].code == "CONN-CFG-TOML" and problems[0].location == f"{path}:3"


def test_load_config_raises_with_all_problems(tmp_path: Path) -> None:
    path = write(tmp_path, '[daemon]\nworkers = 0\npoll_seconds = "x"\nbogus = 1\n')
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    paths = {p.path for p in exc.value.problems}
    assert {"daemon.workers", "daemon.poll_seconds", "daemon.bogus"} <= paths


def test_missing_config_file(tmp_path: Path) -> None:
    cfg, problems = check_config(tmp_path / "nope.toml")
    assert cfg is None and problems[0].code == "CONN-CFG-ARCHIVO"


def test_secret_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from connector.config import SecretError, SecretSource

    monkeypatch.setenv("X_PW", "from-env")
    assert read_secret(SecretSource(password_env="X_PW"), "x") == "from-env"
    f = tmp_path / "pw.txt"
    f.write_text("from-file\n", encoding="utf-8")
    assert read_secret(SecretSource(password_file=f), "x") == "from-file"
    with pytest.raises(SecretError):
        read_secret(SecretSource(), "x")
    with pytest.raises(SecretError):
        read_secret(SecretSource(password_env="X_PW", password_file=f), "x")
    with pytest.raises(SecretError) as exc:
        read_secret(SecretSource(password_file=tmp_path / "none"), "el CSD")
    assert "el CSD" in exc.value.message


def test_key_locator_handles_arrays_of_tables() -> None:
    loc = KeyLocator.from_text(
        '[[sources]]\nname = "a"\n[sources.output]\nxml = "x"\n[[sources]]\nname = "b"\n'
    )
    assert loc.line("sources[0].output.xml") == 4
    assert loc.line("sources[1].name") == 6
    assert loc.line("sources[1].inbox") == 5  # missing key: the table's header


def test_the_example_configuration_loads() -> None:
    example = Path(__file__).resolve().parents[2] / "config" / "connector.example.toml"
    cfg = load_config(example)
    s = cfg.source("ventas")
    assert s.adapter == "dat" and s.mode == "stamp" and s.output.pdf is not None
    assert cfg.pac("fel").url_remote and cfg.emisor("EKU9003173C9").password_env == "CSD_PASSWORD"
    # references are consistent; only machine-specific folders/CSD are missing here
    _, problems = check_config(example, deep=False)
    assert [p for p in problems if p.code != "CONN-CFG-CARPETA"] == []


def test_mapping_file_errors_are_reported_one_by_one(tmp_path: Path) -> None:
    mapping = tmp_path / "ventas.mapping.toml"
    mapping.write_text(
        '[mapping]\nname = "x"\n[Comprobante]\nSerie = { lookup = "nope", key = "X", '
        'column = "y" }\nFoo = "BAR"\n',
        encoding="utf-8",
    )
    broken = tmp_path / "roto.mapping.toml"
    broken.write_text("[[[ esto no es TOML\n", encoding="utf-8")
    text = GOOD_SHAPE.replace('adapter = "dat"', 'adapter = "dat"\nmapping = "ventas.mapping.toml"')
    text += (
        text[text.index("[[sources]]") :]
        .replace('"ventas"', '"otra"')
        .replace("ventas.mapping.toml", "roto.mapping.toml")
    )
    _, problems = check_config(write(tmp_path, text))
    first = [p for p in problems if p.path == "sources[0].mapping"]
    assert {p.code for p in first} == {"CONN-MAPPING"}
    assert any("'nope'" in p.message for p in first)
    assert any("'Foo' no es un campo" in p.message for p in first)
    assert all("ventas.mapping.toml" in p.message for p in first)
    second = [p for p in problems if p.path == "sources[1].mapping"]
    assert second and "roto.mapping.toml" in second[0].message


def test_shape_errors_do_not_hide_the_other_checks(tmp_path: Path) -> None:
    # sources[0] has a misspelled option; sources[1] is well formed but its folders are missing
    # and it names an unknown PAC: all of it is reported in one run
    text = GOOD_SHAPE.replace('adapter = "dat"', 'adapter = "dat"\nstable_secnds = 2', 1)
    second = (
        text[text.index("[[sources]]") :]
        .replace('"ventas"', '"b"')
        .replace('pac = "fel"', 'pac = "nadie"')
        .replace("stable_secnds = 2\n", "")
        .replace('inbox = "inbox"', 'inbox = "in-b"')
    )
    path = write(tmp_path, text + second)
    cfg, problems = check_config(path)
    assert cfg is None
    found = {(p.code, p.path) for p in problems}
    assert ("CONN-CFG-VALOR", "sources[0].stable_secnds") in found
    assert ("CONN-CFG-PAC", "sources[1].pac") in found
    assert ("CONN-CFG-CARPETA", "sources[1].inbox") in found
    assert ("CONN-CFG-CSD", "emisores[0].cer") in found
    lines = (text + second).splitlines()
    pac_line = lines.index('pac = "nadie"') + 1
    pac = next(p for p in problems if p.path == "sources[1].pac")
    assert pac.location == f"{path}:{pac_line} (sources[1].pac)"
    # the broken source is checked too (its folders), without reporting its option twice
    assert ("CONN-CFG-CARPETA", "sources[0].inbox") in found
    errors = [p for p in problems if p.severity == "error"]
    assert [p.path for p in errors if p.path.startswith("sources[0].stable")] == [
        "sources[0].stable_secnds"
    ]


def test_remote_mode_needs_fel_conexion_remota(tmp_path: Path) -> None:
    text = GOOD_SHAPE.replace('pac = "fel"', 'pac = "fel"\nmode = "remote"')
    _, problems = check_config(write(tmp_path, text), deep=False)
    assert any(p.path == "sources[0].mode" and "url_remote" in p.message for p in problems)
    _, problems = check_config(
        write(tmp_path, text.replace('kind = "fel"', 'kind = "finkok"')), deep=False
    )
    assert any(p.path == "sources[0].mode" and "solo ofrece FEL" in p.message for p in problems)


def test_adapter_options_are_checked(tmp_path: Path) -> None:
    text = GOOD_SHAPE.replace(
        'adapter = "dat"', 'adapter = "dat"\noptions = { charset = "latin1" }'
    )
    _, problems = check_config(write(tmp_path, text))
    (p,) = [p for p in problems if p.path == "sources[0].options"]
    assert p.code == "CONN-CFG-ADAPTADOR" and "charset" in p.message


def test_check_config_cli_reports_shape_and_deeper_problems_in_one_run(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Issue 17.7: every entry below has a shape error AND deeper problems; before, the
    entries with shape errors were left out and the rest only appeared after fixing them."""
    from connector.cli import main

    (tmp_path / "binario.mapping.toml").write_bytes(b"\x00\xff\xfe\x89PNG\r\n\x1a\n" * 4)
    (tmp_path / "csd").mkdir()
    (tmp_path / "csd" / "x.cer").write_bytes(b"no es un certificado")
    text = """
[daemon]
journal = "var/journal.sqlite"
workers = 0

[[emisores]]
rfc = "EKU9003173C9"
cer = "csd/x.cer"
key = "csd/no-existe.key"
series = "A"

[[pacs]]
name = "fel"
kind = "acme"
url = "http://127.0.0.1:9/timbrado"
usuario = "demo"
timeout_seconds = "mucho"

[[sources]]
name = "ventas"
inbox = "inbox"
adapter = "excel"
emisor = "XAXX010101000"
pac = "fel"
mapping = "binario.mapping.toml"
stable_secnds = 2
archive = "archive"
failed = "failed"
[sources.output]
xml = "out/xml"
pdf = 3

[[sources]]
name = "ventas"
inbox = "inbox-b"
adapter = "dat"
emisor = "EKU9003173C9"
pac = "otro"
mapping = "falta.mapping.toml"
polling = "a veces"
archive = "archive"
failed = "failed"
[sources.output]
xml = "out/xml"
"""
    path = write(tmp_path, text)
    assert main(["check-config", "--config", str(path)]) == 2
    out = capsys.readouterr().out
    expected = [
        # shape errors
        ("CONN-CFG-VALOR", "daemon.workers"),
        ("CONN-CFG-VALOR", "emisores[0].series"),
        ("CONN-CFG-VALOR", "pacs[0].timeout_seconds"),
        ("CONN-CFG-VALOR", "sources[0].stable_secnds"),
        ("CONN-CFG-VALOR", "sources[0].output.pdf"),
        ("CONN-CFG-VALOR", "sources[1].polling"),
        # what the same entries hide behind them
        ("CONN-CFG-DUPLICADO", "sources[1].name"),
        ("CONN-CFG-PAC", "pacs[0].kind"),
        ("CONN-CFG-EMISOR", "sources[0].emisor"),
        ("CONN-CFG-PAC", "sources[1].pac"),
        ("CONN-CFG-ADAPTADOR", "sources[0].adapter"),
        ("CONN-CFG-CARPETA", "daemon.journal"),
        ("CONN-CFG-CARPETA", "sources[0].inbox"),
        ("CONN-CFG-CARPETA", "sources[1].inbox"),
        ("CONN-CFG-CARPETA", "sources[0].output.xml"),
        ("CONN-CFG-CSD", "emisores[0].key"),
        ("CONN-MAPPING", "sources[0].mapping"),
        ("CONN-CFG-MAPEO", "sources[1].mapping"),
        ("CONN-CFG-SECRETO", "emisores[0]"),
        ("CONN-CFG-SECRETO", "pacs[0]"),
    ]
    missing = [
        (code, kp)
        for code, kp in expected
        if not any(
            line.strip().startswith(f"{code} [{path}:") and f"({kp})]" in line
            for line in out.splitlines()
        )
    ]
    assert missing == [], out
    assert "La fuente 'ventas' está definida dos veces." in out
    assert "binario.mapping.toml: No se puede leer el archivo de mapeo: no es texto UTF-8" in out


def test_check_config_refuses_pac_urls_that_expose_the_password(
    workspace: Path, capsys: pytest.CaptureFixture
) -> None:
    """Issue 17.8: http:// to another host sends the PAC password in clear text; ftp:// and the
    like are no PAC at all. The sandbox on 127.0.0.1 (plain http) stays accepted."""
    from connector.cli import main

    assert main(["check-config", "--config", str(workspace)]) == 0  # http://127.0.0.1 sandbox
    capsys.readouterr()
    good = workspace.read_text(encoding="utf-8")
    url_line = next(line for line in good.splitlines() if line.startswith("url = "))
    for url, fact in [
        ("http://timbrado.pac.example.com/WSCFDI33.svc", "sin cifrar"),
        ("http://10.0.0.7:8080/timbrado", "sin cifrar"),
        ("ftp://pac.example.com/timbrado", "ftp://"),
        ("file:///etc/passwd", "file://"),
    ]:
        workspace.write_text(good.replace(url_line, f'url = "{url}"'), encoding="utf-8")
        assert main(["check-config", "--config", str(workspace)]) == 2, url
        out = capsys.readouterr().out
        (line,) = [x for x in out.splitlines() if "CONN-CFG-URL" in x]
        assert "(pacs[0].url)]" in line and url in line and fact in line
    for url in ("https://timbrado.pac.example.com/WSCFDI33.svc", "http://localhost:9/t"):
        workspace.write_text(good.replace(url_line, f'url = "{url}"'), encoding="utf-8")
        main(["check-config", "--config", str(workspace)])
        assert "CONN-CFG-URL" not in capsys.readouterr().out


def test_check_config_warns_about_sources_that_may_take_a_file_half_written(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A source with neither a done-marker nor stable_seconds of at least 5 s: check-config
    still accepts the configuration but says, for that source, why and what to set."""
    from connector.cli import main

    text = workspace.read_text(encoding="utf-8")
    # the workspace's two sources take files after 0.2 s; give the second a done-marker
    xml_at = text.index('name = "xml"')
    text = text[:xml_at] + 'done_marker = ".done"\n' + text[xml_at:]
    workspace.write_text(text, encoding="utf-8")
    assert main(["check-config", "--config", str(workspace)]) == 0
    out = capsys.readouterr()
    shown = out.out + out.err
    assert "AVISO CONN-CFG-ESTABLE" in shown
    assert shown.count("CONN-CFG-ESTABLE") == 1
    assert "sources[0].stable_seconds" in shown and "'ventas'" in shown
    assert "0.2 segundos" in shown and "done_marker" in shown
    workspace.write_text(text.replace("stable_seconds = 0.2", "stable_seconds = 5", 1))
    assert main(["check-config", "--config", str(workspace)]) == 0
    assert "CONN-CFG-ESTABLE" not in "".join(capsys.readouterr())
