// What bank-account v1 shows the host besides its rules: describe, its state JSON
// and the schema version of each event it writes. (How the SDK encodes, decodes and
// upcasts is tested in the SDK.)

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { event } from '@tally/sdk';
import { given, stored } from '@tally/sdk/testing';

import { aggregate, bankAccount } from '../src/index.js';

test('describe names the type, the commands and the events at version 1', () => {
  assert.deepEqual(aggregate.describe(), {
    aggregateType: 'bank-account',
    version: '1.0.0',
    description: 'A bank account: open, deposit, withdraw, close; never below zero.',
    commands: ['OpenAccount', 'Deposit', 'Withdraw', 'CloseAccount'],
    events: [
      { name: 'AccountOpened', version: 1 },
      { name: 'MoneyDeposited', version: 1 },
      { name: 'MoneyWithdrawn', version: 1 },
      { name: 'AccountClosed', version: 1 },
    ],
  });
});

test('the initial state is an unopened empty account', () => {
  assert.deepEqual(given(bankAccount, []).stateJson(), { balance: 0n, open: false, closed: false });
});

test('state JSON shows balance, open and closed', () => {
  const scenario = given(bankAccount, [
    event('AccountOpened', { initial_balance: 100n }),
    event('MoneyDeposited', { amount: 25n }),
    event('MoneyWithdrawn', { amount: 5n }),
  ]);
  assert.deepEqual(scenario.stateJson(), { balance: 120n, open: true, closed: false });
});

test('a closed account shows as closed and not open', () => {
  const scenario = given(bankAccount, [
    event('AccountOpened', { initial_balance: 10n }),
    event('MoneyWithdrawn', { amount: 10n }),
    event('AccountClosed'),
  ]);
  assert.deepEqual(scenario.stateJson(), { balance: 0n, open: false, closed: true });
});

test('every event is written at schema version 1', () => {
  const opened = event('AccountOpened', { initial_balance: 0n });
  const cases = [
    [[], ['OpenAccount', { initial_balance: 7n }], stored('AccountOpened', 1, { initial_balance: 7n })],
    [[opened], ['Deposit', { amount: 3n }], stored('MoneyDeposited', 1, { amount: 3n })],
    [[opened, event('MoneyDeposited', { amount: 3n })], ['Withdraw', { amount: 3n }], stored('MoneyWithdrawn', 1, { amount: 3n })],
    [[opened], ['CloseAccount', {}], stored('AccountClosed', 1, {})],
  ];
  for (const [history, [name, data], written] of cases) {
    given(bankAccount, history).when(name, data).thenRawEvents([written]);
  }
});

test('a balance beyond 2^53 stays exact', () => {
  const state = given(bankAccount, [event('AccountOpened', { initial_balance: 9007199254740993n })])
    .when('Withdraw', { amount: 1n })
    .thenEvents([event('MoneyWithdrawn', { amount: 1n })]);
  assert.equal(state.balance, 9007199254740992n);
});

test('a fold that would overflow the balance is a bug, not an answer', () => {
  const history = [event('AccountOpened', { initial_balance: 2n ** 63n - 1n }), event('MoneyDeposited', { amount: 1n })];
  assert.throws(() => given(bankAccount, history), /overflows i64/);
});
