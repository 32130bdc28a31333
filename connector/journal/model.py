"""The journal's records and rules, the same for every backend: the invoice's states and the
transitions between them, the records a journal hands out (``Entry``, ``FileRecord``,
``FileItem``, ``Cancellation``, ``CancelRequest``, ``Failure``) and the rules a backend applies
when a row starts over (``ever_sent``, ``to_send``, ``payload_to_keep``). No SQL and no I/O:
the SQLite backend (``connector.journal.sqlite``) stores them, and so would a second one.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

BusinessKey = tuple[str, str, str]


class State(StrEnum):
    RECEIVED = "received"
    VALIDATED = "validated"
    SEALED = "sealed"
    SENDING = "sending"
    RETRY_WAIT = "retry_wait"
    STAMPED = "stamped"
    DELIVERED = "delivered"
    FAILED = "failed"


FINAL_STATES = frozenset({State.DELIVERED, State.FAILED})
# states in which the invoice owns a referencia at the PAC (the key is taken)
COMMITTED_STATES = frozenset(
    {State.SEALED, State.SENDING, State.RETRY_WAIT, State.STAMPED, State.DELIVERED}
)

TRANSITIONS: dict[State, frozenset[State]] = {
    State.RECEIVED: frozenset({State.VALIDATED, State.FAILED}),
    State.VALIDATED: frozenset({State.SEALED, State.FAILED}),
    State.SEALED: frozenset({State.SENDING, State.FAILED}),
    State.SENDING: frozenset({State.SENDING, State.STAMPED, State.RETRY_WAIT, State.FAILED}),
    State.RETRY_WAIT: frozenset({State.SENDING, State.FAILED}),
    State.STAMPED: frozenset({State.DELIVERED}),
    State.DELIVERED: frozenset({State.DELIVERED}),
    State.FAILED: frozenset(),
}


class FileState(StrEnum):
    CLAIMED = "claimed"  # in work/, being processed
    ARCHIVING = "archiving"  # decided: archive (final_path recorded), move pending
    FAILING = "failing"  # decided: failed/ (final_path recorded), error file + move pending
    ARCHIVED = "archived"
    FAILED = "failed"
    REPLAYED = "replayed"  # moved back to the inbox by replay


class JournalError(Exception):
    """A transition the state machine does not allow, or an unknown row."""


class JournalAway(JournalError):
    """The shared journal's connection was lost inside a transaction (its server stopped or
    restarted): nothing of the transaction was kept; the step is done again once it is back."""


class NotOwner(JournalError):
    """A shared journal's invoice that another connector instance holds now (it took over
    this one's work while this one did not heartbeat): this instance must leave it alone."""

    def __init__(self, label: str, owner: str) -> None:
        super().__init__(f"{label} is held by instance {owner}")
        self.owner = owner


class Admission(StrEnum):
    NEW = "new"  # a fresh row was created (state received)
    RESUME = "resume"  # same content, not final yet: continue from the stored state
    DELIVERED = "delivered"  # same content already stamped/delivered: deliver it again
    FAILED = "failed"  # same content already failed permanently at the PAC: report again
    RESTART = "restart"  # the row was not committed (failed or before sealing): redone
    # (a row ever sent keeps its referencia and attempts: the redo recovers by it first)
    CONFLICT = "conflict"  # different content under a key that is taken: CONN-FOLIO-USADO
    # a shared journal's invoice in progress at another live instance: it delivers it; the
    # unit waits for its outcome (never a second send from here)
    ELSEWHERE = "elsewhere"


@dataclass
class Entry:
    id: int
    emisor_rfc: str
    serie: str
    folio: str
    content_hash: str
    state: State
    mode: str
    source: str
    source_file: str
    location: str
    referencia: str | None = None
    payload: bytes | None = None  # sealed XML (stamp mode) or request data (remote mode)
    uuid: str | None = None
    stamped_xml: bytes | None = None
    acuse: bytes | None = None
    attempts: int = 0
    next_retry_at: float | None = None
    error_code: str | None = None
    error_message: str | None = None
    error_origin: str | None = None  # "rules", "pac", PAC_DOCUMENT, "csd", "connector"
    problems: list[dict[str, Any]] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)
    created_at: float = 0.0
    updated_at: float = 0.0
    owner: str | None = None  # the instance advancing it (a shared journal; None: SQLite)

    @property
    def key(self) -> BusinessKey:
        return (self.emisor_rfc, self.serie, self.folio)

    @property
    def label(self) -> str:
        return f"{self.serie}{self.folio}"


