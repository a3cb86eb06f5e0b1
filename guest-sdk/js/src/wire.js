// The wire layer: the exported functions of `tally:aggregate` on plain values, what
// the component runs minus the WIT conversions. Bytes are Uint8Array; results are
// the WIT shapes `{ tag: 'ok', val }` and `{ tag: 'err', val }`. Data that does not
// fit is refused (a rejection or an error string); a bug in the plugin (an event
// that cannot be encoded, an exception from handle or apply) is thrown, and the
// component adapter reports it as a panic.

import { INVALID_COMMAND, INVALID_STATE, Rejection } from './aggregate.js';
import {
  WireError,
  decodeUtf8,
  encodeUtf8,
  isBlank,
  isPlainObject,
  parseJson,
  stringifyJson,
} from './json.js';
import { IGNORE_UNKNOWN, REFUSE_UNKNOWN, decodeFields, encodeFields } from './schema.js';
import { upcastEvent } from './upcast.js';

const ok = (val) => ({ tag: 'ok', val });
const err = (val) => ({ tag: 'err', val });

/** `describe`: the plugin's identity, commands and event schemas. */
export function describe(aggregate) {
  return {
    aggregateType: aggregate.type,
    version: aggregate.version,
    description: aggregate.description,
    commands: Object.keys(aggregate.commands),
    events: Object.entries(aggregate.events).map(([name, { version }]) => ({ name, version })),
  };
}

/** `initial-state`: the encoded initial state. */
export function initialState(aggregate) {
  return encodeState(aggregate, aggregate.initialState());
}

/** `handle`: decodes the state, then the command, then decides. */
export function handle(aggregate, ctx, stateBytes, command) {
  const decided = decideEvents(aggregate, ctx, stateBytes, command);
  if (decided.rejection) return err(decided.rejection);
  return ok(decided.events);
}

/**
 * `decide`: `handle`, then `apply` of its events as decoded back from their JSON,
 * so that the state is the one a replay rebuilds; an event that does not decode
 * back is a bug.
 */
export function decide(aggregate, ctx, stateBytes, command) {
  const decided = decideEvents(aggregate, ctx, stateBytes, command);
  if (decided.rejection) return err(decided.rejection);
  let state = decided.state;
  for (const event of decided.events) {
    state = applyEvent(aggregate, state, decodeWrittenEvent(aggregate, event));
  }
  return ok({ events: decided.events, state: encodeState(aggregate, state) });
}

/** `apply`: folds events (current versions, stream order) into the state. */
export function apply(aggregate, stateBytes, events) {
  let state;
  try {
    state = decodeState(aggregate, stateBytes);
  } catch (error) {
    return err(refusal(error));
  }
  for (const [index, event] of events.entries()) {
    let decoded;
    try {
      decoded = decodeEvent(aggregate, event);
    } catch (error) {
      return err(`event ${index} of the batch: ${refusal(error)}`);
    }
    state = applyEvent(aggregate, state, decoded);
  }
  return ok(encodeState(aggregate, state));
}

/** `upcast`: lifts one stored event to the current schema versions. */
export function upcast(aggregate, event) {
  try {
    const data = parseData(aggregate, event.data);
    const stored = { name: event.name, version: event.version, data };
    const events = upcastEvent(aggregate, stored);
    return ok(events.map(({ name, version, data }) => ({ name, version, data: encodeUtf8(stringifyJson(data)) })));
  } catch (error) {
    return err(`${event.name} v${event.version}: ${error?.message ?? error}`);
  }
}

/** `state-json`: the state as a JSON object. */
export function stateJson(aggregate, stateBytes) {
  let state;
  try {
    state = decodeState(aggregate, stateBytes);
  } catch (error) {
    return err(refusal(error));
  }
  const rendered = aggregate.stateJson ? aggregate.stateJson(state) : encodeFields(aggregate.state, state, 'state');
  if (!isPlainObject(rendered)) throw new TypeError(`${aggregate.type}: stateJson must return an object`);
  return ok(encodeUtf8(stringifyJson(rendered)));
}

/**
 * The shared part of `handle` and `decide`: `{ rejection }`, or `{ events, state }`
 * with the events encoded and the state as decoded before them.
 */
function decideEvents(aggregate, ctx, stateBytes, command) {
  let state;
  try {
    state = decodeState(aggregate, stateBytes);
  } catch (error) {
    return { rejection: { code: INVALID_STATE, message: refusal(error) } };
  }
  let data;
  try {
    data = decodeCommand(aggregate, command);
  } catch (error) {
    return { rejection: { code: INVALID_COMMAND, message: refusal(error) } };
  }
  let events;
  try {
    events = aggregate.commands[command.name].handle(state, data, ctx);
  } catch (error) {
    if (error instanceof Rejection) return { rejection: { code: error.code, message: error.message } };
    throw error;
  }
  return { events: encodeEvents(aggregate, command.name, events), state };
}

