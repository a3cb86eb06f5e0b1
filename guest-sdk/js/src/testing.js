// Given/when/then tests of an aggregate, in plain Node (`node --test`), with no
// component built: every step goes through the wire layer the component runs, so
// commands, events and states also prove that they survive their JSON.
//
//   given(bankAccount, [event('AccountOpened', { initial_balance: 100n })])
//     .when('Withdraw', { amount: 30n })
//     .thenEvents([event('MoneyWithdrawn', { amount: 30n })]);   // returns the state
//
// As the host does, `given` folds its events in one `apply` call and again one call
// each (the two must agree), and `when` runs both `decide` and `handle` (they must
// agree). Expected data is compared as JSON values: `30` and `30n` are the same.

import assert from 'node:assert/strict';

import { encodeUtf8, parseJson, stringifyJson } from './json.js';
import * as wire from './wire.js';

const CONTEXT = Object.freeze({ aggregateId: 'test-1', streamVersion: 0n, nowMs: 1_767_225_600_000n });

/** A scenario from typed events `{ name, data }`, written at their current versions. */
export function given(aggregate, events = []) {
  return new Scenario(aggregate, events.map((e) => wire.encodeEvent(aggregate, e)));
}

/**
 * A scenario from stored events `{ name, version, data }` of any version: as the
 * host does, those not at a version `describe` lists are upcast first, the others
 * go to `apply` as stored.
 */
export function givenStored(aggregate, events = []) {
  const current = events.flatMap((e) => (isCurrent(aggregate, e) ? [rawEvent(e)] : upcast(aggregate, e).map(rawEvent)));
  const scenario = new Scenario(aggregate, current);
  scenario.streamVersion = BigInt(events.length);
  return scenario;
}

function isCurrent(aggregate, { name, version }) {
  return Object.hasOwn(aggregate.events, name) && aggregate.events[name].version === version;
}

/** A stored event: name, schema version, data (a JSON value, or wire text). */
export function stored(name, version, data = {}) {
  return { name, version, data };
}

/** What the host's `upcast` makes of one stored event: `{ name, version, data }`s. */
export function upcast(aggregate, event) {
  const result = wire.upcast(aggregate, rawEvent(event));
  if (result.tag === 'err') throw new Error(`upcast refused ${event.name} v${event.version}: ${result.val}`);
  return result.val.map(readableEvent);
}

export class Scenario {
  constructor(aggregate, events) {
    this.aggregate = aggregate;
    this.events = events;
    this.streamVersion = BigInt(events.length);
    this.stateBytes = fold(aggregate, events);
  }

  /** The command `name` with `data`, written as a client would (BigInt allowed). */
  when(name, data = {}) {
    return this.whenRaw(name, stringifyJson(data));
  }

  /** The command `name` with exactly this data text (`''` is no data). */
  whenRaw(name, text, context = {}) {
    const ctx = { ...CONTEXT, streamVersion: this.streamVersion, ...context };
    const command = { name, data: encodeUtf8(text) };
    const decided = wire.decide(this.aggregate, ctx, this.stateBytes, command);
    const handled = wire.handle(this.aggregate, ctx, this.stateBytes, command);
    assertAgree(decided, handled, name);
    return new Outcome(this.aggregate, this.stateBytes, decided);
  }

  /** The state after the given events, as `apply` decodes it. */
  state() {
    return wire.decodeState(this.aggregate, this.stateBytes);
  }

  /** `state-json` after the given events, parsed (integers as BigInt). */
  stateJson() {
    return stateJsonOf(this.aggregate, this.stateBytes);
  }
}

export class Outcome {
  constructor(aggregate, stateBytes, result) {
    this.aggregate = aggregate;
    this.stateBytesBefore = stateBytes;
    this.result = result;
  }

  /** The command was accepted with these `{ name, data }` events; returns the state after. */
  thenEvents(expected) {
    const events = this.accepted().events.map(readableEvent);
    assert.deepStrictEqual(
      events.map(({ name, data }) => ({ name, data })),
      expected.map(({ name, data = {} }) => ({ name, data: asJson(data) })),
    );
    return this.state();
  }

  /** The command was accepted with exactly these stored `{ name, version, data }` events. */
  thenRawEvents(expected) {
    const events = this.accepted().events.map(readableEvent);
    assert.deepStrictEqual(events, expected.map((e) => ({ ...e, data: asJson(e.data ?? {}) })));
    return this.state();
  }

  /** The command was refused with `code`; returns the rejection `{ code, message }`. */
  thenRejects(code) {
    if (this.result.tag === 'ok') {
      const events = this.result.val.events.map(readableEvent);
      assert.fail(`expected rejection "${code}", got events ${stringifyJson(events)}`);
    }
    assert.equal(this.result.val.code, code, `rejection message: ${this.result.val.message}`);
    return this.result.val;
  }

  /** The state after the accepted command's events. */
  state() {
    return wire.decodeState(this.aggregate, this.accepted().state);
  }

  /** `state-json` after the accepted command's events, parsed. */
  stateJson() {
    return stateJsonOf(this.aggregate, this.accepted().state);
  }

  accepted() {
    if (this.result.tag === 'err') {
      const { code, message } = this.result.val;
      assert.fail(`expected the command to be accepted, got rejection "${code}": ${message}`);
    }
    return this.result.val;
  }
}

/** Folds events in one `apply` and one call each; both must give the same state. */
function fold(aggregate, events) {
  const initial = wire.initialState(aggregate);
  const batched = applied(aggregate, initial, events);
  const oneByOne = events.reduce((state, e) => applied(aggregate, state, [e]), initial);
  assert.deepStrictEqual(oneByOne, batched, 'apply gave another state one event at a time');
  return batched;
}

function applied(aggregate, state, events) {
  const result = wire.apply(aggregate, state, events);
  if (result.tag === 'err') assert.fail(`apply refused the given events: ${result.val}`);
  return result.val;
}

/** decide and handle: the same events, or rejections with the same code. */
function assertAgree(decided, handled, name) {
  assert.equal(decided.tag, handled.tag, `${name}: decide and handle disagree`);
  if (decided.tag === 'ok') {
    assert.deepStrictEqual(decided.val.events, handled.val, `${name}: decide and handle returned other events`);
  } else {
    assert.equal(decided.val.code, handled.val.code, `${name}: decide and handle rejected with other codes`);
  }
}

function stateJsonOf(aggregate, stateBytes) {
  const result = wire.stateJson(aggregate, stateBytes);
  if (result.tag === 'err') assert.fail(`state-json refused the state: ${result.val}`);
  return toPlain(parseJson(new TextDecoder().decode(result.val)));
}

/** A wire event `{ name, version, data: Uint8Array }` from a stored one. */
function rawEvent({ name, version, data }) {
  const text = typeof data === 'string' ? data : stringifyJson(data);
  return { name, version, data: encodeUtf8(text) };
}

/** A wire event with its data parsed, for comparing and printing. */
function readableEvent({ name, version, data }) {
  const text = new TextDecoder().decode(data);
  return { name, version, data: text.trim() === '' ? null : toPlain(parseJson(text)) };
}

/** A JSON value as the wire gives it back: integers BigInt, ordinary objects. */
function asJson(value) {
  return toPlain(parseJson(stringifyJson(value)));
}

/** A parsed value with ordinary objects, so that it compares equal to literals. */
function toPlain(value) {
  if (Array.isArray(value)) return value.map(toPlain);
  if (typeof value !== 'object' || value === null) return value;
  return Object.fromEntries(Object.entries(value).map(([key, member]) => [key, toPlain(member)]));
}
