"""The adapter to the WIT exports, against stand-ins of the bindings componentize-py
generates (`wit_world`, `componentize_py_types`): records in and out, `err` for
rejections and unreadable data, the panic line and a trap for bugs."""

import sys
import types
from dataclasses import dataclass

import pytest
from samples import counter

from tally_sdk.panic import PANIC_MARKER


@dataclass
class Err(Exception):
    value: object


def _bindings() -> dict:
    """Modules shaped as componentize-py generates them for wit/aggregate.wit."""
    wit = types.ModuleType("wit_world.exports.aggregate")
    for name, fields in {
        "EventSchema": "name version",
        "PluginInfo": "aggregate_type version description commands events",
        "Context": "aggregate_id stream_version now_ms",
        "Command": "name data",
        "Event": "name version data",
        "Decision": "events state",
        "Rejection": "code message",
    }.items():
        setattr(
            wit,
            name,
            dataclass(type(name, (), {"__annotations__": dict.fromkeys(fields.split(), object)})),
        )
    exports = types.ModuleType("wit_world.exports")
    exports.Aggregate = type("Aggregate", (), {})
    exports.aggregate = wit
    world = types.ModuleType("wit_world")
    world.exports = exports
    runtime_types = types.ModuleType("componentize_py_types")
    runtime_types.Err = Err
    return {
        "wit_world": world,
        "wit_world.exports": exports,
        "wit_world.exports.aggregate": wit,
        "componentize_py_types": runtime_types,
    }


@pytest.fixture
def component(monkeypatch):
    for name, module in _bindings().items():
        monkeypatch.setitem(sys.modules, name, module)
    from tally_sdk.component import export

    exported = export(counter)
    return exported(), sys.modules["wit_world.exports.aggregate"]


def test_the_export_is_a_class_named_after_the_interface(component):
    instance, _ = component
    assert type(instance).__name__ == "Aggregate"


def test_describe_answers_wit_records(component):
    instance, wit = component
    info = instance.describe()
    assert info.aggregate_type == "counter" and info.version == "1.2.0"
    assert info.commands == ["Add", "Ship", "Reset-All"]
    assert info.events[0] == wit.EventSchema("Added", 3)


def test_decide_answers_a_decision_with_wit_events(component):
    instance, wit = component
    ctx = wit.Context("c-1", 0, 5)
    decision = instance.decide(ctx, instance.initial_state(), wit.Command("Add", b'{"by": 2}'))
    assert decision.events == [wit.Event("Added", 3, b'{"by":2,"at_ms":5,"note":null}')]
    assert decision.state == b'{"value":2,"notes":[],"last_ms":5}'
    assert (
        instance.handle(ctx, instance.initial_state(), wit.Command("Add", b'{"by": 2}'))
        == decision.events
    )


def test_a_rejection_is_the_err_of_handle_and_decide(component):
    instance, wit = component
    for call in (instance.handle, instance.decide):
        with pytest.raises(Err) as error:
            call(
                wit.Context("c-1", 0, 0), instance.initial_state(), wit.Command("Add", b'{"by": 0}')
            )
        assert error.value.value.code == "invalid-amount"


def test_unreadable_data_is_the_err_of_apply_upcast_and_state_json(component):
    instance, wit = component
    for call, args in [
        (instance.apply, (instance.initial_state(), [wit.Event("Added", 3, b"{")])),
        (instance.upcast, (wit.Event("Gone", 1, b"{}"),)),
        (instance.state_json, (b"[]",)),
    ]:
        with pytest.raises(Err) as error:
            call(*args)
        assert isinstance(error.value.value, str)


def test_a_bug_writes_the_panic_line_and_traps(component, monkeypatch, capsys):
    instance, wit = component
    monkeypatch.setattr(counter, "version", "not semver")
    with pytest.raises(ValueError, match="not semver"):
        instance.describe()
    err = capsys.readouterr().err
    message = "ValueError: aggregate 'counter': the version 'not semver' is not semver"
    assert err.startswith(f"{PANIC_MARKER}{message} (at ")
    assert err.count("\n") == 1
