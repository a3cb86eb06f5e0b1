"""What bank-account v1 shows the host besides its rules: what `describe` says, its
state JSON and the schema version of each event it writes. (How the SDK encodes,
decodes and upcasts is tested in the SDK.)"""

import pytest
from bank_account import (
    AccountClosed,
    AccountOpened,
    CloseAccount,
    Deposit,
    MoneyDeposited,
    MoneyWithdrawn,
    OpenAccount,
    Withdraw,
    account,
)
from tally_sdk import Context, wire
from tally_sdk.testing import given, stored


def test_describe_says_what_the_rust_plugin_says():
    info = wire.describe(account)
    assert info.aggregate_type == "bank-account"
    assert info.version == "1.0.0"
    assert info.description == "A bank account: open, deposit, withdraw, close; never below zero."
    assert info.commands == ["OpenAccount", "Deposit", "Withdraw", "CloseAccount"]
    assert info.events == [
        ("AccountOpened", 1),
        ("MoneyDeposited", 1),
        ("MoneyWithdrawn", 1),
        ("AccountClosed", 1),
    ]


def test_the_initial_state_is_an_unopened_empty_account():
    assert given(account).state_json() == {"balance": 0, "open": False, "closed": False}
    assert wire.initial_state(account) == b'{"balance":0,"open":false,"closed":false}'


def test_state_json_shows_balance_open_and_closed():
    scenario = given(account, [AccountOpened(100), MoneyDeposited(25), MoneyWithdrawn(5)])
    assert scenario.state_json() == {"balance": 120, "open": True, "closed": False}


def test_a_closed_account_shows_as_closed_and_not_open():
    scenario = given(account, [AccountOpened(10), MoneyWithdrawn(10), AccountClosed()])
    assert scenario.state_json() == {"balance": 0, "open": False, "closed": True}


@pytest.mark.parametrize(
    "history, command, written",
    [
        ([], OpenAccount(initial_balance=7), stored("AccountOpened", 1, {"initial_balance": 7})),
        ([AccountOpened(0)], Deposit(amount=3), stored("MoneyDeposited", 1, {"amount": 3})),
        (
            [AccountOpened(0), MoneyDeposited(3)],
            Withdraw(amount=3),
            stored("MoneyWithdrawn", 1, {"amount": 3}),
        ),
        ([AccountOpened(0)], CloseAccount(), stored("AccountClosed", 1, {})),
    ],
)
def test_every_event_is_written_at_schema_version_1(history, command, written):
    given(account, history).when(command).then_raw_events([written])


def test_events_are_written_as_the_rust_plugin_writes_them():
    events = wire.handle(
        account,
        Context(),
        wire.initial_state(account),
        wire.RawCommand("OpenAccount", b'{"initial_balance": 9007199254740993}'),
    )
    assert events == [wire.RawEvent("AccountOpened", 1, b'{"initial_balance":9007199254740993}')]
