// defineAggregate checks the tables when the module loads: a mistake fails the
// tests and the build, with a message naming the bad entry.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Rejection, defineAggregate, int, next, replace } from '../src/index.js';
import { ledgerSpec } from './fixtures.js';

const broken = (change, message) => assert.throws(() => defineAggregate({ ...ledgerSpec, ...change }), message);
const noop = (data) => data;

test('type, version and description are checked', () => {
  broken({ type: 'Ledger' }, /type "Ledger" is not kebab-case/);
  broken({ type: 'ledger-' }, /kebab-case/);
  broken({ version: '1.0' }, /version "1.0" is not semver/);
  broken({ description: '' }, /description/);
});

test('commands and events need their functions, fields need field types', () => {
  broken({ commands: {} }, /commands must name at least one/);
  broken({ commands: { Go: { fields: {} } } }, /command Go has no handle/);
  broken({ commands: { Go: { fields: { n: 'int' }, handle: () => [] } } }, /field "n" is not a field type/);
  broken({ events: { Went: { fields: { n: int } } } }, /event Went has no apply/);
  broken({ state: { total: Number } }, /state: field "total" is not a field type/);
});

test('event versions start at 1', () => {
  broken({ events: { Went: { version: 0, apply: noop } }, upcasters: [] }, /event Went: version must be an integer from 1/);
});

test('an upcaster must fit the events', () => {
  const events = { Opened: { version: 3, apply: noop } };
  const chain = [next('Opened', 1, noop), next('Opened', 2, noop)];
  assert.doesNotThrow(() => defineAggregate({ ...ledgerSpec, events, upcasters: chain }));
  broken({ events, upcasters: [next('Opened', 1, noop)] }, /Opened is written at v3 but has no upcaster from v2/);
  broken({ events, upcasters: [...chain, next('Opened', 3, noop)] }, /Opened v3: would never run/);
  broken({ events, upcasters: [...chain, next('Opened', 2, noop)] }, /Opened v2: is listed twice/);
  broken({ events, upcasters: [...chain, next('Openned', 1, noop)] }, /Openned v1: names no event \(events: Opened\)/);
  broken({ events, upcasters: [...chain, { event: 'Opened', fromVersion: 1 }] }, /not made by next/);
  assert.doesNotThrow(() => defineAggregate({ ...ledgerSpec, events, upcasters: [...chain, replace('Gone', 1, () => [])] }));
});

test('a rejection code must be kebab-case', () => {
  assert.equal(new Rejection('insufficient-funds', 'no').code, 'insufficient-funds');
  assert.throws(() => new Rejection('Insufficient Funds', 'no'), /not kebab-case/);
});
