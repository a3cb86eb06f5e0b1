// The WIT side: turns an aggregate into the object componentize-js binds to the
// `tally:aggregate/aggregate@1.1.0` export. A plugin's module exports it as
// `aggregate`:
//
//   export const aggregate = exportAggregate(bankAccount);
//
// Values arrive as componentize-js maps them (list<u8> as Uint8Array, u64 as
// BigInt, records as objects with camelCase fields); results go back as
// `{ tag: 'ok' | 'err', val }`. An error escaping a call is reported as a panic, and
// an Error is thrown on, so that the instance traps (see panic.js).

import { reportPanic } from './panic.js';
import * as wire from './wire.js';

export function exportAggregate(aggregate) {
  const info = wire.describe(aggregate);
  return {
    describe: guarded(() => info),
    initialState: guarded(() => wire.initialState(aggregate)),
    handle: guarded((ctx, state, command) => wire.handle(aggregate, ctx, state, command)),
    decide: guarded((ctx, state, command) => wire.decide(aggregate, ctx, state, command)),
    apply: guarded((state, events) => wire.apply(aggregate, state, events)),
    upcast: guarded((event) => wire.upcast(aggregate, event)),
    stateJson: guarded((state) => wire.stateJson(aggregate, state)),
  };
}

/** `fn`, with any error that escapes it reported as a panic. */
function guarded(fn) {
  return (...args) => {
    try {
      return fn(...args);
    } catch (error) {
      throw reportPanic(error);
    }
  };
}
