"""Connecting over ODBC (pyodbc) and classifying what goes wrong.

The traps of pyodbc and the drivers, each handled here:

- autocommit is off by default (pyodbc's default, kept explicitly): every unit of work ends in
  an explicit commit or rollback, so an uncommitted claim never holds locks;
- pyodbc's query timeout is refused or ignored by some drivers (psqlODBC): the engine's own
  statement and lock timeouts are set after connecting (``Dialect.session_setup``);
- a connection the server killed still says it is open: errors are classified by SQLSTATE
  (and the driver's native code where the SQLSTATE is generic), and after a connection-class
  error the connection is thrown away, never reused;
- MariaDB/MySQL report *changed* rather than *matched* rows: the client flag FOUND_ROWS
  (``OPTION`` bit 2; MariaDB's driver knows no ``FOUND_ROWS=1`` alias) is added to the
  connection string, and a claim always changes a column too.

A password never appears in a message: it is passed as ``PWD`` and masked in every error text.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from typing import Any

from .dialects import DIALECTS, Dialect, dialect_for_dbms

try:  # unixODBC missing: pyodbc does not import; said as a coded problem, not a crash
    import pyodbc
except ImportError as _exc:  # pragma: no cover - depends on the machine
    pyodbc = None  # type: ignore[assignment]
    _IMPORT_ERROR: str | None = str(_exc)
else:
    _IMPORT_ERROR = None


class TableError(Exception):
    """A database failure with our code and a Spanish message; ``transient`` says whether
    waiting (backoff) can heal it (connection lost, deadlock, lock/statement timeout) or a
    person must act (login, driver, a missing table or column)."""

    def __init__(
        self, code: str, message: str, *, transient: bool, sqlstate: str = "", where: str = ""
    ) -> None:
        self.code = code
        self.message = message
        self.transient = transient
        self.sqlstate = sqlstate
        self.where = where
        super().__init__(f"{code}: {message}")


def parse_conn_str(conn_str: str) -> list[tuple[str, str]]:
    """``KEY=value;KEY={va;lue}`` → [(key, value)] (braces as ODBC quotes them)."""
    out: list[tuple[str, str]] = []
    i, n = 0, len(conn_str)
    while i < n:
        j = conn_str.find("=", i)
        if j < 0:
            if conn_str[i:].strip(" ;"):
                out.append((conn_str[i:].strip(" ;"), ""))
            break
        key = conn_str[i:j].strip(" ;")
        j += 1
        if j < n and conn_str[j] == "{":
            k = j + 1
            value = []
            while k < n:
                if conn_str[k] == "}":
                    if k + 1 < n and conn_str[k + 1] == "}":
                        value.append("}")
                        k += 2
                        continue
                    break
                value.append(conn_str[k])
                k += 1
            out.append((key, "".join(value)))
            i = conn_str.find(";", k)
            i = n if i < 0 else i + 1
        else:
            k = conn_str.find(";", j)
            k = n if k < 0 else k
            out.append((key, conn_str[j:k].strip()))
            i = k + 1
    return out


def _quote(value: str) -> str:
    if any(ch in value for ch in ";{}= ") or value != value.strip():
        return "{" + value.replace("}", "}}") + "}"
    return value


def build_conn_str(pairs: list[tuple[str, str]]) -> str:
    return ";".join(f"{k}={_quote(v)}" for k, v in pairs)


def _get(pairs: list[tuple[str, str]], key: str) -> str | None:
    for k, v in pairs:
        if k.lower() == key.lower():
            return v
    return None


def _set(pairs: list[tuple[str, str]], key: str, value: str) -> list[tuple[str, str]]:
    kept = [(k, v) for k, v in pairs if k.lower() != key.lower()]
    return [*kept, (key, value)]


def mask(text: str, secret: str | None) -> str:
    """``text`` with the password (and any ``PWD=``/``Password=`` value) replaced by ***."""
    if secret:
        text = text.replace(secret, "***")
    return re.sub(r"(?i)\b(pwd|password)=(\{[^}]*\}|[^;]*)", r"\1=***", text)


# --- drivers ------------------------------------------------------------------------------------


def installed_drivers() -> list[str]:
    return list(pyodbc.drivers()) if pyodbc is not None else []


def find_driver(dialect: Dialect, drivers: list[str] | None = None) -> str | None:
    """The installed driver for ``dialect`` (as odbcinst lists it), Unicode ones first."""
    names = installed_drivers() if drivers is None else drivers
    for pattern in dialect.driver_patterns:
        found = [d for d in names if re.search(pattern, d, re.I)]
        if found:
            found.sort(key=lambda d: (("unicode" not in d.lower()) and ("ansi" in d.lower()), d))
            return found[0]
    return None


def driver_missing(dialect: Dialect | None, driver: str | None) -> TableError:
    installed = ", ".join(installed_drivers()) or "ninguno"
    if dialect is None:
        how = "instale el controlador ODBC de su base de datos"
    else:
        how = (
            f"en Debian/Ubuntu: apt-get install unixodbc {dialect.debian_package}; "
            f"en Windows: {dialect.windows_driver}"
        )
    what = f"el controlador ODBC '{driver}'" if driver else "un controlador ODBC"
    if dialect is not None and not driver:
        what = f"un controlador ODBC de {dialect.label}"
    return TableError(
        "CONN-BD-DRIVER",
        f"No está instalado {what} ({how}). Controladores instalados: {installed}.",
        transient=False,
    )


# --- connecting ---------------------------------------------------------------------------------


@dataclass
class ConnSpec:
    """What a table source connects with: an ODBC connection string (``DSN=...`` or
    DSN-less ``DRIVER={...};SERVER=...``; a ``DRIVER`` may also be left out when ``dialect`` is
    given: the installed driver of that engine is used), the password from a secret (never in
    the string), the engine (guessed from the driver when not given), the statement timeout
    and the text encoding of drivers that hand text in the database's code page."""

    conn_str: str
    password: str | None = None
    dialect: str | None = None
    timeout_seconds: float = 30.0
    encoding: str | None = None  # e.g. "cp1252" (ANSI drivers, latin-1 columns)


