// The bank-account aggregate, version 1, in JavaScript: the same plugin as
// plugins/bank-account (Rust), answering exactly as it does.
//
// An account is opened once with a non-negative balance, takes deposits and
// withdrawals of positive amounts in integer minor units, never goes below zero,
// and can be closed only when empty. Each refusal has a stable rejection code:
//
// | code                   | when                                                       |
// |------------------------|------------------------------------------------------------|
// | `account-already-open` | `OpenAccount` on an open account                           |
// | `account-not-open`     | any other command before `OpenAccount`                     |
// | `account-closed`       | any command after `CloseAccount`                           |
// | `invalid-amount`       | amount <= 0, negative initial balance, or balance overflow |
// | `insufficient-funds`   | `Withdraw` of more than the balance                        |
// | `balance-not-zero`     | `CloseAccount` while money remains                         |
// | `invalid-command`      | unknown command or malformed data (from the SDK)           |

import { Rejection, bool, defineAggregate, event, exportAggregate, int } from '@tally/sdk';

const I64_MAX = 2n ** 63n - 1n;

/** Refuses unless the account is open. */
function requireOpen(account) {
  if (account.closed) throw new Rejection('account-closed', 'the account is closed');
  if (!account.open) throw new Rejection('account-not-open', 'the account has not been opened');
}

/** Refuses amounts that are zero or negative. */
function requirePositive(amount) {
  if (amount <= 0n) throw new Rejection('invalid-amount', `amount must be above zero, got ${amount}`);
}

function openAccount(account, { initial_balance }) {
  if (account.closed) throw new Rejection('account-closed', 'a closed account cannot be reopened');
  if (account.open) throw new Rejection('account-already-open', 'the account is already open');
  if (initial_balance < 0n) {
    throw new Rejection('invalid-amount', `initial balance must not be negative, got ${initial_balance}`);
  }
  return [event('AccountOpened', { initial_balance })];
}

function deposit(account, { amount }) {
  requireOpen(account);
  requirePositive(amount);
  if (account.balance + amount > I64_MAX) {
    throw new Rejection('invalid-amount', `depositing ${amount} would overflow the balance ${account.balance}`);
  }
  return [event('MoneyDeposited', { amount })];
}

function withdraw(account, { amount }) {
  requireOpen(account);
  requirePositive(amount);
  if (amount > account.balance) {
    throw new Rejection('insufficient-funds', `cannot withdraw ${amount}: the balance is ${account.balance}`);
  }
  return [event('MoneyWithdrawn', { amount })];
}

function closeAccount(account) {
  requireOpen(account);
  if (account.balance !== 0n) {
    throw new Rejection('balance-not-zero', `the balance is ${account.balance}; withdraw it before closing`);
  }
  return [event('AccountClosed')];
}

export const bankAccount = defineAggregate({
  type: 'bank-account',
  version: '1.0.0',
  description: 'A bank account: open, deposit, withdraw, close; never below zero.',
  // Balance in minor units; open: opened and not closed; closed: for good.
  state: { balance: int, open: bool, closed: bool },
  initialState: { balance: 0n, open: false, closed: false },
  commands: {
    OpenAccount: { fields: { initial_balance: int }, handle: openAccount },
    Deposit: { fields: { amount: int }, handle: deposit },
    Withdraw: { fields: { amount: int }, handle: withdraw },
    CloseAccount: { handle: closeAccount },
  },
  events: {
    AccountOpened: {
      fields: { initial_balance: int },
      apply: (account, { initial_balance }) => ({ ...account, open: true, balance: initial_balance }),
    },
    MoneyDeposited: {
      fields: { amount: int },
      apply: (account, { amount }) => ({ ...account, balance: checkedBalance(account.balance + amount) }),
    },
    MoneyWithdrawn: {
      fields: { amount: int },
      apply: (account, { amount }) => ({ ...account, balance: checkedBalance(account.balance - amount) }),
    },
    AccountClosed: {
      apply: (account) => ({ ...account, open: false, closed: true }),
    },
  },
});

/** A balance within i64; handle refuses what would leave it, so beyond is a bug. */
function checkedBalance(balance) {
  if (balance > I64_MAX || balance < -I64_MAX - 1n) {
    throw new RangeError(`the balance ${balance} overflows i64; handle refuses such events`);
  }
  return balance;
}

export default bankAccount;

/** The component's export: what `tally:aggregate` calls. */
export const aggregate = exportAggregate(bankAccount);
