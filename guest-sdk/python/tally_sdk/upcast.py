"""Schema evolution: upcasters lift stored events of old schema versions to the
current ones, as plain functions on parsed JSON values."""

import dataclasses
import typing

#: Upcasting one stored event stops with an error after this many steps: a cycle
#: among upcasters, or a runaway split, is a plugin bug.
MAX_UPCAST_STEPS = 64


class UpcastError(ValueError):
    """A stored event cannot be brought to the current schema."""


@dataclasses.dataclass(frozen=True)
class StoredEvent:
    """An event as a name, a schema version and its data as a parsed JSON value."""

    name: str
    version: int
    data: typing.Any = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Upcaster:
    """One step from `event` at `from_version`: the next version's data (`next`),
    or any number of events (`replace`)."""

    event: str
    from_version: int
    function: typing.Callable
    replaces: bool

    @classmethod
    def next(cls, event: str, from_version: int, function) -> "Upcaster":
        return cls(event, from_version, function, replaces=False)

    @classmethod
    def replace(cls, event: str, from_version: int, function) -> "Upcaster":
        return cls(event, from_version, function, replaces=True)


def upcast_event(event: StoredEvent, upcasters, current_version) -> list[StoredEvent]:
    """Lifts `event` to current schema versions; `current_version(name)` is the
    version the plugin writes, or None for a name it does not know.

    Raises UpcastError for an unknown event, one newer than the plugin, a missing
    upcaster, or an upcaster that raises.
    """
    done: list[StoredEvent] = []
    pending = [event]  # last one first, so that a split keeps its order
    steps = 0
    while pending:
        event = pending.pop()
        current = current_version(event.name)
        if current == event.version:
            done.append(event)
            continue
        if current is not None and event.version > current:
            raise UpcastError(
                f"event {event.name} v{event.version} is newer than this plugin, "
                f"which writes v{current}"
            )
        steps += 1
        if steps > MAX_UPCAST_STEPS:
            raise UpcastError(f"upcasting did not finish within {MAX_UPCAST_STEPS} steps")
        pending.extend(reversed(_one_step(event, _find(upcasters, event, current))))
    return done


def _find(upcasters, event: StoredEvent, current: int | None) -> Upcaster:
    for upcaster in upcasters:
        if upcaster.event == event.name and upcaster.from_version == event.version:
            return upcaster
    if current is None:
        raise UpcastError(f"unknown event {event.name} v{event.version}")
    raise UpcastError(f"no upcaster for {event.name} v{event.version} (current is v{current})")


def _one_step(event: StoredEvent, upcaster: Upcaster) -> list[StoredEvent]:
    """What one upcaster makes of the event; any exception it raises refuses it."""
    try:
        result = upcaster.function(event.data)
    except Exception as error:  # stored data is input: never a panic
        raise UpcastError(f"upcasting {event.name} v{event.version}: {error}") from None
    if not upcaster.replaces:
        return [StoredEvent(event.name, event.version + 1, result)]
    if not isinstance(result, list) or not all(isinstance(e, StoredEvent) for e in result):
        raise TypeError(
            f"the upcaster replacing {event.name} v{event.version} "
            "must return a list of StoredEvent"
        )
    return result
