// The exported functions on the wire: states, events read and written, decide
// against handle, upcasting and describe.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { event } from '../src/index.js';
import { given, givenStored, stored, upcast } from '../src/testing.js';
import * as wire from '../src/wire.js';
import { ledger } from './fixtures.js';

const bytes = (text) => new TextEncoder().encode(text);
const text = (data) => new TextDecoder().decode(data);
const ctx = { aggregateId: 'l-1', streamVersion: 0n, nowMs: 0n };
const entered = (amount, memo = 'm', tags = []) => event('Entered', { amount, memo, tags });
const raw = (name, version, data) => ({ name, version, data: bytes(data) });

test('describe lists the commands and the events at their current versions', () => {
  assert.deepEqual(wire.describe(ledger), {
    aggregateType: 'ledger',
    version: '2.1.0',
    description: 'Entries with amounts, memos and tags.',
    commands: ['Enter', 'Freeze', 'Explode', 'WriteUndeclared'],
    events: [{ name: 'Entered', version: 3 }, { name: 'Frozen', version: 1 }],
  });
});

test('the state is stored as its fields in JSON, and shown as such', () => {
  assert.equal(text(wire.initialState(ledger)), '{"total":0,"entries":0,"last_memo":null,"frozen":false}');
  assert.deepEqual(given(ledger, [entered(9007199254740993n)]).stateJson(), {
    total: 9007199254740993n,
    entries: 1n,
    last_memo: 'm',
    frozen: false,
  });
});

test('state bytes that cannot be decoded: invalid-state before the command, err elsewhere', () => {
  for (const state of ['not json', '{"total": "x"}', '', '{"total": 1, "total": 1}']) {
    const command = { name: 'Nope', data: bytes('garbage') };
    assert.equal(wire.handle(ledger, ctx, bytes(state), command).val.code, 'invalid-state');
    assert.equal(wire.decide(ledger, ctx, bytes(state), command).val.code, 'invalid-state');
    assert.equal(wire.apply(ledger, bytes(state), []).tag, 'err');
    assert.equal(wire.stateJson(ledger, bytes(state)).tag, 'err');
  }
});

test('decide answers as handle then apply would', () => {
  const state = wire.initialState(ledger);
  const command = { name: 'Enter', data: bytes('{"amount": 5, "memo": "x"}') };
  const decided = wire.decide(ledger, ctx, state, command);
  const handled = wire.handle(ledger, ctx, state, command);
  assert.deepEqual(decided.val.events, handled.val);
  assert.deepEqual(decided.val.state, wire.apply(ledger, state, handled.val).val);
});

test('an accepted command may write no events', () => {
  given(ledger, []).when('Enter', { amount: 0n }).thenEvents([]);
});

test('events are written compact, fields in declaration order, {} without fields', () => {
  given(ledger, [])
    .when('Enter', { tags: ['t'], memo: 'x', amount: 2n })
    .thenRawEvents([stored('Entered', 3, { amount: 2n, memo: 'x', tags: ['t'] })]);
  const [written] = given(ledger, []).when('Freeze').accepted().events;
  assert.equal(text(written.data), '{}');
});

test('apply gives the same state for any batching', () => {
  const events = [entered(1n), entered(2n), { name: 'Frozen' }].map((e) => wire.encodeEvent(ledger, e));
  const initial = wire.initialState(ledger);
  const batched = wire.apply(ledger, initial, events).val;
  const oneByOne = events.reduce((state, e) => wire.apply(ledger, state, [e]).val, initial);
  assert.deepEqual(oneByOne, batched);
});

test('reading events is lenient: unknown fields ignored, no data for an event without fields', () => {
  const initial = wire.initialState(ledger);
  const events = [
    raw('Entered', 3, '{"amount": 1, "memo": "m", "tags": [], "later": {"x": 1}}'),
    raw('Frozen', 1, ''),
    raw('Frozen', 1, 'null'),
    raw('Frozen', 1, ' {} '),
  ];
  assert.equal(wire.apply(ledger, initial, events).tag, 'ok');
});

