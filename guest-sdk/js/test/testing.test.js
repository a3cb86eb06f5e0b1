// The given/when/then helpers fail when the aggregate does not answer as expected.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { event } from '../src/index.js';
import { given } from '../src/testing.js';
import { ledger } from './fixtures.js';

const entered = (amount, memo = 'none') => event('Entered', { amount, memo, tags: [] });

test('thenEvents takes numbers or BigInt and returns the state after', () => {
  const state = given(ledger, [entered(1n)]).when('Enter', { amount: 2 }).thenEvents([entered(2)]);
  assert.equal(state.total, 3n);
});

test('thenEvents fails on other events', () => {
  const outcome = given(ledger, []).when('Enter', { amount: 2n });
  assert.throws(() => outcome.thenEvents([entered(3n)]), assert.AssertionError);
  assert.throws(() => outcome.thenEvents([]), assert.AssertionError);
});

test('thenEvents fails on a rejection, thenRejects on acceptance or another code', () => {
  const rejected = given(ledger, [event('Frozen')]).when('Enter', { amount: 2n });
  assert.throws(() => rejected.thenEvents([entered(2n)]), /got rejection "ledger-frozen"/);
  assert.throws(() => rejected.thenRejects('invalid-command'), assert.AssertionError);
  assert.throws(() => given(ledger, []).when('Enter', { amount: 2n }).thenRejects('ledger-frozen'), /expected rejection/);
});

test('given fails when the history cannot be folded', () => {
  assert.throws(() => given(ledger, [event('Entered', { amount: 'x', memo: 'm', tags: [] })]), TypeError);
});
