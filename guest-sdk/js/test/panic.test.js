// Bugs become one panic line on stderr and a trap; refusals stay answers.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { exportAggregate } from '../src/index.js';
import { oneLine, panicLine, throwLocation } from '../src/panic.js';
import { ledger } from './fixtures.js';

const bytes = (text) => new TextEncoder().encode(text);
const ctx = { aggregateId: 'l-1', streamVersion: 0n, nowMs: 0n };

/** Runs `fn` with console.error captured; returns what it wrote and what it threw. */
function capturingStderr(fn) {
  const lines = [];
  const original = console.error;
  console.error = (line) => lines.push(line);
  try {
    fn();
    return { lines, thrown: undefined };
  } catch (thrown) {
    return { lines, thrown };
  } finally {
    console.error = original;
  }
}

test('line breaks and backslashes are escaped', () => {
  assert.equal(oneLine('a\nb\r\\c'), 'a\\nb\\r\\\\c');
});

test('the line carries the marker, the message and where it was thrown', () => {
  const line = panicLine(new RangeError('balance 7 overflowed\nbadly'));
  assert.match(line, /^tally-plugin-panic: RangeError: balance 7 overflowed\\nbadly \(at .*panic\.test\.js:\d+:\d+\)\n$/);
  assert.equal(line.split('\n').length, 2);
});

test('the location is read from SpiderMonkey and V8 stacks', () => {
  assert.equal(throwLocation('apply@component.js:120:15\nfold@component.js:80:3\n'), 'component.js:120:15');
  assert.equal(throwLocation('Error: x\n    at apply (file:///p/src/index.js:12:9)\n'), 'file:///p/src/index.js:12:9');
  assert.equal(throwLocation('Error: x\n    at file:///p/src/index.js:3:1'), 'file:///p/src/index.js:3:1');
  assert.equal(throwLocation(undefined), undefined);
});

test('a thrown non-error is reported too, without a location', () => {
  assert.equal(panicLine('oops'), 'tally-plugin-panic: uncaught oops\n');
});

test('the component reports a bug in handle as a panic line and traps', () => {
  const component = exportAggregate(ledger);
  const { lines, thrown } = capturingStderr(() =>
    component.decide(ctx, component.initialState(), { name: 'Explode', data: bytes('') }),
  );
  assert.ok(thrown instanceof Error, 'an error is thrown, so that the instance traps');
  assert.equal(thrown.code, undefined, 'it cannot pass for a rejection');
  assert.match(thrown.message, /^RangeError: line one/);
  assert.equal(lines.length, 1);
  assert.match(lines[0], /^tally-plugin-panic: RangeError: line one\\nline two \(at .*fixtures\.js:\d+:\d+\)$/);
});

test('a thrown non-error still traps: it is never taken for an err result', () => {
  const component = exportAggregate({ ...ledger, commands: { Enter: { fields: {}, handle: () => { throw 'text'; } } } });
  const { thrown } = capturingStderr(() =>
    component.handle(ctx, component.initialState(), { name: 'Enter', data: bytes('') }),
  );
  assert.ok(thrown instanceof Error);
});

test('a bug\'s error with a string code is not taken for a rejection', () => {
  const withCode = () => {
    throw Object.assign(new Error('lookup failed'), { code: 'not-found' });
  };
  const component = exportAggregate({ ...ledger, commands: { Enter: { fields: {}, handle: withCode } } });
  const { lines, thrown } = capturingStderr(() =>
    component.decide(ctx, component.initialState(), { name: 'Enter', data: bytes('') }),
  );
  assert.equal(thrown.code, undefined);
  assert.match(lines[0], /^tally-plugin-panic: Error: lookup failed \(at /);
});

test('refusals are answers, not panics', () => {
  const component = exportAggregate(ledger);
  const { lines, thrown } = capturingStderr(() => {
    const state = component.initialState();
    assert.equal(component.handle(ctx, state, { name: 'Enter', data: bytes('[') }).val.code, 'invalid-command');
    assert.equal(component.apply(state, [{ name: 'Nope', version: 1, data: bytes('{}') }]).tag, 'err');
    assert.equal(component.upcast({ name: 'Nope', version: 1, data: bytes('{}') }).tag, 'err');
    assert.equal(component.stateJson(bytes('x')).tag, 'err');
  });
  assert.equal(thrown, undefined);
  assert.deepEqual(lines, []);
});

test('every result goes back tagged, as componentize-js expects', () => {
  const component = exportAggregate(ledger);
  const state = component.initialState();
  assert.ok(state instanceof Uint8Array);
  const decided = component.decide(ctx, state, { name: 'Enter', data: bytes('{"amount": 1}') });
  assert.equal(decided.tag, 'ok');
  assert.ok(decided.val.state instanceof Uint8Array);
  assert.deepEqual(Object.keys(decided.val.events[0]), ['name', 'version', 'data']);
  assert.equal(component.stateJson(state).tag, 'ok');
});
