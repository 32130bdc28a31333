"""The bundled sandbox PAC: a real HTTP SOAP server on 127.0.0.1 that speaks FEL (Timbrado and
Conexión Remota), Finkok (stamp, cancel) and SAT's status service from the shipped WSDLs, stamps
with its own certificate, keeps what it stamped in SQLite, and misbehaves on demand.

    with SandboxPac(tmp / "pac.db", accounts=[SandboxAccount("u", "p", "C", 10, csds={rfc: csd})]) as pac:
        pac.faults.add("drop", times=1, operations={"TimbrarCFDI"})
        ... zeep client at pac.fel_timbrado_url ...
"""

from .faults import KINDS as FAULT_KINDS
from .faults import Faults, FaultSpecError, parse_fault_spec
from .server import SERVICES, SandboxPac
from .stamping import RFC_PROV_CERTIF, Outcome, PacCertificate, SandboxAccount
from .store import RequestRecord, SandboxStore, StampRecord

__all__ = [
    "FAULT_KINDS",
    "RFC_PROV_CERTIF",
    "SERVICES",
    "FaultSpecError",
    "Faults",
    "Outcome",
    "PacCertificate",
    "RequestRecord",
    "SandboxAccount",
    "SandboxPac",
    "SandboxStore",
    "StampRecord",
    "parse_fault_spec",
]
