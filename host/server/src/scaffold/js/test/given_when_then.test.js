// Given/when/then tests, run natively with `npm test` (node --test). Each step goes
// through the same JSON encoding the component uses.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { event } from '@tally/sdk';
import { given } from '@tally/sdk/testing';

import { {{Type}} } from '../src/index.js';

test('recording a value counts it and adds it to the total', () => {
  const state = given({{Type}}, [event('Recorded', { value: 2n })])
    .when('Record', { value: 3n })
    .thenEvents([event('Recorded', { value: 3n })]);
  assert.equal(state.count, 2n);
  assert.equal(state.total, 5n);
});

test('recording zero is rejected', () => {
  given({{Type}}, []).when('Record', { value: 0n }).thenRejects('invalid-value');
});

test('a value that is not a number is an invalid command', () => {
  given({{Type}}, []).whenRaw('Record', '{"value": "five"}').thenRejects('invalid-command');
});
