"""Where a configuration's passwords come from, and reading them.

``_Cfg`` is the base of every table of the configuration (unknown options are errors);
``SecretSource`` names exactly one of an environment variable, a file, a systemd credential or
an OS keyring entry; ``read_secret`` reads it or raises ``SecretError`` (coded, in Spanish).
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import (
    BaseModel,
    ConfigDict,
    field_validator,
)


class _Cfg(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SecretSource(_Cfg):
    """Where a password comes from: exactly one of env, file, systemd credential, keyring."""

    password_env: str | None = None
    password_file: Path | None = None
    password_keyring: str | None = None  # "service/user"
    # a systemd credential's name (LoadCredential=NAME:...): $CREDENTIALS_DIRECTORY/NAME
    password_credential: str | None = None

    @field_validator("password_credential")
    @classmethod
    def _credential(cls, v: str | None) -> str | None:
        if v is not None and (not v or "/" in v or "\\" in v or v in (".", "..")):
            raise ValueError(f"el nombre de credencial {v!r} no puede llevar '/' ni estar vacío")
        return v


class SecretError(Exception):
    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"{code} {message}")


def read_secret(src: SecretSource, what: str) -> str:
    """The password ``src`` points at; ``SecretError`` (Spanish) when it cannot be read."""
    of = f"del {what[3:]}" if what.startswith("el ") else f"de {what}"  # "del PAC", not "de el"
    given = [
        x
        for x in (src.password_env, src.password_file, src.password_keyring,
                  src.password_credential)
        if x
    ]  # fmt: skip
    if len(given) != 1:
        raise SecretError(
            "CONN-CFG-SECRETO",
            f"La contraseña {of} debe venir de exactamente una fuente: "
            "password_env, password_file, password_credential o password_keyring.",
        )
    if src.password_credential:
        folder = os.environ.get("CREDENTIALS_DIRECTORY")
        if not folder:
            raise SecretError(
                "CONN-CFG-SECRETO",
                f"La contraseña {of} viene de la credencial {src.password_credential!r} de "
                "systemd, pero CREDENTIALS_DIRECTORY no está definida: el servicio debe "
                f"declarar LoadCredential={src.password_credential}:<archivo> en su unidad.",
            )
        try:
            path = Path(folder) / src.password_credential
            return path.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise SecretError(
                "CONN-CFG-SECRETO",
                f"No se puede leer la credencial {src.password_credential!r} con la contraseña "
                f"{of} en {folder}: {exc.strerror or exc}.",
            ) from exc
    if src.password_env:
        value = os.environ.get(src.password_env)
        if value is None:
            raise SecretError(
                "CONN-CFG-SECRETO",
                f"La variable de entorno {src.password_env} con la contraseña {of} "
                "no está definida.",
            )
        return value
    if src.password_file:
        try:
            return Path(src.password_file).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise SecretError(
                "CONN-CFG-SECRETO",
                f"No se puede leer el archivo de contraseña {of} "
                f"({src.password_file}): {exc.strerror or exc}.",
            ) from exc
    service, _, user = (src.password_keyring or "").partition("/")
    try:
        import keyring  # optional dependency
    except ImportError as exc:
        raise SecretError(
            "CONN-CFG-SECRETO",
            f"La contraseña {of} viene del llavero del sistema, pero el paquete "
            "'keyring' no está instalado (pip install keyring).",
        ) from exc
    value = keyring.get_password(service, user)
    if value is None:
        raise SecretError(
            "CONN-CFG-SECRETO",
            f"El llavero del sistema no tiene la contraseña {of} "
            f"(servicio {service!r}, usuario {user!r}).",
        )
    return value