test('stored events that do not fit are an error from apply, naming the event', () => {
  const initial = wire.initialState(ledger);
  const misfits = [
    raw('Entered', 3, 'not json'),
    raw('Entered', 3, '{"amount": "x", "memo": "m", "tags": []}'),
    raw('Entered', 3, '{"memo": "m", "tags": []}'),
    raw('Entered', 3, '{"amount": 1, "amount": 1, "memo": "m", "tags": []}'),
    raw('Entered', 3, ''),
    raw('Entered', 2, '{"amount": 1, "memo": "m"}'),
    raw('Unknown', 1, '{}'),
    raw('Frozen', 1, '[]'),
  ];
  for (const misfit of misfits) {
    const result = wire.apply(ledger, initial, [wire.encodeEvent(ledger, entered(1n)), misfit]);
    assert.equal(result.tag, 'err', text(misfit.data));
    assert.match(result.val, /^event 1 of the batch: /);
  }
});

test('upcast lifts old events through the chain, splits and drops them', () => {
  assert.deepEqual(upcast(ledger, stored('Entered', 1, { amount: 5 })), [
    { name: 'Entered', version: 3, data: { amount: 5n, memo: 'from v1', tags: [] } },
  ]);
  assert.deepEqual(upcast(ledger, stored('Imported', 1, { first: 1, second: 2 })), [
    { name: 'Entered', version: 3, data: { amount: 1n, memo: 'from v1', tags: [] } },
    { name: 'Entered', version: 3, data: { amount: 2n, memo: 'second', tags: ['imported'] } },
  ]);
  assert.deepEqual(upcast(ledger, stored('Dropped', 1)), []);
});

test('upcast returns a current event unchanged', () => {
  const current = stored('Entered', 3, { amount: 5n, memo: 'm', tags: [] });
  assert.deepEqual(upcast(ledger, current), [current]);
});

test('upcast refuses unknown, newer, unreadable and refused events with an error', () => {
  const cases = [
    [stored('Unknown', 1), /unknown event Unknown v1/],
    [stored('Entered', 4), /newer than this plugin, which writes v3/],
    [stored('Frozen', 0), /no upcaster for Frozen v0/],
    [stored('Entered', 1, 'not json'), /not JSON/],
    [stored('Broken', 1), /upcasting Broken v1: cannot read this one/],
  ];
  for (const [event, message] of cases) {
    const result = wire.upcast(ledger, { ...event, data: bytes(typeof event.data === 'string' ? event.data : '{}') });
    assert.equal(result.tag, 'err');
    assert.match(result.val, message);
  }
});

test('givenStored upcasts first and counts stored events as the stream version', () => {
  const scenario = givenStored(ledger, [stored('Imported', 1, { first: 1, second: 2 })]);
  assert.equal(scenario.streamVersion, 1n);
  assert.equal(scenario.state().entries, 2n);
});

test('a bug in handle, apply or an event written is thrown, never an answer', () => {
  const state = wire.initialState(ledger);
  const call = (name) => () => wire.decide(ledger, ctx, state, { name, data: bytes('') });
  assert.throws(call('Explode'), RangeError);
  assert.throws(call('WriteUndeclared'), /"Nope" is not a declared event/);
  assert.throws(() => wire.encodeEvent(ledger, event('Entered', { amount: 1n })), /missing field "memo"/);
  assert.throws(() => wire.encodeEvent(ledger, event('Entered', { amount: 1.5, memo: 'm', tags: [] })), TypeError);
  assert.throws(() => wire.encodeEvent(ledger, event('Entered', { amount: 2n ** 63n, memo: 'm', tags: [] })), TypeError);
  assert.throws(() => wire.encodeEvent(ledger, event('Entered', { amount: 1n, memo: 'm', tags: [], typo: 1 })), /not a declared field/);
});
