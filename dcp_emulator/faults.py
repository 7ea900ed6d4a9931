"""Fault injection: rules that make matching API requests fail (429, 503, any status) or slow down.

A rule matches by method and path regular expression and fires for the next ``times`` matching
requests (or forever), each time with ``probability`` drawn from its own ``random.Random(seed)``
so a seeded rule fails the same requests on every run. The control plane (/_emulator/) is never
faulted. Faulted requests are still journaled (with the rule id in ``fault``).
"""

from __future__ import annotations

import dataclasses
import itertools
import random
import threading
import time
from typing import Any

from flask import Flask, g, request

from . import urls
from .errors import DcpError, InjectedError, InvalidField, ServiceUnavailable, TooManyRequests
from .journal import compile_path_pattern, is_recorded
from .resources import FAULT_RULE


@dataclasses.dataclass
class FaultRule:
    """One fault-injection rule and its counters."""

    id: int
    method: str | None = None
    path: str | None = None
    status: int | None = None
    retry_after: int | None = None
    latency_ms: int | None = None
    times: int | None = None
    probability: float = 1.0
    seed: int | None = None
    remaining: int | None = None
    fired: int = 0
    _path_re: Any = dataclasses.field(default=None, repr=False)
    _random: random.Random = dataclasses.field(default_factory=random.Random, repr=False)

    def to_dict(self) -> dict:
        """The rule as listed by GET /_emulator/faults."""
        return FAULT_RULE.render(vars(self))

    def error(self) -> DcpError | None:
        """The error this rule answers with, or None for a latency-only rule."""
        if self.status is None:
            return None
        headers = {"Retry-After": str(self.retry_after)} if self.retry_after is not None else {}
        where = f"Injected fault (rule {self.id}, set with POST /_emulator/faults)"
        if self.status == 429:
            return TooManyRequests(f"{where}: rate limit exceeded; retry after {self.retry_after} s.",
                                   headers=headers)
        if self.status == 503:
            return ServiceUnavailable(f"{where}: the service is temporarily unavailable.", headers=headers)
        return InjectedError(self.status, f"{where}: status {self.status}.", headers=headers)


def parse_rule(spec: Any, rule_id: int) -> FaultRule:
    """Validate a rule given as a JSON object; a bad field is a 400 naming it."""
    if not isinstance(spec, dict):
        raise InvalidField("A fault rule is a JSON object such as {\"path\": \"/api/\", \"status\": 503, "
                           "\"times\": 2}.")
    values = FAULT_RULE.parse_create(spec)
    method, path, status = values["method"], values["path"], values["status"]
    retry_after, latency_ms, times, seed = values["retry_after"], values["latency_ms"], values["times"], values["seed"]
    probability = 1.0 if values["probability"] is None else values["probability"]
    path_re = compile_path_pattern(path) if path is not None else None
    if status is None and latency_ms is None:
        status = 503  # a rule that says nothing else means "the service is down"
    if status == 429 and retry_after is None:
        retry_after = 1  # the documented 429 always tells the client when to retry
    return FaultRule(id=rule_id, method=method.upper() if method else None, path=path, status=status,
                     retry_after=retry_after, latency_ms=latency_ms, times=times, probability=float(probability),
                     seed=seed, remaining=times, _path_re=path_re, _random=random.Random(seed))


class Faults:
    """The emulator's fault rules, thread-safe; first matching rule with budget left fires."""

    def __init__(self) -> None:
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(1)

    def add(self, spec: Any) -> dict:
        """Validate and append a rule; returns it as listed."""
        with self._lock:
            rule = parse_rule(spec, next(self._ids))
            self._rules.append(rule)
            return rule.to_dict()

    def list(self) -> list[dict]:
        """Every rule with its remaining budget (null = unlimited) and how often it fired."""
        with self._lock:
            return [r.to_dict() for r in self._rules]

    def remove(self, rule_id: int) -> bool:
        """Delete one rule; False when there is no such rule."""
        with self._lock:
            before = len(self._rules)
            self._rules = [r for r in self._rules if r.id != rule_id]
            return len(self._rules) != before

    def clear(self) -> None:
        """Delete every rule."""
        with self._lock:
            self._rules.clear()

    def match(self, method: str, path: str) -> FaultRule | None:
        """The rule that fires for this request (its budget is spent), or None."""
        if not self._rules:  # the usual case: no lock to take on every request
            return None
        with self._lock:
            for rule in self._rules:
                if rule.remaining == 0:
                    continue
                if rule.method is not None and rule.method != method.upper():
                    continue
                if rule._path_re is not None and not rule._path_re.search(path):
                    continue
                if rule.probability < 1.0 and rule._random.random() >= rule.probability:
                    continue
                if rule.remaining is not None:
                    rule.remaining -= 1
                rule.fired += 1
                return rule
        return None


def install(app: Flask, emulator) -> None:
    """Apply ``emulator.faults`` to every request outside /_emulator/ (before authentication)."""

    @app.before_request
    def _inject_fault() -> None:
        if not is_recorded(request.path):
            return
        rule = emulator.faults.match(request.method, urls.client_path(request.path, request.environ))
        if rule is None:
            return
        g.fault_rule_id = rule.id
        if rule.latency_ms:
            time.sleep(rule.latency_ms / 1000)
        err = rule.error()
        if err is not None:
            g.injected_fault = True  # the answer is the rule's, not the API's: the contract check leaves it alone
            raise err
