"""Problems and errors of the CFDI domain.

A ``Problem`` is one thing wrong with an invoice: an official SAT code (``CFDI40xxx``), a PAC's
code, or one of ours (``CONN-...``); where it is (a path such as
``Conceptos[3].Impuestos.Traslados[0].Importe``, or a file/line/field once an adapter adds its
location); and a message in Spanish for the people who fix the ERP data.

Validation returns lists of Problems. Exceptions are for things that stop an operation as a
whole (bad XML bytes, an unusable CSD); they carry their Problems too.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Self


@dataclass(frozen=True, slots=True)
class Problem:
    code: str
    path: str
    message: str
    # where in the source the problem comes from (file, line, field), filled by adapters
    location: str | None = None
    severity: str = "error"  # "error" or "warning"

    def to_dict(self) -> dict[str, str | None]:
        return asdict(self)

    def __str__(self) -> str:
        where = self.location or self.path
        return f"{self.code} [{where}] {self.message}" if where else f"{self.code} {self.message}"


@dataclass
class CfdiError(Exception):
    """An operation on a CFDI could not be done; ``problems`` says why."""

    problems: list[Problem] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(self.__str__())

    @classmethod
    def one(cls, code: str, message: str, path: str = "") -> Self:
        return cls([Problem(code=code, path=path, message=message)])

    @property
    def code(self) -> str:
        return self.problems[0].code if self.problems else "CONN-ERROR"

    def __str__(self) -> str:
        return "; ".join(str(p) for p in self.problems)


class XmlError(CfdiError):
    """Bytes that are not a usable CFDI XML document (not XML, truncated, entities, too big)."""


class CsdError(CfdiError):
    """A CSD that cannot seal this invoice (wrong password, FIEL, expired, other RFC…)."""


class SealError(CfdiError):
    """A seal that does not verify."""
