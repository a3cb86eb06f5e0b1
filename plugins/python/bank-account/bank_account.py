"""The bank-account aggregate, version 1, in Python: the same plugin as
`plugins/bank-account` (Rust), answering every command the same way.

An account is opened once with a non-negative balance, takes deposits and
withdrawals of positive amounts in integer minor units, never goes below zero, and
can be closed only when empty. Each refusal has a stable rejection code:

| code                   | when                                                       |
|------------------------|------------------------------------------------------------|
| `account-already-open` | `OpenAccount` on an open account                           |
| `account-not-open`     | any other command before `OpenAccount`                     |
| `account-closed`       | any command after `CloseAccount`                           |
| `invalid-amount`       | amount <= 0, negative initial balance, or balance overflow |
| `insufficient-funds`   | `Withdraw` of more than the balance                        |
| `balance-not-zero`     | `CloseAccount` while money remains                         |
| `invalid-command`      | unknown command or malformed data (from the SDK)           |
"""

from dataclasses import dataclass, replace

from tally_sdk import Aggregate, Rejection
from tally_sdk.schema import I64_MAX


@dataclass(frozen=True)
class BankAccount:
    """The state of one account; also its state JSON."""

    balance: int = 0  # minor units
    open: bool = False  # opened and not closed
    closed: bool = False  # closed, and so no longer open


# Commands. Amounts are integer minor units (cents).


@dataclass(frozen=True)
class OpenAccount:
    """Opens the account with a starting balance (zero or more)."""

    initial_balance: int


@dataclass(frozen=True)
class Deposit:
    """Adds money: an amount above zero."""

    amount: int


@dataclass(frozen=True)
class Withdraw:
    """Takes money out: an amount above zero, at most the balance."""

    amount: int


@dataclass(frozen=True)
class CloseAccount:
    """Closes an empty account for good."""


# Events, all at schema version 1.


@dataclass(frozen=True)
class AccountOpened:
    initial_balance: int


@dataclass(frozen=True)
class MoneyDeposited:
    amount: int


@dataclass(frozen=True)
class MoneyWithdrawn:
    amount: int


@dataclass(frozen=True)
class AccountClosed:
    pass


account = Aggregate(
    "bank-account",
    version="1.0.0",
    description="A bank account: open, deposit, withdraw, close; never below zero.",
    state=BankAccount,
)


def require_open(state: BankAccount) -> None:
    """Refuses unless the account is open."""
    if state.closed:
        raise Rejection("account-closed", "the account is closed")
    if not state.open:
        raise Rejection("account-not-open", "the account has not been opened")


def require_positive(amount: int) -> None:
    """Refuses amounts that are zero or negative."""
    if amount <= 0:
        raise Rejection("invalid-amount", f"amount must be above zero, got {amount}")


@account.handles(OpenAccount)
def open_account(state: BankAccount, command: OpenAccount) -> AccountOpened:
    if state.closed:
        raise Rejection("account-closed", "a closed account cannot be reopened")
    if state.open:
        raise Rejection("account-already-open", "the account is already open")
    if command.initial_balance < 0:
        message = f"initial balance must not be negative, got {command.initial_balance}"
        raise Rejection("invalid-amount", message)
    return AccountOpened(initial_balance=command.initial_balance)


@account.handles(Deposit)
def deposit(state: BankAccount, command: Deposit) -> MoneyDeposited:
    require_open(state)
    require_positive(command.amount)
    if state.balance + command.amount > I64_MAX:
        message = f"depositing {command.amount} would overflow the balance {state.balance}"
        raise Rejection("invalid-amount", message)
    return MoneyDeposited(amount=command.amount)


@account.handles(Withdraw)
def withdraw(state: BankAccount, command: Withdraw) -> MoneyWithdrawn:
    require_open(state)
    require_positive(command.amount)
    if command.amount > state.balance:
        message = f"cannot withdraw {command.amount}: the balance is {state.balance}"
        raise Rejection("insufficient-funds", message)
    return MoneyWithdrawn(amount=command.amount)


@account.handles(CloseAccount)
def close_account(state: BankAccount, command: CloseAccount) -> AccountClosed:
    require_open(state)
    if state.balance != 0:
        message = f"the balance is {state.balance}; withdraw it before closing"
        raise Rejection("balance-not-zero", message)
    return AccountClosed()


@account.applies(AccountOpened)
def account_opened(state: BankAccount, event: AccountOpened) -> BankAccount:
    return replace(state, open=True, balance=event.initial_balance)


@account.applies(MoneyDeposited)
def money_deposited(state: BankAccount, event: MoneyDeposited) -> BankAccount:
    return replace(state, balance=state.balance + event.amount)


@account.applies(MoneyWithdrawn)
def money_withdrawn(state: BankAccount, event: MoneyWithdrawn) -> BankAccount:
    return replace(state, balance=state.balance - event.amount)


@account.applies(AccountClosed)
def account_closed(state: BankAccount, event: AccountClosed) -> BankAccount:
    return replace(state, open=False, closed=True)
