"""The aggregate a plugin defines: its state, commands, events, handlers and folds.

```python
account = Aggregate("bank-account", version="1.0.0",
                    description="A bank account.", state=BankAccount)

@account.handles(Deposit)
def deposit(state: BankAccount, command: Deposit) -> MoneyDeposited:
    if command.amount <= 0:
        raise Rejection("invalid-amount", "amount must be above zero")
    return MoneyDeposited(amount=command.amount)

@account.applies(MoneyDeposited)
def money_deposited(state: BankAccount, event: MoneyDeposited) -> BankAccount:
    return dataclasses.replace(state, balance=state.balance + event.amount)
```

Commands, events and the state are dataclasses (see `tally_sdk.schema`). A command
or event travels under its class name unless `name=` says otherwise. Handlers take
`(state, command)` or `(state, command, ctx)` and return an event, a list of events
or None; they refuse with `raise Rejection(code, message)`. Folds take
`(state, event)` and return the new state. Both are registered in the order
`describe` lists them.
"""

import dataclasses
import inspect
import re
import typing

from . import schema
from .strict_json import DEFAULT_MAX_DEPTH, HIGHEST_MAX_DEPTH
from .upcast import Upcaster

#: The rejection code of a command that does not fit (from the SDK, never a plugin).
INVALID_COMMAND = "invalid-command"
#: The rejection code of state bytes that cannot be decoded (from the SDK).
INVALID_STATE = "invalid-state"

_KEBAB_CASE = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")
_SEMVER = re.compile(
    r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?"
)


def is_kebab_case(text: str) -> bool:
    """Whether `text` is lowercase ASCII letters and digits in words joined by `-`."""
    return _KEBAB_CASE.fullmatch(text) is not None


def is_semver(text: str) -> bool:
    """Whether `text` is a semantic version, e.g. `1.0.0`."""
    return _SEMVER.fullmatch(text) is not None


class Rejection(Exception):
    """Why a command was refused: a stable kebab-case code and a message for people.

    Raise it from a handler. A rejection is an answer, not a failure.
    """

    def __init__(self, code: str, message: str):
        if not is_kebab_case(code):
            raise ValueError(f"rejection code {code!r} is not kebab-case")
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclasses.dataclass(frozen=True)
class Context:
    """What the host tells a handler about the call."""

    #: Identity of the aggregate instance (its stream).
    aggregate_id: str = ""
    #: Number of events already stored in the stream; 0 for a new aggregate.
    stream_version: int = 0
    #: The host's clock, milliseconds since the Unix epoch (UTC): the only time.
    now_ms: int = 0


@dataclasses.dataclass(frozen=True)
class CommandType:
    """A command the aggregate accepts and the handler that decides it."""

    name: str
    payload: type
    handler: typing.Callable
    takes_context: bool


@dataclasses.dataclass(frozen=True)
class EventType:
    """An event the aggregate writes and reads, and the fold that applies it."""

    name: str
    payload: type
    version: int
    fold: typing.Callable