/** The message of a refusal (WireError); any other error is a bug and rethrown. */
function refusal(error) {
  if (error instanceof WireError) return error.message;
  throw error;
}

/** A command's fields from its wire data, strictly (WIRE.md, Commands). */
export function decodeCommand(aggregate, { name, data }) {
  if (!Object.hasOwn(aggregate.commands, name)) {
    const expected = Object.keys(aggregate.commands).map((known) => `"${known}"`).join(', ');
    throw new WireError(`unknown command ${JSON.stringify(name)} (expected one of ${expected})`);
  }
  const { fields } = aggregate.commands[name];
  const value = parseData(aggregate, data);
  if (Object.keys(fields).length === 0) return decodeNoFields(name, value);
  const unknown = aggregate.allowUnknownFields ? IGNORE_UNKNOWN : REFUSE_UNKNOWN;
  return decodeFields(fields, value, name, unknown);
}

/** Without fields: no data, `null` or `{}`, nothing else. */
function decodeNoFields(name, value) {
  if (value === null || (isPlainObject(value) && Object.keys(value).length === 0)) return {};
  throw new WireError(`${name}: takes no data, got ${stringifyJson(value).slice(0, 60)}`);
}

/** Wire data as a parsed JSON value; empty data is `null`. */
function parseData(aggregate, bytes) {
  const text = decodeUtf8(bytes);
  if (isBlank(text)) return null;
  return parseJson(text, { maxDepth: aggregate.maxDepth });
}

/** A stored event at its current version, leniently (WIRE.md, Events: Read). */
export function decodeEvent(aggregate, { name, version, data }) {
  if (!Object.hasOwn(aggregate.events, name)) throw new WireError(`unknown event ${name} v${version}`);
  const schema = aggregate.events[name];
  if (version !== schema.version) {
    throw new WireError(`${name} v${version} is not at the current schema version v${schema.version}; upcast it first`);
  }
  const value = parseData(aggregate, data);
  const label = `${name} v${version}`;
  if (Object.keys(schema.fields).length === 0) {
    if (value === null || isPlainObject(value)) return { name, data: {} };
    throw new WireError(`${label}: takes no data`);
  }
  return { name, data: decodeFields(schema.fields, value, label, IGNORE_UNKNOWN) };
}

/** An event `handle` just wrote, decoded back; failing to is a bug. */
function decodeWrittenEvent(aggregate, event) {
  try {
    return decodeEvent(aggregate, event);
  } catch (error) {
    throw new Error(`${aggregate.type}: handle returned an event that does not decode back from its JSON: ${error.message}`);
  }
}

/** `handle`'s answer as wire events; anything but declared events is a bug. */
function encodeEvents(aggregate, command, events) {
  if (!Array.isArray(events)) {
    throw new TypeError(`${aggregate.type}: ${command}.handle must return an array of events`);
  }
  return events.map((event) => encodeEvent(aggregate, event));
}

/** One `{ name, data }` event, at its current version, as compact JSON. */
export function encodeEvent(aggregate, event) {
  const name = event?.name;
  if (!Object.hasOwn(aggregate.events, name ?? '')) {
    throw new TypeError(`${aggregate.type}: ${JSON.stringify(name)} is not a declared event`);
  }
  const { version, fields } = aggregate.events[name];
  const data = encodeFields(fields, event.data ?? {}, `event ${name}`);
  return { name, version, data: encodeUtf8(stringifyJson(data)) };
}

function applyEvent(aggregate, state, event) {
  const next = aggregate.events[event.name].apply(state, event.data);
  if (!isPlainObject(next)) throw new TypeError(`${aggregate.type}: ${event.name}.apply must return the new state`);
  return next;
}

/** State bytes: the state's fields as JSON. */
export function encodeState(aggregate, state) {
  return encodeUtf8(stringifyJson(encodeFields(aggregate.state, state, `${aggregate.type} state`)));
}

export function decodeState(aggregate, bytes) {
  try {
    const value = parseJson(decodeUtf8(bytes), { maxDepth: aggregate.maxDepth });
    return decodeFields(aggregate.state, value, 'state', IGNORE_UNKNOWN);
  } catch (error) {
    throw error instanceof WireError ? new WireError(`state cannot be decoded: ${error.message}`) : error;
  }
}
