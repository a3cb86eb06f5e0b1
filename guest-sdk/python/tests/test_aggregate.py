"""The decorators register commands, events and upcasters; `check` refuses a
definition that `describe` could not report (wit/WIRE.md, describe)."""

from dataclasses import dataclass

import pytest
from samples import Add, Added, Reset, counter

from tally_sdk import Aggregate, Rejection, StoredEvent, wire


@dataclass(frozen=True)
class State:
    n: int = 0


@dataclass(frozen=True)
class Ping:
    pass


@dataclass(frozen=True)
class Pinged:
    pass


def minimal(**options) -> Aggregate:
    """A valid aggregate with one command and one event."""
    aggregate = Aggregate("pinger", version="0.1.0", description="Pings.", state=State, **options)
    aggregate.handles(Ping)(lambda state, command: Pinged())
    aggregate.applies(Pinged)(lambda state, event: State(state.n + 1))
    return aggregate


def replace_twice(aggregate: Aggregate, event: str) -> None:
    aggregate.replaces(event, from_version=1)(list)
    aggregate.replaces(event, from_version=1)(list)


def test_describe_lists_commands_and_events_in_registration_order_with_versions():
    info = wire.describe(counter)
    assert (info.aggregate_type, info.version, info.description) == ("counter", "1.2.0", "Counts.")
    assert info.commands == ["Add", "Ship", "Reset-All"]
    assert info.events == [("Added", 3), ("Shipped", 1), ("WasReset", 1)]


def test_describe_gives_the_same_answer_on_every_call():
    assert wire.describe(counter) == wire.describe(counter)


def test_a_name_given_to_the_decorator_is_the_wire_name():
    assert counter.commands["Reset-All"].payload is Reset
    assert "Reset" not in counter.commands


def test_the_decorators_return_the_function_unchanged():
    def handler(state, command):
        return Pinged()

    aggregate = minimal()
    assert aggregate.handles(Ping, name="Other")(handler) is handler


def test_a_handler_gets_the_context_only_if_it_takes_three_arguments():
    assert counter.commands["Add"].takes_context
    assert not counter.commands["Ship"].takes_context


def test_a_name_registered_twice_is_refused():
    aggregate = minimal()
    with pytest.raises(ValueError, match="registered twice"):
        aggregate.handles(Ping)
    with pytest.raises(ValueError, match="registered twice"):
        aggregate.applies(Pinged)
    with pytest.raises(ValueError, match="already the event"):
        aggregate.applies(Pinged, name="Again")


def test_payloads_must_be_dataclasses():
    with pytest.raises(TypeError, match="not a dataclass"):
        minimal().handles(dict)
    with pytest.raises(TypeError, match="not a dataclass"):
        Aggregate("x", version="1.0.0", description="", state=object)


def test_the_event_name_of_an_instance_is_its_registered_name():
    assert counter.event_name(Added(by=1, at_ms=0)) == "Added"
    with pytest.raises(TypeError, match="not an event of counter"):
        counter.event_name(Add(by=1))


def test_a_valid_definition_passes_the_check():
    minimal().check()
    counter.check()


@pytest.mark.parametrize(
    "change, problem",
    [
        (lambda a: setattr(a, "aggregate_type", "Pinger"), "not kebab-case"),
        (lambda a: setattr(a, "aggregate_type", "ping--er"), "not kebab-case"),
        (lambda a: setattr(a, "version", "1.0"), "not semver"),
        (lambda a: a.commands.clear(), "no command"),
        (lambda a: a.events.clear(), "no event"),
        (lambda a: a.upcasts("Pinged", from_version=1)(dict), "never runs"),
        (lambda a: a.upcasts("Gone", from_version=1)(dict), "must replace it"),
        (lambda a: replace_twice(a, "Gone"), "two upcasters"),
        (lambda a: setattr(a, "max_depth", 0), "max_depth 0 is not between 1 and 1000"),
        (lambda a: setattr(a, "max_depth", 1001), "max_depth 1001 is not between"),
    ],
)
def test_a_definition_that_breaks_the_rules_fails_the_check(change, problem):
    aggregate = minimal()
    change(aggregate)
    with pytest.raises(ValueError, match=problem):
        aggregate.check()


def test_an_event_above_version_1_needs_an_upcaster_from_each_older_version():
    aggregate = Aggregate("pinger", version="0.1.0", description="Pings.", state=State)
    aggregate.handles(Ping)(lambda state, command: Pinged())
    aggregate.applies(Pinged, version=3)(lambda state, event: state)
    aggregate.upcasts("Pinged", from_version=2)(dict)
    with pytest.raises(ValueError, match="no upcaster from v1"):
        aggregate.check()
    aggregate.upcasts("Pinged", from_version=1)(dict)
    aggregate.check()


def test_a_state_field_without_a_default_is_refused():
    @dataclass(frozen=True)
    class Needy:
        n: int

    aggregate = minimal()
    aggregate.state = Needy
    with pytest.raises(ValueError, match="the state field 'n' has no default"):
        aggregate.check()


def test_an_event_at_version_0_is_refused():
    aggregate = Aggregate("pinger", version="0.1.0", description="Pings.", state=State)
    aggregate.handles(Ping)(lambda state, command: Pinged())
    aggregate.applies(Pinged, version=0)(lambda state, event: state)
    with pytest.raises(ValueError, match="versions start at 1"):
        aggregate.check()


def test_a_rejection_code_must_be_kebab_case():
    assert Rejection("insufficient-funds", "no").code == "insufficient-funds"
    assert Rejection("e2e", "ok").message == "ok"
    for code in [
        "",
        "Insufficient",
        "snake_case",
        "-leading",
        "trailing-",
        "double--dash",
        "sp ace",
    ]:
        with pytest.raises(ValueError, match="not kebab-case"):
            Rejection(code, "message")


def test_a_stored_event_defaults_to_empty_data():
    assert StoredEvent("Pinged", 1).data == {}
