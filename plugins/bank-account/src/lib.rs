//! The bank-account aggregate, version 1: Tally's reference plugin.
//!
//! An account is opened once with a non-negative balance, takes deposits and
//! withdrawals of positive amounts in integer minor units, never goes below zero,
//! and can be closed only when empty. Each refusal has a stable rejection code:
//!
//! | code                   | when                                                      |
//! |------------------------|-----------------------------------------------------------|
//! | `account-already-open` | `OpenAccount` on an open account                          |
//! | `account-not-open`     | any other command before `OpenAccount`                    |
//! | `account-closed`       | any command after `CloseAccount`                          |
//! | `invalid-amount`       | amount <= 0, negative initial balance, or balance overflow |
//! | `insufficient-funds`   | `Withdraw` of more than the balance                       |
//! | `balance-not-zero`     | `CloseAccount` while money remains                        |
//! | `invalid-command`      | unknown command or malformed data (from the SDK)          |

use serde::{Deserialize, Serialize};
use tally_sdk::{Aggregate, Context, Rejection};

/// What a client can ask of an account. Amounts are integer minor units (cents).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// Opens the account with a starting balance (zero or more).
    OpenAccount {
        /// Starting balance.
        initial_balance: i64,
    },
    /// Adds money.
    Deposit {
        /// Amount to add, above zero.
        amount: i64,
    },
    /// Takes money out, at most the balance.
    Withdraw {
        /// Amount to take, above zero.
        amount: i64,
    },
    /// Closes an empty account for good.
    CloseAccount,
}

/// What happened to an account. All at schema version 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Event {
    /// The account was opened.
    AccountOpened {
        /// Starting balance.
        initial_balance: i64,
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

impl Aggregate for BankAccount {
    type Command = Command;
    type Event = Event;

    const AGGREGATE_TYPE: &'static str = "bank-account";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "A bank account: open, deposit, withdraw, close; never below zero.";

    fn handle(&self, _ctx: &Context, command: Command) -> Result<Vec<Event>, Rejection> {
        match command {
            Command::OpenAccount { initial_balance } => {
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
                Ok(vec![Event::AccountOpened { initial_balance }])
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
            Event::AccountOpened { initial_balance } => {
                self.open = true;
                self.balance = initial_balance;
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