def _guess_dialect(pairs: list[tuple[str, str]]) -> Dialect | None:
    driver = (_get(pairs, "DRIVER") or "").strip("{}").lower()
    for d in DIALECTS.values():
        if driver and any(re.search(p, driver, re.I) for p in d.driver_patterns):
            return d
    return None


def prepare(spec: ConnSpec) -> tuple[str, Dialect | None]:
    """The connection string actually used (driver found, password, flags) and the dialect
    known before connecting (None: read from the server after connecting)."""
    if pyodbc is None:
        raise TableError(
            "CONN-BD-DRIVER",
            "No se puede cargar pyodbc: falta unixODBC (en Debian/Ubuntu: apt-get install "
            f"unixodbc; en Windows viene con el sistema). Detalle: {_IMPORT_ERROR}",
            transient=False,
        )
    pairs = parse_conn_str(spec.conn_str)
    dialect = DIALECTS.get(spec.dialect.lower()) if spec.dialect else None
    if spec.dialect and dialect is None:
        raise TableError(
            "CONN-BD-DIALECTO",
            f"El dialecto '{spec.dialect}' no existe (disponibles: {', '.join(DIALECTS)}).",
            transient=False,
        )
    driver = _get(pairs, "DRIVER")
    if driver is None and _get(pairs, "DSN") is None:
        if dialect is None:
            raise TableError(
                "CONN-BD-CADENA",
                "La cadena de conexión no dice ni DSN ni DRIVER, y la fuente no indica el "
                "dialecto (postgresql, mariadb, sqlite, mssql, firebird).",
                transient=False,
            )
        found = find_driver(dialect)
        if found is None:
            raise driver_missing(dialect, None)
        pairs = [("DRIVER", found), *pairs]
    elif driver is not None:
        name = driver.strip("{}")
        if not name.startswith("/") and name not in installed_drivers():
            raise driver_missing(dialect or _guess_dialect(pairs), name)
        dialect = dialect or _guess_dialect(pairs)
    if spec.password is not None:
        pairs = _set(pairs, "PWD", spec.password)
    if dialect is not None and dialect.name in ("mariadb", "mysql"):
        option = _get(pairs, "OPTION") or "0"
        flags = int(option) if option.isdigit() else 0
        pairs = _set(pairs, "OPTION", str(flags | 2))  # CLIENT_FOUND_ROWS: matched rows
        if spec.encoding is None and _get(pairs, "CHARSET") is None:
            pairs = _set(pairs, "CHARSET", "utf8mb4")  # the text pyodbc sends is UTF-8
    if dialect is not None and dialect.name == "sqlite" and _get(pairs, "Timeout") is None:
        pairs = _set(pairs, "Timeout", str(max(1, int(spec.timeout_seconds * 1000))))
    return build_conn_str(pairs), dialect


