"""The adapter from an `Aggregate` to the WIT exports of `tally:aggregate`.

componentize-py looks in the app module for a class named after the exported
interface, `Aggregate`. A plugin's app module makes it with `export`:

    from tally_sdk.component import export
    from bank_account import account

    Aggregate = export(account)

The generated bindings (`wit_world`) exist only while componentize-py builds the
component, so this module imports them only when `export` is called; the rest of
the SDK runs in plain CPython too. Every export converts WIT records to the wire
layer's plain values and back; a `Rejection` or `WireError` becomes the function's
`err`, and any other exception is a panic: the SDK writes the panic line
(`tally_sdk.panic`) and lets the exception trap the instance.
"""

import functools

from . import panic, wire
from .aggregate import Aggregate, Context, Rejection


def export(aggregate: Aggregate) -> type:
    """The class componentize-py instantiates for the `aggregate` interface."""
    from componentize_py_types import Err
    from wit_world import exports
    from wit_world.exports import aggregate as wit

    aggregate.check()  # at build time: a definition that breaks the rules fails the build

    def to_wit_event(event: wire.RawEvent):
        return wit.Event(event.name, event.version, event.data)

    def from_wit_event(event) -> wire.RawEvent:
        return wire.RawEvent(event.name, event.version, bytes(event.data))

    def context(ctx) -> Context:
        return Context(ctx.aggregate_id, ctx.stream_version, ctx.now_ms)

    def command(command) -> wire.RawCommand:
        return wire.RawCommand(command.name, bytes(command.data))

    def rejected(rejection: Rejection):
        return Err(wit.Rejection(rejection.code, rejection.message))

    class Exports(exports.Aggregate):
        @_panics_reported
        def describe(self):
            info = wire.describe(aggregate)
            events = [wit.EventSchema(name, version) for name, version in info.events]
            return wit.PluginInfo(
                info.aggregate_type, info.version, info.description, info.commands, events
            )

        @_panics_reported
        def initial_state(self) -> bytes:
            return wire.initial_state(aggregate)

        @_panics_reported
        def handle(self, ctx, state, cmd):
            try:
                events = wire.handle(aggregate, context(ctx), bytes(state), command(cmd))
            except Rejection as rejection:
                raise rejected(rejection) from None
            return [to_wit_event(event) for event in events]

        @_panics_reported
        def decide(self, ctx, state, cmd):
            try:
                events, after = wire.decide(aggregate, context(ctx), bytes(state), command(cmd))
            except Rejection as rejection:
                raise rejected(rejection) from None
            return wit.Decision([to_wit_event(event) for event in events], after)

        @_panics_reported
        def apply(self, state, events) -> bytes:
            try:
                return wire.apply(aggregate, bytes(state), [from_wit_event(e) for e in events])
            except wire.WireError as error:
                raise Err(str(error)) from None

        @_panics_reported
        def upcast(self, event):
            try:
                return [to_wit_event(e) for e in wire.upcast(aggregate, from_wit_event(event))]
            except wire.WireError as error:
                raise Err(str(error)) from None

        @_panics_reported
        def state_json(self, state) -> bytes:
            try:
                return wire.state_json(aggregate, bytes(state))
            except wire.WireError as error:
                raise Err(str(error)) from None

    Exports.__name__ = Exports.__qualname__ = "Aggregate"
    return Exports


def _panics_reported(method):
    """Lets an export's `err` through; reports any other exception as a panic."""
    from componentize_py_types import Err

    @functools.wraps(method)
    def call(*args):
        try:
            return method(*args)
        except Err:
            raise
        except BaseException as error:
            panic.report(error)
            raise

    return call
