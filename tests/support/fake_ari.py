"""A fake ARI that replays a transcript captured from the rig.

In the way panoramisk's tests replay recorded AMI transcripts: the app under
test gets a `FakeAri` (an `AriClient`, so code that checks the type accepts
it) and an event sink. Each operation the app sends is checked against the
transcript's next expected one (its name and its arguments), answered with the
recorded result or error, and then the events recorded after it are handed to
the sink, in order. Events before the first operation (the StasisStart) are
delivered by `start()`.

Ids the app makes itself (call ids, playback ids, agent legs, bridges) differ
from the recorded ones: the transcript names them with placeholders (see
tests/support/transcripts.py), and the first operation that carries one binds
it to the app's value; events and results after that carry the app's value.
Ids Asterisk made (<chan:1>) are given to the app as they stand.

A mismatch fails with `TranscriptMismatch` naming the step: an operation the
transcript does not have next, one it has but the app never sent
(`assert_done`), and the recorded events that were therefore never delivered.
The first mismatch is kept and raised again by `assert_done`, because the app
may catch the exception where it was raised.

Timing: events follow their operation at once (the app only queues them, as
with the real websocket); where a state waits on a timer, the test runs under
tests/support/virtual_clock.py, which makes that wait instant.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from ari_app.ari.client import AriClient, AriError, Event
from ari_app.ari.transcript import operations
from tests.support.transcripts import load

_PLACEHOLDER = re.compile(r"<([a-z]+):(\d+)>")
Hook = Callable[["FakeAri"], Awaitable[None] | None]
Action = Callable[[dict[str, Any]], Awaitable[None] | None]


class TranscriptMismatch(AssertionError):
    pass


def _short(obj: Any, limit: int = 300) -> str:
    text = json.dumps(obj, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[:limit] + "..."


class FakeAri(AriClient):
    def __init__(self, transcript: dict[str, Any] | Path | str,
                 sink: Callable[[Event], None] | None = None, *,
                 ignore: dict[str, set[str]] | None = None) -> None:
        # no RawClient: nothing here talks to Asterisk
        data = transcript if isinstance(transcript, dict) else load(Path(transcript))
        self.name = str(data.get("scenario", "transcript"))
        self.transcript = data
        self.steps: list[dict[str, Any]] = list(data["steps"])
        self.sink = sink
        self.ignore = {k: set(v) for k, v in (ignore or {}).items()}
        self.bindings: dict[str, str] = {}
        self.sent: list[tuple[str, dict[str, Any]]] = []  # as the app sent them
        self.delivered: list[Event] = []
        self.failure: TranscriptMismatch | None = None
        self._pos = 0  # the next step not yet consumed or delivered
        self._consumed: set[int] = set()
        self._hooks: dict[int, list[Hook]] = {}
        self._actions: dict[str, Action] = {}
        self.action_tasks: list[asyncio.Future[None]] = []
        self._started = False
        for name, sig in operations().items():
            setattr(self, name, self._operation(name, sig))

    @property
    def attached(self) -> bool:
        return True  # always "connected": nothing here has a websocket to lose

    # -- set-up ------------------------------------------------------------------
    def op_steps(self) -> list[int]:
        return [i for i, s in enumerate(self.steps) if "op" in s]

    def on_op(self, n: int, hook: Hook) -> None:
        """Run `hook` when the app sends the transcript's n-th operation (1-based),
        after it matched and before its result and events are given back; the app
        waits in that operation meanwhile (for a test to act at a precise point)."""
        ops = self.op_steps()
        if not 1 <= n <= len(ops):
            raise ValueError(f"{self.name}: no operation #{n} (it has {len(ops)})")
        self._hooks.setdefault(ops[n - 1], []).append(hook)

    def nth_op(self, name: str, k: int = 1) -> int:
        """The 1-based number of the k-th operation called `name`."""
        found = [n for n, i in enumerate(self.op_steps(), 1) if self.steps[i]["op"] == name]
        if len(found) < k:
            raise ValueError(f"{self.name}: only {len(found)} {name!r} operations")
        return found[k - 1]

    def on_action(self, action: str, do: Action) -> None:
        """How to do what the capture did during the call (an "action" step, such as
        {"action": "resume", "agent": "a014"}): called when the replay reaches that
        step, so it happens at the same point among the ARI traffic as on the rig.
        A coroutine runs as a task beside the app."""
        self._actions[action] = do

    def start(self, sink: Callable[[Event], None] | None = None) -> None:
        """Deliver the events before the first operation (the call's StasisStart)."""
        if sink is not None:
            self.sink = sink
        if self.sink is None:
            raise ValueError("FakeAri.start: no event sink to deliver to")
        missing = sorted({str(s["action"]) for s in self.steps if "action" in s}
                         - set(self._actions))
        if missing:
            raise ValueError(f"{self.name}: the transcript has actions {missing}; "
                             "register each with on_action() before start()")
        self._started = True
        self._deliver_until_op()

    # -- replay ------------------------------------------------------------------
    def _operation(self, name: str, sig: inspect.Signature) -> Callable[..., Awaitable[Any]]:
        async def operation(*args: Any, **kwargs: Any) -> Any:
            bound = sig.bind(self, *args, **kwargs)
            bound.apply_defaults()
            call = {k: v for k, v in bound.arguments.items() if k != "self"}
            return await self._replay(name, call)
        operation.__name__ = name
        return operation

    async def _replay(self, name: str, args: dict[str, Any]) -> Any:
        self.sent.append((name, args))
        if self.failure is not None:
            raise self.failure
        if not self._started:
            self._fail(f"the app sent {name}({_short(args)}) before start()")
        index = self._match(name, args)
        self._consumed.add(index)
        step = self.steps[index]
        for hook in self._hooks.pop(index, []):
            res = hook(self)
            if inspect.isawaitable(res):
                await res
        if index == self._pos:
            self._pos += 1
            self._deliver_until_op()
        if "error" in step:
            err = AriError(name, step["error"].get("status"), "")
            err.args = (self._bind(step["error"].get("message", "")),)
            raise err
        return self._bind(step.get("result"))

    def _match(self, name: str, args: dict[str, Any]) -> int:
        """The step this operation answers: the next op, or a later one of its
        group (ops that were in flight together may come in either order)."""
        candidates = self._candidates()
        if not candidates:
            self._fail(f"the app sent {name}({_short(args)}) after the transcript's last "
                       "operation")
        problems = []
        for i in candidates:
            step = self.steps[i]
            why = self._differs(step, name, args)
            if why is None:
                return i
            problems.append(f"step {i} {step['op']}({_short(step['args'])}): {why}")
        self._fail(f"unexpected operation {name}({_short(args)}); the transcript expects "
                   + "; or ".join(problems))
        raise AssertionError("unreachable")

    def _candidates(self) -> list[int]:
        first = next((i for i in range(self._pos, len(self.steps))
                      if "op" in self.steps[i] and i not in self._consumed), None)
        if first is None:
            return []
        group = self.steps[first].get("group")
        out = [first]
        if group is not None:
            out += [i for i in range(first + 1, len(self.steps))
                    if i not in self._consumed and self.steps[i].get("group") == group]
        return out

    def _differs(self, step: dict[str, Any], name: str, args: dict[str, Any]) -> str | None:
        if step["op"] != name:
            return "a different operation"
        skip = self.ignore.get(name, set())
        trial = dict(self.bindings)
        for key, expected in step["args"].items():
            if key in skip:
                continue
            if key not in args:
                return f"argument {key!r} missing"
            why = _unify(expected, args[key], trial)
            if why is not None:
                return f"argument {key!r}: {why}"
        extra = set(args) - set(step["args"]) - skip
        if extra:
            return f"arguments {sorted(extra)} not in the transcript"
        self.bindings = trial
        return None

    def _deliver_until_op(self) -> None:
        assert self.sink is not None
        while self._pos < len(self.steps):
            step = self.steps[self._pos]
            if "op" in step:
                if self._pos not in self._consumed:
                    return
            elif "action" in step:
                res = self._actions[str(step["action"])](step)
                if inspect.isawaitable(res):
                    # the events after it wait for it, as they came after it on the rig
                    task = asyncio.ensure_future(res)
                    self.action_tasks.append(task)
                    task.add_done_callback(self._after_action)
                    return
            else:
                ev = self._bind(step["event"])
                self.delivered.append(ev)
                self.sink(ev)
            self._pos += 1

    def _after_action(self, task: asyncio.Future[None]) -> None:
        self._pos += 1
        self._deliver_until_op()

    def _bind(self, obj: Any) -> Any:
        if isinstance(obj, dict):
            return {self._bind(k): self._bind(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [self._bind(v) for v in obj]
        if isinstance(obj, str) and "<" in obj:
            # an id first seen in an event or result (one Asterisk made) stands as it is
            # from then on, so a later operation must name exactly it
            return _PLACEHOLDER.sub(
                lambda m: self.bindings.setdefault(m.group(0), m.group(0)), obj)
        return obj

    def _fail(self, message: str) -> None:
        self.failure = self.failure or TranscriptMismatch(f"[{self.name}] {message}")
        raise self.failure

    # -- the end -------------------------------------------------------------------
    def where(self) -> str:
        """Where the replay stands, for a test that stalled: the last operation
        matched and the one the transcript expects next."""
        done = [i for i in self.op_steps() if i in self._consumed]
        last = (f"step {done[-1]} {self.steps[done[-1]]['op']}" if done else "no operation")
        left = self.remaining()
        nxt = (f"step {left[0]} {self.steps[left[0]]['op']}"
               f"({_short(self.steps[left[0]]['args'], 160)})" if left else "nothing")
        out = f"[{self.name}] the app's last matched operation: {last}; expected next: {nxt}"
        if self.failure is not None:
            out += f"; earlier mismatch: {self.failure}"
        return out

    def remaining(self) -> list[int]:
        return [i for i in self.op_steps() if i not in self._consumed]

    def assert_done(self) -> None:
        """Every operation sent and matched, every recorded event delivered."""
        if self.failure is not None:
            raise self.failure
        left = self.remaining()
        if left:
            i = left[0]
            events = sum(1 for s in self.steps[i:] if "event" in s)
            raise TranscriptMismatch(
                f"[{self.name}] missing operation: step {i} {self.steps[i]['op']}"
                f"({_short(self.steps[i]['args'])}) was never sent ({len(left)} operations "
                f"and {events} events after it left undelivered); the app sent last: "
                f"{_short(self.sent[-3:])}")
        if self._pos < len(self.steps):
            raise TranscriptMismatch(f"[{self.name}] {len(self.steps) - self._pos} recorded "
                                     f"events left undelivered from step {self._pos}")
        for task in self.action_tasks:
            if not task.done():
                raise TranscriptMismatch(f"[{self.name}] an action is still running")
            if task.exception() is not None:
                raise TranscriptMismatch(f"[{self.name}] an action failed: "
                                         f"{task.exception()!r}")


def _unify(expected: Any, actual: Any, bindings: dict[str, str]) -> str | None:
    """None when `actual` matches the recorded `expected`, binding placeholders."""
    if isinstance(expected, str) and isinstance(actual, str):
        if not _PLACEHOLDER.search(expected):
            return None if expected == actual else f"{actual!r} != {expected!r}"
        pattern, names = _pattern(expected, bindings)
        m = re.fullmatch(pattern, actual)
        if m is None:
            return f"{actual!r} does not fit {expected!r}"
        for group, placeholder in names.items():
            bindings[placeholder] = m.group(group)
        return None
    if isinstance(expected, list) and isinstance(actual, list | tuple):
        if len(expected) != len(actual):
            return f"{len(actual)} items != {len(expected)}: {_short(actual)}"
        for n, (e, a) in enumerate(zip(expected, actual, strict=True)):
            why = _unify(e, a, bindings)
            if why is not None:
                return f"item {n}: {why}"
        return None
    if isinstance(expected, dict) and isinstance(actual, dict):
        if set(expected) != set(actual):
            return f"keys {sorted(actual)} != {sorted(expected)}"
        for k, e in expected.items():
            why = _unify(e, actual[k], bindings)
            if why is not None:
                return f"{k}: {why}"
        return None
    return None if expected == actual else f"{actual!r} != {expected!r}"


def _pattern(template: str, bindings: dict[str, str]) -> tuple[str, dict[str, str]]:
    """A regex for a template with placeholders: bound ones literal, others captured
    (the same unbound placeholder twice must match the same text)."""
    out, names, pos = [], {}, 0
    seen: dict[str, str] = {}
    for m in _PLACEHOLDER.finditer(template):
        out.append(re.escape(template[pos:m.start()]))
        ph = m.group(0)
        if ph in bindings:
            out.append(re.escape(bindings[ph]))
        elif ph in seen:
            out.append(f"(?P={seen[ph]})")
        else:
            group = f"g{len(seen)}"
            seen[ph] = group
            names[group] = ph
            out.append(f"(?P<{group}>.+?)")
        pos = m.end()
    out.append(re.escape(template[pos:]))
    return "".join(out), names