@dataclass
class Cancellation:
    """A cancellation the PAC accepted (201/202) for a stamped UUID; the invoice row keeps its
    state (delivered), this record says it no longer counts at SAT."""

    uuid: str
    invoice_id: int | None  # None: a UUID this journal never stamped
    motivo: str
    folio_sustitucion: str | None
    code: str | None
    estatus: str | None
    acuse: bytes | None
    at: float


class CancelState(StrEnum):
    """Where a cancellation request stands at SAT (``cancel_requests``)."""

    REQUESTED = "solicitada"  # recorded before sending; a send that may or may not have
    # reached the PAC stays here (SAT is asked before it is sent again)
    SENT = "enviada"  # the PAC accepted the request; SAT's answer not known yet
    IN_PROCESS = "en_proceso"  # "Cancelable con aceptación": the receptor has not answered
    REJECTED = "rechazada"  # the receptor said no: still vigente, a new request is allowed
    CANCELLED = "cancelada"  # SAT (or the PAC, sin aceptación) says cancelled
    NOT_CANCELLABLE = "no_cancelable"  # SAT: "No cancelable" (e.g. related documents)
    INVALID = "invalida"  # the PAC refused the request itself: never sent again as is


# followed up by the daemon (SAT's consulta service) until one of the others
CANCEL_OPEN = (CancelState.REQUESTED, CancelState.SENT, CancelState.IN_PROCESS)


@dataclass
class CancelRequest:
    """A cancellation request the PAC accepted and what SAT last said of it; only a
    ``CANCELLED`` one also has a ``Cancellation`` (and counts as cancelled)."""

    uuid: str
    invoice_id: int | None
    motivo: str
    folio_sustitucion: str | None
    code: str | None
    state: CancelState
    es_cancelable: str | None
    estatus_cancelacion: str | None
    acuse: bytes | None
    requested_at: float
    updated_at: float
    # the follow-up (connector.cancellations): SAT's query data, what SAT last said, when
    # SAT is asked next, how often it was asked, how many requests were sent
    rfc_emisor: str | None = None
    rfc_receptor: str | None = None
    total: str | None = None
    estado: str | None = None
    next_poll_at: float | None = None
    polls: int = 0
    requests: int = 0
    error_code: str | None = None
    error_message: str | None = None
    origin: str | None = None  # "cli", "folder", "sat" (noticed at SAT: cancelled outside)


@dataclass
class Failure:
    """One line of ``status``'s recent failures (``Journal.recent_failures``)."""

    at: float  # when it failed (epoch seconds)
    code: str
    message: str
    file: str  # the file it came from (or the item's name)
    source: str = ""
    location: str = ""  # file:line:Field when known
    invoice: str = ""  # serie+folio; "" for a file or record that never became an invoice
    state: str = ""  # the invoice's journal state; "" when there is no invoice row


@dataclass
class FileRecord:
    id: int
    source: str
    name: str
    work_path: str
    state: FileState
    final_path: str | None
    claimed_at: float
    finished_at: float | None
    error_count: int


@dataclass
class FileItem:
    file_id: int
    idx: int
    location: str
    invoice_id: int | None
    problems: list[dict[str, Any]]


# error_origin of a PAC refusal of the document (not the account) to a send under which nothing
# can have been stamped: a replay seals it anew (still under its referencia)
PAC_DOCUMENT = "pac-documento"


def ever_sent(e: Entry) -> bool:
    """An attempt was counted under a referencia: the PAC may have stamped it."""
    return e.attempts > 0 and e.referencia is not None


def with_changes(e: Entry, **changes: Any) -> Entry:
    """``dataclasses.replace`` for the row as just written (the names are the columns'),
    without its per-call introspection: a copy with ``changes`` set."""
    out = copy.copy(e)
    out.__dict__.update(changes)
    return out


# error_code of a delivered invoice whose acuse is still to be fetched
ACUSE_MISSING = "CONN-ACUSE"


def to_send(e: Entry, payload: bytes, referencia: str) -> tuple[bytes, str]:
    """The bytes and referencia a row is sent with once sealed: a row that was ever sent keeps
    its referencia (it may be stamped under it) and its sealed bytes when it still has them."""
    if ever_sent(e):
        assert e.referencia is not None
        return (e.payload if e.payload is not None else payload), e.referencia
    return payload, referencia


def payload_to_keep(e: Entry, same_content: bool) -> bytes | None:
    """The sealed bytes a once-sent row keeps when it starts over (replay, export again): those
    of the same content — unless the pipeline recorded that the PAC refused the document itself
    when nothing could have been stamped under those bytes (origin ``pac-documento``): then
    they are sealed anew (e.g. after the CSD was replaced)."""
    return e.payload if same_content and e.error_origin != PAC_DOCUMENT else None