def connect(spec: ConnSpec) -> tuple[Any, Dialect]:
    """An open connection (autocommit off, encodings and timeouts set) and its dialect;
    ``TableError`` (password masked) when it cannot be had."""
    conn_str, dialect = prepare(spec)
    try:
        conn = pyodbc.connect(conn_str, autocommit=False, timeout=max(1, int(spec.timeout_seconds)))
    except pyodbc.Error as exc:
        raise classify(exc, spec.password, where="conexión") from None
    try:
        if dialect is None:
            dialect = dialect_for_dbms(conn.getinfo(pyodbc.SQL_DBMS_NAME) or "")
        if dialect is None:
            raise TableError(
                "CONN-BD-DIALECTO",
                "No se reconoce el motor de la base de datos "
                f"({conn.getinfo(pyodbc.SQL_DBMS_NAME)}); indique el dialecto de la fuente.",
                transient=False,
            )
        if dialect.name == "mariadb" and "mysql" in (
            conn.getinfo(pyodbc.SQL_DBMS_NAME) or ""
        ).lower().replace("mariadb", ""):
            dialect = DIALECTS["mysql"]
        encoding = spec.encoding
        if encoding is None and dialect.name in ("mariadb", "mysql"):
            # MariaDB Connector/ODBC cuts long non-ASCII text bound as UTF-16 (pyodbc's
            # default): 2,000 'Ñ' came back as 1,992 garbled characters; UTF-8 is exact
            encoding = "utf-8"
        if encoding:
            # drivers that hand text in the database's code page (ANSI drivers, latin-1
            # columns): both C types read as that encoding, parameters sent in it
            conn.setdecoding(pyodbc.SQL_CHAR, encoding=encoding)
            conn.setdecoding(pyodbc.SQL_WCHAR, encoding=encoding)
            conn.setencoding(encoding=encoding)
        # pyodbc's own timeout: psqlODBC refuses it (HY000), others ignore it; the engine's
        # own timeouts below bound every statement
        with contextlib.suppress(pyodbc.Error):
            conn.timeout = max(1, int(spec.timeout_seconds))
        cur = conn.cursor()
        for stmt in dialect.session_setup(spec.timeout_seconds):
            try:
                cur.execute(stmt)
            except pyodbc.Error:
                if dialect.name != "firebird":  # Firebird < 4 has no statement timeout
                    raise
        conn.commit()
        return conn, dialect
    except pyodbc.Error as exc:
        close_quietly(conn)
        raise classify(exc, spec.password, where="conexión") from None
    except LookupError as exc:  # an encoding Python does not know
        close_quietly(conn)
        raise TableError(
            "CONN-BD-CODIFICACION",
            f"La codificación '{spec.encoding}' configurada para la fuente no existe ({exc}).",
            transient=False,
        ) from None
    except TableError:
        close_quietly(conn)
        raise


def close_quietly(conn: Any) -> None:
    if conn is None:
        return
    with contextlib.suppress(Exception):
        conn.rollback()
    with contextlib.suppress(Exception):
        conn.close()


