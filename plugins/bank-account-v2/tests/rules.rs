//! Every rule and rejection code of bank-account v2, as given/when/then.

use bank_account_v2::{BankAccount, Command, Event, WITHDRAWAL_LIMIT};
use tally_sdk::serde_json::json;
use tally_sdk::testing::{given, stored};

fn opened(initial_balance: i64) -> Event {
    Event::AccountOpened {
        initial_balance,
        currency: "USD".to_owned(),
    }
}

fn open(initial_balance: i64, currency: Option<&str>) -> Command {
    Command::OpenAccount {
        initial_balance,
        currency: currency.map(str::to_owned),
    }
}

#[test]
fn opening_without_a_currency_opens_in_us_dollars() {
    let state = given::<BankAccount>([])
        .when(open(100, None))
        .then_events([opened(100)]);
    let expected = BankAccount {
        balance: 100,
        open: true,
        closed: false,
        currency: Some("USD".to_owned()),
    };
    assert_eq!(state, expected);
}

#[test]
fn opening_with_a_null_currency_opens_in_us_dollars() {
    given::<BankAccount>([])
        .when_raw("OpenAccount", r#"{"initial_balance": 0, "currency": null}"#)
        .then_raw_events([stored(
            "AccountOpened",
            2,
            json!({"initial_balance": 0, "currency": "USD"}),
        )]);
}

#[test]
fn opening_in_a_currency_records_it() {
    let state = given::<BankAccount>([])
        .when(open(0, Some("EUR")))
        .then_events([Event::AccountOpened {
            initial_balance: 0,
            currency: "EUR".to_owned(),
        }]);
    assert_eq!(state.currency.as_deref(), Some("EUR"));
}

#[test]
fn opening_with_an_unknown_currency_is_an_invalid_currency() {
    for code in ["usd", "EURO", "XYZ", ""] {
        let rejection = given::<BankAccount>([])
            .when(open(0, Some(code)))
            .then_rejects("invalid-currency");
        assert!(
            rejection.message.contains("ISO 4217"),
            "{}",
            rejection.message
        );
    }
}

#[test]
fn opening_with_a_negative_balance_is_an_invalid_amount() {
    given::<BankAccount>([])
        .when(open(-1, Some("EUR")))
        .then_rejects("invalid-amount");
}

#[test]
fn opening_twice_is_refused() {
    given::<BankAccount>([opened(5)])
        .when(open(5, None))
        .then_rejects("account-already-open");
}

#[test]
fn a_closed_account_cannot_be_reopened() {
    given::<BankAccount>([opened(0), Event::AccountClosed])
        .when(open(0, None))
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
    given::<BankAccount>([opened(i64::MAX)])
        .when(Command::Deposit { amount: 1 })
        .then_rejects("invalid-amount");
}

#[test]
fn withdrawing_takes_from_the_balance() {
    let state = given::<BankAccount>([opened(100)])
        .when(Command::Withdraw { amount: 40 })
        .then_events([Event::MoneyWithdrawn { amount: 40 }]);
    assert_eq!(state.balance, 60);
}

#[test]
fn withdrawing_exactly_the_limit_is_allowed() {
    given::<BankAccount>([opened(WITHDRAWAL_LIMIT)])
        .when(Command::Withdraw { amount: 1_000_000 })
        .then_events([Event::MoneyWithdrawn { amount: 1_000_000 }]);
}

#[test]
fn withdrawing_above_the_limit_is_refused_even_with_the_funds() {
    let rejection = given::<BankAccount>([opened(5_000_000)])
        .when(Command::Withdraw { amount: 1_000_001 })
        .then_rejects("withdrawal-limit-exceeded");
    assert!(
        rejection.message.contains("1000000"),
        "{}",
        rejection.message
    );
}

#[test]
fn the_limit_is_checked_before_the_balance() {
    given::<BankAccount>([opened(0)])
        .when(Command::Withdraw { amount: 2_000_000 })
        .then_rejects("withdrawal-limit-exceeded");
}

#[test]
fn withdrawing_more_than_the_balance_is_insufficient_funds() {
    given::<BankAccount>([opened(100)])
        .when(Command::Withdraw { amount: 101 })
        .then_rejects("insufficient-funds");
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
        given::<BankAccount>([opened(0), Event::AccountClosed])
            .when(command)
            .then_rejects("account-closed");
    }
}

#[test]
fn closing_an_empty_account_closes_it() {
    let state = given::<BankAccount>([opened(10), Event::MoneyWithdrawn { amount: 10 }])
        .when(Command::CloseAccount)
        .then_events([Event::AccountClosed]);
    assert!(state.closed && !state.open);
}

#[test]
fn closing_an_account_holding_money_is_refused() {
    given::<BankAccount>([opened(1)])
        .when(Command::CloseAccount)
        .then_rejects("balance-not-zero");
}
