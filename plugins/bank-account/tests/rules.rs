//! Every rule and rejection code of bank-account v1, as given/when/then.

use bank_account::{BankAccount, Command, Event};
use tally_sdk::testing::given;

fn opened(initial_balance: i64) -> Event {
    Event::AccountOpened { initial_balance }
}

#[test]
fn opening_a_new_account_records_its_initial_balance() {
    let state = given::<BankAccount>([])
        .when(Command::OpenAccount {
            initial_balance: 100,
        })
        .then_events([opened(100)]);
    assert_eq!(
        state,
        BankAccount {
            balance: 100,
            open: true,
            closed: false
        }
    );
}

#[test]
fn an_account_may_open_empty() {
    given::<BankAccount>([])
        .when(Command::OpenAccount { initial_balance: 0 })
        .then_events([opened(0)]);
}

#[test]
fn opening_with_a_negative_balance_is_an_invalid_amount() {
    given::<BankAccount>([])
        .when(Command::OpenAccount {
            initial_balance: -1,
        })
        .then_rejects("invalid-amount");
}

#[test]
fn opening_twice_is_refused() {
    given::<BankAccount>([opened(5)])
        .when(Command::OpenAccount { initial_balance: 5 })
        .then_rejects("account-already-open");
}

#[test]
fn a_closed_account_cannot_be_reopened() {
    given::<BankAccount>([opened(0), Event::AccountClosed])
        .when(Command::OpenAccount { initial_balance: 0 })
        .then_rejects("account-closed");
}

#[test]
fn depositing_adds_to_the_balance() {
    let state = given::<BankAccount>([opened(100)])
        .when(Command::Deposit { amount: 50 })
        .then_events([Event::MoneyDeposited { amount: 50 }]);
    assert_eq!(state.balance, 150);
}

#[test]
fn depositing_zero_or_less_is_an_invalid_amount() {
    for amount in [0, -10, i64::MIN] {
        given::<BankAccount>([opened(100)])
            .when(Command::Deposit { amount })
            .then_rejects("invalid-amount");
    }
}

#[test]
fn a_deposit_that_would_overflow_the_balance_is_an_invalid_amount() {
    let rejection = given::<BankAccount>([opened(i64::MAX - 1)])
        .when(Command::Deposit { amount: 2 })
        .then_rejects("invalid-amount");
    assert!(
        rejection.message.contains("overflow"),
        "{}",
        rejection.message
    );
}

#[test]
fn a_deposit_up_to_the_largest_balance_is_accepted() {
    let state = given::<BankAccount>([opened(i64::MAX - 1)])
        .when(Command::Deposit { amount: 1 })
        .then_events([Event::MoneyDeposited { amount: 1 }]);
    assert_eq!(state.balance, i64::MAX);
}

#[test]
fn withdrawing_takes_from_the_balance() {
    let state = given::<BankAccount>([opened(100), Event::MoneyDeposited { amount: 50 }])
        .when(Command::Withdraw { amount: 150 })
        .then_events([Event::MoneyWithdrawn { amount: 150 }]);
    assert_eq!(state.balance, 0);
}

#[test]
fn withdrawing_more_than_the_balance_is_insufficient_funds() {
    let rejection = given::<BankAccount>([opened(100), Event::MoneyWithdrawn { amount: 30 }])
        .when(Command::Withdraw { amount: 71 })
        .then_rejects("insufficient-funds");
    assert!(rejection.message.contains("70"), "{}", rejection.message);
}

#[test]
fn withdrawing_zero_or_less_is_an_invalid_amount() {
    for amount in [0, -1, i64::MIN] {
        given::<BankAccount>([opened(100)])
            .when(Command::Withdraw { amount })
            .then_rejects("invalid-amount");
    }
}

#[test]
fn commands_before_opening_are_refused() {
    for command in [
        Command::Deposit { amount: 1 },
        Command::Withdraw { amount: 1 },
        Command::CloseAccount,
    ] {
        given::<BankAccount>([])
            .when(command)
            .then_rejects("account-not-open");
    }
}

#[test]
fn commands_after_closing_are_refused() {
    for command in [
        Command::Deposit { amount: 1 },
        Command::Withdraw { amount: 1 },
        Command::CloseAccount,
    ] {
        given::<BankAccount>([
            opened(10),
            Event::MoneyWithdrawn { amount: 10 },
            Event::AccountClosed,
        ])
        .when(command)
        .then_rejects("account-closed");
    }
}

#[test]
fn closing_an_empty_account_closes_it() {
    let state = given::<BankAccount>([opened(10), Event::MoneyWithdrawn { amount: 10 }])
        .when(Command::CloseAccount)
        .then_events([Event::AccountClosed]);
    assert_eq!(
        state,
        BankAccount {
            balance: 0,
            open: false,
            closed: true
        }
    );
}

#[test]
fn closing_an_account_holding_money_is_refused() {
    given::<BankAccount>([opened(1)])
        .when(Command::CloseAccount)
        .then_rejects("balance-not-zero");
}