# --- errors -------------------------------------------------------------------------------------

_NATIVE = re.compile(r"\((-?\d+)\)\s*\(SQL\w+\)\s*$")
# MariaDB/MySQL native codes that arrive with a generic SQLSTATE
_MY_CONNECTION = {2002, 2003, 2006, 2013, 2055, 1927, 1053, 1152, 1158, 1159, 1160, 1161}
_MY_LOCK = {1205, 1213, 1969, 3024}
# PostgreSQL SQLSTATEs outside classes 08/40 that heal by waiting
_PG_TRANSIENT = {"55P03": "lock", "57014": "lock", "57P01": "conn", "57P02": "conn",
                 "57P03": "conn", "53300": "conn"}  # fmt: skip


def sqlstate_of(exc: Exception) -> str:
    args: tuple[Any, ...] = getattr(exc, "args", ())
    return str(args[0]) if len(args) > 1 and isinstance(args[0], str) else ""


def native_code(exc: Exception) -> int | None:
    m = _NATIVE.search(_text(exc))
    return int(m.group(1)) if m else None


def _text(exc: Exception) -> str:
    args: tuple[Any, ...] = getattr(exc, "args", ())
    return str(args[1]) if len(args) > 1 else str(exc)


def classify(exc: Exception, secret: str | None = None, *, where: str = "") -> TableError:
    """A pyodbc error as our coded error (password masked): transient (connection lost,
    deadlock, lock or statement timeout: pause and retry) or permanent."""
    state = sqlstate_of(exc)
    detail = mask(_text(exc), secret)
    native = native_code(exc)
    low = detail.lower()
    at = f" ({where})" if where else ""

    def err(code: str, message: str, transient: bool) -> TableError:
        return TableError(
            code, f"{message}{at}. Detalle: {detail}", transient=transient, sqlstate=state,
            where=where,
        )  # fmt: skip

    if state.startswith("28") or native in (1045, 18456) or "password authentication" in low:
        return err("CONN-BD-LOGIN", "La base de datos rechazó el usuario o la contraseña", False)
    if state in ("IM002", "IM003", "01000") and ("driver" in low or "controlador" in low):
        return err("CONN-BD-DRIVER", "No se encontró o no se pudo cargar el controlador ODBC", False)
    if state == "3D000" or native == 1049 or "does not exist" in low and "database" in low:
        return err("CONN-BD-BASE", "La base de datos indicada no existe", False)
    if (
        state.startswith("08")
        or state in ("HYT01",)
        or _PG_TRANSIENT.get(state) == "conn"
        or native in _MY_CONNECTION
        or "server closed the connection" in low
        or "could not connect" in low
        or "connection refused" in low
        or "no connection to the server" in low
        or "unable to open database" in low
    ):
        return err("CONN-BD-CONEXION", "Se perdió o no se pudo abrir la conexión con la base de datos", True)  # fmt: skip
    if state in ("40001", "40P01") or native in (1213, 1205) and "deadlock" in low:
        return err("CONN-BD-BLOQUEO", "La base de datos canceló la operación por un interbloqueo", True)  # fmt: skip
    if (
        state in ("HYT00", "40000")
        or _PG_TRANSIENT.get(state) == "lock"
        or native in _MY_LOCK
        or "database is locked" in low
        or "lock wait timeout" in low
        or "lock request time out" in low
        or "statement timeout" in low
    ):
        return err("CONN-BD-TIEMPO", "Se agotó el tiempo de espera de una consulta o de un bloqueo", True)  # fmt: skip
    if (
        state.startswith("42")
        or native in (1146, 1054)
        or "no such table" in low
        or "no such column" in low
    ):
        return err("CONN-BD-ESQUEMA", "Falta una tabla o columna, o la consulta no es válida para esta base de datos", False)  # fmt: skip
    if state.startswith("22") or state.startswith("23"):
        return err("CONN-BD-DATOS", "La base de datos rechazó un valor", False)
    return err("CONN-BD-ERROR", "La base de datos devolvió un error", False)
