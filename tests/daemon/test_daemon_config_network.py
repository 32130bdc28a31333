"""Per-PAC ``proxy`` (password from env/file/keyring, never in the address) and ``ca_bundle``
in the configuration: check-config validates them, and ``pac_network`` builds the driver's
plain settings; the daemon's driver goes through the configured proxy."""

from __future__ import annotations

from pathlib import Path

import pytest
from pac.proxy_support import Proxy  # tests/pac, on the path as the package "pac"

from connector.config import check_config, load_config, pac_network


def with_pac_lines(workspace: Path, *lines: str) -> Path:
    text = workspace.read_text(encoding="utf-8")
    text = text.replace(
        'usuario = "demo"\n', 'usuario = "demo"\n' + "".join(f"{x}\n" for x in lines), 1
    )
    workspace.write_text(text, encoding="utf-8")
    return workspace


def problems(path: Path) -> list[tuple[str, str, str]]:
    _, found = check_config(path)
    return [(p.code, p.path, p.message) for p in found if p.severity == "error"]


@pytest.mark.parametrize(
    ("lines", "fact"),
    [
        (['proxy = "http://juan:clave@proxy.empresa.mx:3128"'], "lleva la contraseña dentro"),
        (['proxy = "http://juan@proxy.empresa.mx:3128"'], "falta su contraseña"),
        (['proxy = "http://proxy.empresa.mx"'], "le falta el puerto"),
        (['proxy = "socks5://proxy.empresa.mx:1080"'], "http:// o https://"),
        (['proxy_password_env = "PROXY_PW"'], "no 'proxy'"),
        (
            ['proxy = "http://proxy.empresa.mx:3128"', 'proxy_password_env = "PROXY_PW"'],
            "no usuario",
        ),
    ],
)
def test_check_config_refuses_a_proxy_it_cannot_use(workspace, lines, fact):
    found = problems(with_pac_lines(workspace, *lines))
    proxy = [p for p in found if p[0] == "CONN-CFG-PROXY"]
    assert len(proxy) == 1, found
    assert proxy[0][1] == "pacs[0].proxy" and fact in proxy[0][2]
    assert "clave" not in proxy[0][2]  # a password put in the address is never repeated


def test_check_config_checks_the_ca_bundle_and_the_proxy_password(workspace, monkeypatch):
    (workspace.parent / "ca.pem").write_text("no es un certificado\n", encoding="utf-8")
    monkeypatch.delenv("PROXY_PW", raising=False)
    path = with_pac_lines(
        workspace,
        'proxy = "http://juan@127.0.0.1:3128"',
        'proxy_password_env = "PROXY_PW"',
        'ca_bundle = "ca.pem"',
    )
    found = problems(path)
    assert [p[:2] for p in found] == [
        ("CONN-CFG-CA", "pacs[0].ca_bundle"),
        ("CONN-CFG-SECRETO", "pacs[0].proxy"),
    ], found
    assert "PROXY_PW" in found[1][2] and "proxy" in found[1][2]


def test_pac_network_puts_the_password_in_and_the_ca_bundle(workspace, monkeypatch, tmp_path):
    monkeypatch.setenv("PROXY_PW", "p@ss:w/rd")
    ca = tmp_path / "ws" / "empresa-ca.pem"
    ca.write_text("(the company's CA, PEM)\n", encoding="utf-8")
    path = with_pac_lines(
        workspace,
        'proxy = "http://juan@proxy.empresa.mx:3128"',
        'proxy_password_env = "PROXY_PW"',
        'ca_bundle = "empresa-ca.pem"',
    )
    cfg = load_config(path)
    net = pac_network(cfg.pacs[0])
    assert net == {"verify": str(ca), "proxy": "http://juan:p%40ss%3Aw%2Frd@proxy.empresa.mx:3128"}
    assert "p@ss" not in repr(cfg.pacs[0])


def test_the_daemon_stamps_through_the_configured_proxy(workspace, sandbox, monkeypatch):
    from connector.pipeline import make_driver

    monkeypatch.setenv("PROXY_PW", "Clave-Proxy-1")
    with Proxy("juan", "Clave-Proxy-1") as proxy:
        path = with_pac_lines(
            workspace,
            f'proxy = "http://juan@127.0.0.1:{proxy.port}"',
            'proxy_password_env = "PROXY_PW"',
        )
        cfg = load_config(path)
        d = make_driver(cfg.pacs[0], pool_size=2)
        try:
            assert d.credits().restantes is not None
        finally:
            d.close()
        assert proxy.forwarded and b"ConsultarCreditos" not in proxy.forwarded[0]
        assert proxy.refused == []
