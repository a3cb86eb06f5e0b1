"""Every rule and rejection code of bank-account v1, as given/when/then."""

import pytest
from bank_account import (
    AccountClosed,
    AccountOpened,
    BankAccount,
    CloseAccount,
    Deposit,
    MoneyDeposited,
    MoneyWithdrawn,
    OpenAccount,
    Withdraw,
    account,
)
from tally_sdk.schema import I64_MAX, I64_MIN
from tally_sdk.testing import given


def opened(initial_balance: int) -> AccountOpened:
    return AccountOpened(initial_balance=initial_balance)


def test_opening_a_new_account_records_its_initial_balance():
    state = given(account).when(OpenAccount(initial_balance=100)).then_events([opened(100)])
    assert state == BankAccount(balance=100, open=True, closed=False)


def test_an_account_may_open_empty():
    given(account).when(OpenAccount(initial_balance=0)).then_events([opened(0)])


def test_opening_with_a_negative_balance_is_an_invalid_amount():
    given(account).when(OpenAccount(initial_balance=-1)).then_rejects("invalid-amount")


def test_opening_twice_is_refused():
    given(account, [opened(5)]).when(OpenAccount(initial_balance=5)).then_rejects(
        "account-already-open"
    )


def test_a_closed_account_cannot_be_reopened():
    given(account, [opened(0), AccountClosed()]).when(OpenAccount(initial_balance=0)).then_rejects(
        "account-closed"
    )


def test_depositing_adds_to_the_balance():
    state = (
        given(account, [opened(100)])
        .when(Deposit(amount=50))
        .then_events([MoneyDeposited(amount=50)])
    )
    assert state.balance == 150


@pytest.mark.parametrize("amount", [0, -10, I64_MIN])
def test_depositing_zero_or_less_is_an_invalid_amount(amount):
    given(account, [opened(100)]).when(Deposit(amount=amount)).then_rejects("invalid-amount")


def test_a_deposit_that_would_overflow_the_balance_is_an_invalid_amount():
    rejection = (
        given(account, [opened(I64_MAX - 1)]).when(Deposit(amount=2)).then_rejects("invalid-amount")
    )
    assert "overflow" in rejection.message


def test_a_deposit_up_to_the_largest_balance_is_accepted():
    state = (
        given(account, [opened(I64_MAX - 1)])
        .when(Deposit(amount=1))
        .then_events([MoneyDeposited(amount=1)])
    )
    assert state.balance == I64_MAX


def test_withdrawing_takes_from_the_balance():
    state = (
        given(account, [opened(100), MoneyDeposited(amount=50)])
        .when(Withdraw(amount=150))
        .then_events([MoneyWithdrawn(amount=150)])
    )
    assert state.balance == 0


def test_withdrawing_more_than_the_balance_is_insufficient_funds():
    rejection = (
        given(account, [opened(100), MoneyWithdrawn(amount=30)])
        .when(Withdraw(amount=71))
        .then_rejects("insufficient-funds")
    )
    assert "70" in rejection.message


@pytest.mark.parametrize("amount", [0, -1, I64_MIN])
def test_withdrawing_zero_or_less_is_an_invalid_amount(amount):
    given(account, [opened(100)]).when(Withdraw(amount=amount)).then_rejects("invalid-amount")


@pytest.mark.parametrize("command", [Deposit(amount=1), Withdraw(amount=1), CloseAccount()])
def test_commands_before_opening_are_refused(command):
    given(account).when(command).then_rejects("account-not-open")


@pytest.mark.parametrize("command", [Deposit(amount=1), Withdraw(amount=1), CloseAccount()])
def test_commands_after_closing_are_refused(command):
    history = [opened(10), MoneyWithdrawn(amount=10), AccountClosed()]
    given(account, history).when(command).then_rejects("account-closed")


def test_closing_an_empty_account_closes_it():
    state = (
        given(account, [opened(10), MoneyWithdrawn(amount=10)])
        .when(CloseAccount())
        .then_events([AccountClosed()])
    )
    assert state == BankAccount(balance=0, open=False, closed=True)


def test_closing_an_account_holding_money_is_refused():
    given(account, [opened(1)]).when(CloseAccount()).then_rejects("balance-not-zero")


def test_a_malformed_command_is_invalid_command_before_any_rule():
    given(account).when_raw("Deposit", '{"amount": "5"}').then_rejects("invalid-command")
    given(account, [opened(1)]).when_raw("Deposit", '{"amount": 5.0}').then_rejects(
        "invalid-command"
    )
