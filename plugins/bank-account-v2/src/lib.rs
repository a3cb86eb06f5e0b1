//! The bank-account aggregate, version 2: accounts have a currency, and a single
//! withdrawal is capped.
//!
//! Changes from v1 (1.0.0):
//! - `OpenAccount` takes an optional ISO 4217 `currency` (default `USD`);
//!   an unknown code is refused with `invalid-currency`.
//! - `AccountOpened` is at schema version 2 and carries `currency`; stored v1
//!   `AccountOpened` events are upcast to v2 with currency `USD`.
//! - A single withdrawal above 10,000.00 (1,000,000 minor units) is refused with
//!   `withdrawal-limit-exceeded` (checked before the balance).
//! - The state JSON adds `currency` (`null` until the account is opened).
//!
//! Every v1 rejection code still applies: `account-already-open`,
//! `account-not-open`, `account-closed`, `invalid-amount`, `insufficient-funds`,
//! `balance-not-zero`, and `invalid-command` from the SDK.

mod currency;

use serde::{Deserialize, Serialize};
use tally_sdk::serde_json::Value;
use tally_sdk::{Aggregate, Context, Rejection, Upcaster};

/// The largest single withdrawal, in minor units: 10,000.00.
pub const WITHDRAWAL_LIMIT: i64 = 1_000_000;

/// The currency of an account opened without one.
pub const DEFAULT_CURRENCY: &str = "USD";

/// What a client can ask of an account. Amounts are integer minor units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// Opens the account with a starting balance (zero or more).
    OpenAccount {
        /// Starting balance.
        initial_balance: i64,
        /// ISO 4217 code such as `EUR`; `USD` when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        currency: Option<String>,
    },
    /// Adds money.
    Deposit {
        /// Amount to add, above zero.
        amount: i64,
    },
    /// Takes money out: at most the balance and at most [`WITHDRAWAL_LIMIT`].
    Withdraw {
        /// Amount to take, above zero.
        amount: i64,
    },
    /// Closes an empty account for good.
    CloseAccount,
}

/// What happened to an account. `AccountOpened` is at schema version 2, the others
/// at version 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Event {
    /// The account was opened.
    AccountOpened {
        /// Starting balance.
        initial_balance: i64,
        /// ISO 4217 code of the account's currency.
        currency: String,
    },
    /// Money was added.
    MoneyDeposited {
        /// Amount added.
        amount: i64,
    },
    /// Money was taken out.
    MoneyWithdrawn {
        /// Amount taken.
        amount: i64,
    },
    /// The account was closed.
    AccountClosed,
}

/// The state of one account; also its state JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BankAccount {
    /// Balance in minor units.
    pub balance: i64,
    /// Opened and not closed.
    pub open: bool,
    /// Closed (and so no longer open).
    pub closed: bool,
    /// ISO 4217 code, once opened.
    pub currency: Option<String>,
}

impl BankAccount {
    /// Refuses unless the account is open.
    fn require_open(&self) -> Result<(), Rejection> {
        if self.closed {
            return Err(Rejection::new("account-closed", "the account is closed"));
        }
        if !self.open {
            return Err(Rejection::new(
                "account-not-open",
                "the account has not been opened",
            ));
        }
        Ok(())
    }
}

/// Refuses amounts that are zero or negative.
fn require_positive(amount: i64) -> Result<(), Rejection> {
    if amount <= 0 {
        return Err(Rejection::new(
            "invalid-amount",
            format!("amount must be above zero, got {amount}"),
        ));
    }
    Ok(())
}

/// Upcasts `AccountOpened` v1 (`{initial_balance}`) to v2: accounts opened before
/// currencies existed were in US dollars.
fn account_opened_v1_to_v2(mut data: Value) -> Result<Value, String> {
    let fields = data
        .as_object_mut()
        .ok_or("AccountOpened v1 data is not a JSON object")?;
    fields.insert("currency".to_owned(), Value::from(DEFAULT_CURRENCY));
    Ok(data)
}

impl Aggregate for BankAccount {
    type Command = Command;
    type Event = Event;

    const AGGREGATE_TYPE: &'static str = "bank-account";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "A bank account in one currency: open, deposit, withdraw (capped per withdrawal), close; never below zero.";
    const EVENT_VERSIONS: &'static [(&'static str, u32)] = &[("AccountOpened", 2)];
    const UPCASTERS: &'static [Upcaster] =
        &[Upcaster::next("AccountOpened", 1, account_opened_v1_to_v2)];

    fn handle(&self, _ctx: &Context, command: Command) -> Result<Vec<Event>, Rejection> {
        match command {
            Command::OpenAccount {
                initial_balance,
                currency,
            } => {
                if self.closed {
                    return Err(Rejection::new(
                        "account-closed",
                        "a closed account cannot be reopened",
                    ));
                }
                if self.open {
                    return Err(Rejection::new(
                        "account-already-open",
                        "the account is already open",
                    ));
                }
                if initial_balance < 0 {
                    let message =
                        format!("initial balance must not be negative, got {initial_balance}");
                    return Err(Rejection::new("invalid-amount", message));
                }
                let currency = currency.unwrap_or_else(|| DEFAULT_CURRENCY.to_owned());
                if !currency::is_iso_4217(&currency) {
                    let message = format!("{currency:?} is not an ISO 4217 currency code");
                    return Err(Rejection::new("invalid-currency", message));
                }
                Ok(vec![Event::AccountOpened {
                    initial_balance,
                    currency,
                }])
            }
            Command::Deposit { amount } => {
                self.require_open()?;
                require_positive(amount)?;
                if self.balance.checked_add(amount).is_none() {
                    let message = format!(
                        "depositing {amount} would overflow the balance {}",
                        self.balance
                    );
                    return Err(Rejection::new("invalid-amount", message));
                }
                Ok(vec![Event::MoneyDeposited { amount }])
            }
            Command::Withdraw { amount } => {
                self.require_open()?;
                require_positive(amount)?;
                if amount > WITHDRAWAL_LIMIT {
                    let message = format!(
                        "a single withdrawal is limited to {WITHDRAWAL_LIMIT}, got {amount}"
                    );
                    return Err(Rejection::new("withdrawal-limit-exceeded", message));
                }
                if amount > self.balance {
                    let message =
                        format!("cannot withdraw {amount}: the balance is {}", self.balance);
                    return Err(Rejection::new("insufficient-funds", message));
                }
                Ok(vec![Event::MoneyWithdrawn { amount }])
            }
            Command::CloseAccount => {
                self.require_open()?;
                if self.balance != 0 {
                    let message = format!(
                        "the balance is {}; withdraw it before closing",
                        self.balance
                    );
                    return Err(Rejection::new("balance-not-zero", message));
                }
                Ok(vec![Event::AccountClosed])
            }
        }
    }

    fn apply(&mut self, event: Event) {
        match event {
            Event::AccountOpened {
                initial_balance,
                currency,
            } => {
                self.open = true;
                self.balance = initial_balance;
                self.currency = Some(currency);
            }
            Event::MoneyDeposited { amount } => {
                self.balance = self
                    .balance
                    .checked_add(amount)
                    .expect("handle refuses deposits that overflow");
            }
            Event::MoneyWithdrawn { amount } => {
                self.balance = self
                    .balance
                    .checked_sub(amount)
                    .expect("handle refuses withdrawals that overflow");
            }
            Event::AccountClosed => {
                self.open = false;
                self.closed = true;
            }
        }
    }
}

tally_sdk::export!(BankAccount);
