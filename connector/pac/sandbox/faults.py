"""Faults on demand for the sandbox PAC.

A test (or the ``sandbox-pac`` command) tells the sandbox to misbehave in one of these ways:

=============== ==============================================================================
kind            what the client observes
=============== ==============================================================================
``latency``     the reply arrives ``seconds`` later (the operation is processed normally)
``timeout``     the server holds the request ``seconds`` (longer than the client's timeout),
                then closes the connection; the operation is NOT processed
``http500``     HTTP 500 with a SOAP Fault; the operation is NOT processed
``drop``        the connection is closed without any reply; the operation is NOT processed
``garbage``     HTTP 200 whose body is not XML; the operation is NOT processed
``reply_lost``  the operation IS processed and committed (e.g. the stamp is stored), then the
                connection is closed without a reply: the ambiguous case a client must recover
                from by asking for the reference before re-sending
=============== ==============================================================================

Each rule fires a number of ``times`` (``None`` = every time) or with a ``probability`` drawn
from a seeded RNG, and only for the given ``operations`` (SOAP operation names such as
``TimbrarCFDI``, ``GenerarCFDI40``, ``stamp``, ``Consulta``; ``None`` = all operations).
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

KINDS = ("latency", "timeout", "http500", "drop", "garbage", "reply_lost")
TERMINAL_KINDS = ("timeout", "http500", "drop", "garbage", "reply_lost")
DEFAULT_TIMEOUT_HOLD = 30.0


class FaultSpecError(ValueError):
    """A fault specification that cannot be used (Spanish message, code SBX-FAULT)."""

    code = "SBX-FAULT"


@dataclass
class FaultRule:
    kind: str
    times: int | None = 1
    probability: float | None = None
    operations: frozenset[str] | None = None
    seconds: float = 0.0
    seed: int | None = 0
    fired: int = 0
    _rng: random.Random = field(default_factory=random.Random, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise FaultSpecError(
                f"SBX-FAULT: tipo de falla desconocido {self.kind!r}; use uno de {', '.join(KINDS)}"
            )
        if self.times is not None and self.times < 0:
            raise FaultSpecError("SBX-FAULT: 'times' no puede ser negativo")
        if self.probability is not None and not 0.0 <= self.probability <= 1.0:
            raise FaultSpecError("SBX-FAULT: 'probability' debe estar entre 0 y 1")
        if self.seconds < 0:
            raise FaultSpecError("SBX-FAULT: 'seconds' no puede ser negativo")
        self._rng = random.Random(self.seed)

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.fired >= self.times

    def matches(self, operation: str) -> bool:
        return self.operations is None or operation in self.operations

    def draw(self) -> bool:
        """Decide (and count) whether this rule fires for one request."""
        if self.exhausted:
            return False
        if self.probability is not None and self._rng.random() >= self.probability:
            return False
        self.fired += 1
        return True


@dataclass(frozen=True)
class FaultDecision:
    """What the server must do with one request."""

    delay: float = 0.0  # extra seconds before answering (latency rules)
    kind: str | None = None  # one terminal fault kind, or None to answer normally
    hold: float = 0.0  # for "timeout": how long to hold the request before closing


class Faults:
    """Thread-safe set of fault rules, consulted once per SOAP request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self.fired: Counter[str] = Counter()

    def add(
        self,
        kind: str,
        *,
        times: int | None | object = ...,
        probability: float | None = None,
        operations: Iterable[str] | str | None = None,
        seconds: float | None = None,
        seed: int | None = 0,
    ) -> FaultRule:
        """Add a rule. ``times`` defaults to 1, or to unlimited when a ``probability`` is
        given; ``times=None`` means "every matching request"."""
        if times is ...:
            times = None if probability is not None else 1
        if times is not None and not isinstance(times, int):
            raise FaultSpecError("SBX-FAULT: 'times' debe ser un entero o None")
        ops: frozenset[str] | None
        if operations is None:
            ops = None
        elif isinstance(operations, str):
            ops = frozenset({operations})
        else:
            ops = frozenset(operations)
        if seconds is None:
            seconds = DEFAULT_TIMEOUT_HOLD if kind == "timeout" else 0.0
        rule = FaultRule(
            kind=kind,
            times=times,
            probability=probability,
            operations=ops,
            seconds=float(seconds),
            seed=seed,
        )
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()
            self.fired.clear()

    @property
    def rules(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    def decide(self, operation: str) -> FaultDecision:
        """Consume the rules that fire for this request: all latencies add up, and the first
        terminal fault (in the order the rules were added) wins."""
        delay = 0.0
        kind: str | None = None
        hold = 0.0
        with self._lock:
            for rule in self._rules:
                if not rule.matches(operation) or rule.exhausted:
                    continue
                if rule.kind == "latency":
                    if rule.draw():
                        delay += rule.seconds
                        self.fired[rule.kind] += 1
                elif kind is None and rule.draw():
                    kind = rule.kind
                    hold = rule.seconds
                    self.fired[rule.kind] += 1
        return FaultDecision(delay=delay, kind=kind, hold=hold)


def parse_fault_spec(spec: str) -> dict[str, object]:
    """Parse the command-line form ``KIND[:N|:p=0.2][:Op1,Op2][:s=SECONDS]`` into
    keyword arguments for :meth:`Faults.add`.

    Examples: ``drop:3:TimbrarCFDI``, ``http500:p=0.1``, ``timeout:1:stamp:s=60``,
    ``reply_lost:1:GenerarCFDI40``, ``garbage:*`` (every request).
    """
    parts = [p.strip() for p in spec.split(":") if p.strip()]
    if not parts:
        raise FaultSpecError("SBX-FAULT: especificación de falla vacía")
    kind = parts[0]
    if kind not in KINDS:
        raise FaultSpecError(
            f"SBX-FAULT: tipo de falla desconocido {kind!r}; use uno de {', '.join(KINDS)}"
        )
    out: dict[str, object] = {"kind": kind}
    for part in parts[1:]:
        try:
            if part == "*":
                out["times"] = None
            elif part.isdigit():
                out["times"] = int(part)
            elif part.startswith("p="):
                out["probability"] = float(part[2:])
                out.setdefault("times", None)
            elif part.startswith("s="):
                out["seconds"] = float(part[2:])
            elif part.startswith("seed="):
                out["seed"] = int(part[5:])
            else:
                out["operations"] = [op for op in part.split(",") if op]
        except ValueError as exc:
            raise FaultSpecError(f"SBX-FAULT: valor no válido en {part!r} ({spec!r})") from exc
    return out
