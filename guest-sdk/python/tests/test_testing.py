"""The given/when/then helpers pass what holds and fail what does not."""

from dataclasses import dataclass

import pytest
from samples import Add, Added, Address, Counter, Reset, Ship, Shipped, WasReset, counter

from tally_sdk import Aggregate, Context
from tally_sdk.testing import DEFAULT_NOW_MS, given, given_stored, stored, upcast


def test_then_events_returns_the_state_after_them():
    state = (
        given(counter, [Added(by=2, at_ms=1)])
        .when(Add(by=3))
        .then_events([Added(by=3, at_ms=DEFAULT_NOW_MS)])
    )
    assert state == Counter(value=5, last_ms=DEFAULT_NOW_MS)


def test_then_events_fails_on_other_events():
    outcome = given(counter).when(Add(by=3))
    with pytest.raises(AssertionError, match="expected events"):
        outcome.then_events([Added(by=4, at_ms=DEFAULT_NOW_MS)])
    with pytest.raises(AssertionError, match="expected events"):
        outcome.then_events([])


def test_then_events_fails_on_a_rejection():
    with pytest.raises(AssertionError, match="got the rejection invalid-amount"):
        given(counter).when(Add(by=0)).then_events([])


def test_then_rejects_returns_the_rejection():
    rejection = given(counter).when(Add(by=-1)).then_rejects("invalid-amount")
    assert "got -1" in rejection.message


def test_then_rejects_fails_on_events_or_another_code():
    with pytest.raises(AssertionError, match="got the events"):
        given(counter).when(Add(by=1)).then_rejects("invalid-amount")
    with pytest.raises(AssertionError, match="expected the rejection 'other'"):
        given(counter).when(Add(by=0)).then_rejects("other")


def test_when_raw_sends_the_data_as_given():
    given(counter).when_raw("Add", '{"by": "two"}').then_rejects("invalid-command")
    given(counter).when_raw("Add", b'{"by": 2}').then_events([Added(by=2, at_ms=DEFAULT_NOW_MS)])


def test_a_context_can_be_given():
    outcome = given(counter).when(Add(by=1), ctx=Context("c-2", 0, 42))
    outcome.then_events([Added(by=1, at_ms=42)])


def test_then_raw_events_compares_names_versions_and_json():
    outcome = given(counter).when(Ship(to=Address(street="Main")))
    outcome.then_raw_events([stored("Shipped", 1, {"street": "Main"})])
    with pytest.raises(AssertionError):
        outcome.then_raw_events([stored("Shipped", 2, {"street": "Main"})])


def test_a_command_with_no_event_keeps_the_state():
    state = given(counter).when(Reset()).then_events([])
    assert state == Counter()


def test_state_and_state_json_show_the_state_after_the_given_events():
    scenario = given(counter, [Added(by=2, at_ms=1, note="n"), WasReset(), Added(by=1, at_ms=2)])
    assert scenario.state == Counter(value=1, notes=["n"], last_ms=2)
    assert scenario.state_json() == {"value": 1, "notes": ["n"], "last_ms": 2}


def test_given_stored_upcasts_older_events_first():
    scenario = given_stored(
        counter, [stored("Added", 1, {"amount": 2}), stored("Doubled", 1, {"by": 1})]
    )
    assert scenario.state.value == 4
    assert scenario.stream_version == 2


def test_upcast_shows_what_one_stored_event_becomes():
    assert upcast(counter, stored("Added", 2, {"amount": 1, "at_ms": 3})) == [
        stored("Added", 3, {"at_ms": 3, "by": 1})
    ]


@dataclass(frozen=True)
class Tally:
    seen: int = 0


@dataclass(frozen=True)
class Look:
    pass


@dataclass(frozen=True)
class Looked:
    pass


def test_a_fold_that_depends_on_batching_fails_the_scenario():
    calls = []
    flaky = Aggregate("flaky", version="1.0.0", description="", state=Tally)
    flaky.handles(Look)(lambda state, command: Looked())

    @flaky.applies(Looked)
    def looked(state: Tally, event: Looked) -> Tally:
        calls.append(1)
        return Tally(seen=len(calls))  # counts calls ever made, not events in this state

    with pytest.raises(AssertionError, match="one batch"):
        given(flaky, [Looked(), Looked()])


def test_a_definition_that_breaks_the_rules_fails_the_scenario(monkeypatch):
    monkeypatch.setattr(counter, "aggregate_type", "Counter")
    with pytest.raises(ValueError, match="not kebab-case"):
        given(counter)


def test_a_bug_in_a_handler_surfaces_as_its_own_exception():
    buggy = Aggregate("buggy", version="1.0.0", description="", state=Tally)
    buggy.handles(Look)(lambda state, command: 1 / 0)
    buggy.applies(Looked)(lambda state, event: state)
    with pytest.raises(ZeroDivisionError):
        given(buggy).when(Look())


def test_shipped_is_stored_at_version_1():
    assert (
        given(counter).when(Ship(to=Address(street="x"))).then_events([Shipped(street="x")])
        == Counter()
    )