class Aggregate:
    """One aggregate type: register its commands, events and upcasters with the
    decorators, then export it with `tally_sdk.component.export`."""

    def __init__(
        self,
        aggregate_type: str,
        *,
        version: str,
        description: str,
        state: type,
        deny_unknown_fields: bool = True,
        max_depth: int = DEFAULT_MAX_DEPTH,
    ):
        """`state` is a dataclass whose fields all have defaults: `state()` is the
        state before any event. `deny_unknown_fields` refuses a command with a field
        it does not have (the default); `max_depth` is how deeply command data, event
        data and states may nest before they are refused unread."""
        schema.check_payload_class(state)
        self.aggregate_type = aggregate_type
        self.version = version
        self.description = description
        self.state = state
        self.deny_unknown_fields = deny_unknown_fields
        self.max_depth = max_depth
        self.commands: dict[str, CommandType] = {}
        self.events: dict[str, EventType] = {}
        self.upcasters: list[Upcaster] = []
        self._event_names: dict[type, str] = {}
        self._render = None

    def handles(self, payload: type, *, name: str | None = None):
        """Decorator: the function decides the command `payload` (a dataclass),
        named `name` on the wire (default: the class name)."""
        schema.check_payload_class(payload)
        wire_name = name or payload.__name__
        _refuse_twice(self.commands, wire_name, "command")

        def register(handler):
            takes_context = _positional_arity(handler) >= 3
            self.commands[wire_name] = CommandType(wire_name, payload, handler, takes_context)
            return handler

        return register

    def applies(self, payload: type, *, name: str | None = None, version: int = 1):
        """Decorator: the function folds the event `payload` (a dataclass) into the
        state. `name` is its wire name (default: the class name), `version` the
        schema version the plugin writes for it."""
        schema.check_payload_class(payload)
        wire_name = name or payload.__name__
        _refuse_twice(self.events, wire_name, "event")
        if payload in self._event_names:
            raise ValueError(
                f"{payload.__name__} is already the event {self._event_names[payload]!r}"
            )

        def register(fold):
            self.events[wire_name] = EventType(wire_name, payload, version, fold)
            self._event_names[payload] = wire_name
            return fold

        return register

    def upcasts(self, event: str, *, from_version: int):
        """Decorator: the function lifts the data (a parsed JSON value) of `event`
        at `from_version` to the data of `from_version + 1`. Raising an exception
        refuses the stored event."""

        def register(function):
            self.upcasters.append(Upcaster.next(event, from_version, function))
            return function

        return register

    def replaces(self, event: str, *, from_version: int):
        """Decorator: the function turns the data of `event` at `from_version` into
        a list of `StoredEvent`s (any names, any number), upcast further if they are
        not current. It can retire an event that is no longer registered."""

        def register(function):
            self.upcasters.append(Upcaster.replace(event, from_version, function))
            return function

        return register

    def renders_state(self, function):
        """Decorator: the function renders a state as a JSON object (a dict) for
        queries. Without it, `state-json` is the state's own JSON."""
        self._render = function
        return function

    def event_name(self, event) -> str:
        """The wire name of an event instance."""
        try:
            return self._event_names[type(event)]
        except KeyError:
            raise TypeError(f"{event!r} is not an event of {self.aggregate_type}") from None

    def current_version(self, name: str) -> int | None:
        """The schema version the plugin writes for the event `name`, None if unknown."""
        event = self.events.get(name)
        return event.version if event else None

    def render(self, state) -> dict:
        """The state as a JSON object for queries."""
        if self._render is None:
            return schema.encode(state)
        return self._render(state)

    def check(self) -> None:
        """Raises ValueError if the definition breaks the rules `describe` must
        follow: names, versions and upcasters (see wit/WIRE.md)."""
        problems = list(_definition_problems(self))
        if problems:
            raise ValueError(f"aggregate {self.aggregate_type!r}: " + "; ".join(problems))


def _refuse_twice(registry: dict, name: str, kind: str) -> None:
    if not name:
        raise ValueError(f"a {kind} name must not be empty")
    if name in registry:
        raise ValueError(f"the {kind} {name!r} is registered twice")


def _positional_arity(function) -> int:
    """How many positional arguments the function takes."""
    parameters = inspect.signature(function).parameters.values()
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in parameters):
        return 3
    return sum(1 for p in parameters if p.kind in kinds)


def _definition_problems(aggregate: Aggregate):
    """What is wrong with an aggregate's definition, one message each."""
    if not is_kebab_case(aggregate.aggregate_type):
        yield f"the aggregate type {aggregate.aggregate_type!r} is not kebab-case"
    if not is_semver(aggregate.version):
        yield f"the version {aggregate.version!r} is not semver"
    if not aggregate.commands:
        yield "it has no command"
    if not aggregate.events:
        yield "it has no event"
    for name in schema.required_field_names(aggregate.state):
        yield f"the state field {name!r} has no default"
    if not 1 <= aggregate.max_depth <= HIGHEST_MAX_DEPTH:
        yield f"max_depth {aggregate.max_depth} is not between 1 and {HIGHEST_MAX_DEPTH}"
    for event in aggregate.events.values():
        if event.version < 1:
            yield f"event {event.name} is at version {event.version}; versions start at 1"
    yield from _upcaster_problems(aggregate)


def _upcaster_problems(aggregate: Aggregate):
    """Upcasters that never run, run twice, or leave a gap in a chain."""
    seen = set()
    for upcaster in aggregate.upcasters:
        key = (upcaster.event, upcaster.from_version)
        current = aggregate.current_version(upcaster.event)
        if key in seen:
            yield f"two upcasters for {upcaster.event} v{upcaster.from_version}"
        seen.add(key)
        if current is None and not upcaster.replaces:
            yield f"upcaster of {upcaster.event}, which is not an event, must replace it"
        if current is not None and upcaster.from_version >= current:
            yield (
                f"upcaster from {upcaster.event} v{upcaster.from_version} never runs: "
                f"the plugin writes v{current}"
            )
    for event in aggregate.events.values():
        for version in range(1, event.version):
            if (event.name, version) not in seen:
                yield (
                    f"event {event.name} is at v{event.version} "
                    f"but has no upcaster from v{version}"
                )
