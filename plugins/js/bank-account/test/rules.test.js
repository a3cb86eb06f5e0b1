// Every rule and rejection code of bank-account v1, as given/when/then.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { event } from '@tally/sdk';
import { given } from '@tally/sdk/testing';

import { bankAccount } from '../src/index.js';

const I64_MAX = 2n ** 63n - 1n;
const I64_MIN = -(2n ** 63n);

const opened = (initial_balance) => event('AccountOpened', { initial_balance });
const deposited = (amount) => event('MoneyDeposited', { amount });
const withdrawn = (amount) => event('MoneyWithdrawn', { amount });
const closed = event('AccountClosed');

test('opening a new account records its initial balance', () => {
  const state = given(bankAccount, [])
    .when('OpenAccount', { initial_balance: 100n })
    .thenEvents([opened(100n)]);
  assert.deepEqual(state, { balance: 100n, open: true, closed: false });
});

test('an account may open empty', () => {
  given(bankAccount, []).when('OpenAccount', { initial_balance: 0n }).thenEvents([opened(0n)]);
});

test('opening with a negative balance is an invalid amount', () => {
  given(bankAccount, []).when('OpenAccount', { initial_balance: -1n }).thenRejects('invalid-amount');
});

test('opening twice is refused', () => {
  given(bankAccount, [opened(5n)])
    .when('OpenAccount', { initial_balance: 5n })
    .thenRejects('account-already-open');
});

test('a closed account cannot be reopened', () => {
  given(bankAccount, [opened(0n), closed])
    .when('OpenAccount', { initial_balance: 0n })
    .thenRejects('account-closed');
});

test('depositing adds to the balance', () => {
  const state = given(bankAccount, [opened(100n)])
    .when('Deposit', { amount: 50n })
    .thenEvents([deposited(50n)]);
  assert.equal(state.balance, 150n);
});

test('depositing zero or less is an invalid amount', () => {
  for (const amount of [0n, -10n, I64_MIN]) {
    given(bankAccount, [opened(100n)]).when('Deposit', { amount }).thenRejects('invalid-amount');
  }
});

test('a deposit that would overflow the balance is an invalid amount', () => {
  const rejection = given(bankAccount, [opened(I64_MAX - 1n)])
    .when('Deposit', { amount: 2n })
    .thenRejects('invalid-amount');
  assert.match(rejection.message, /overflow/);
});

test('a deposit up to the largest balance is accepted', () => {
  const state = given(bankAccount, [opened(I64_MAX - 1n)])
    .when('Deposit', { amount: 1n })
    .thenEvents([deposited(1n)]);
  assert.equal(state.balance, I64_MAX);
});

test('withdrawing takes from the balance', () => {
  const state = given(bankAccount, [opened(100n), deposited(50n)])
    .when('Withdraw', { amount: 150n })
    .thenEvents([withdrawn(150n)]);
  assert.equal(state.balance, 0n);
});

test('withdrawing more than the balance is insufficient funds', () => {
  const rejection = given(bankAccount, [opened(100n), withdrawn(30n)])
    .when('Withdraw', { amount: 71n })
    .thenRejects('insufficient-funds');
  assert.match(rejection.message, /70/);
});

test('withdrawing zero or less is an invalid amount', () => {
  for (const amount of [0n, -1n, I64_MIN]) {
    given(bankAccount, [opened(100n)]).when('Withdraw', { amount }).thenRejects('invalid-amount');
  }
});

test('commands before opening are refused', () => {
  for (const [name, data] of [['Deposit', { amount: 1n }], ['Withdraw', { amount: 1n }], ['CloseAccount', {}]]) {
    given(bankAccount, []).when(name, data).thenRejects('account-not-open');
  }
});

test('commands after closing are refused', () => {
  for (const [name, data] of [['Deposit', { amount: 1n }], ['Withdraw', { amount: 1n }], ['CloseAccount', {}]]) {
    given(bankAccount, [opened(10n), withdrawn(10n), closed]).when(name, data).thenRejects('account-closed');
  }
});

test('closing an empty account closes it', () => {
  const state = given(bankAccount, [opened(10n), withdrawn(10n)]).when('CloseAccount').thenEvents([closed]);
  assert.deepEqual(state, { balance: 0n, open: false, closed: true });
});

test('closing an account holding money is refused', () => {
  given(bankAccount, [opened(1n)]).when('CloseAccount').thenRejects('balance-not-zero');
});

test('a malformed command is an invalid command before any rule', () => {
  given(bankAccount, []).whenRaw('Deposit', '{"amount": "5"}').thenRejects('invalid-command');
});
