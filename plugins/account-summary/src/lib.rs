//! The account-summary projection: Tally's reference read model, over the events of
//! the `bank-account` aggregate.
//!
//! Two tables:
//!
//! - `accounts`: one document per account id,
//!   `{"balance": i64, "currency": "USD", "open": bool, "closed": bool,
//!   "last_activity_ms": u64, "last_position": u64}`, the last two from the account's
//!   latest event.
//! - `totals`: the document `all`, `{"accounts_open": n, "balance_by_currency":
//!   {"USD": sum, ...}}`, over every account.
//!
//! It reads bank-account v1 and v2 alike. The host delivers events upcast to the
//! active plugin's current schemas: under v2, `AccountOpened` carries a `currency`
//! (v1 events are upcast with `USD`); under v1 it has none, and the projection takes
//! `USD`, as the v2 upcaster does. A history folded partly under v1 and partly under
//! v2 therefore ends as a history folded under v2 alone.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tally_sdk::{Documents, Envelope, Projection};

/// The table of one document per account.
pub const ACCOUNTS: &str = "accounts";

/// The table of the totals document.
pub const TOTALS: &str = "totals";

/// The key of the one document of [`TOTALS`].
pub const ALL: &str = "all";

/// The currency of an account opened under bank-account v1, which had none.
pub const DEFAULT_CURRENCY: &str = "USD";

/// The bank-account events the projection reads, in bank-account v2's schema; v1's
/// differ only in `AccountOpened`'s missing currency.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub enum Event {
    /// The account was opened.
    AccountOpened {
        /// Starting balance.
        initial_balance: i64,
        /// ISO 4217 code; absent from v1 events.
        #[serde(default = "default_currency")]
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

fn default_currency() -> String {
    DEFAULT_CURRENCY.to_owned()
}

/// A document of the `accounts` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Account {
    /// Balance in minor units of `currency`.
    pub balance: i64,
    /// ISO 4217 code.
    pub currency: String,
    /// Opened and not closed.
    pub open: bool,
    /// Closed (and so no longer open).
    pub closed: bool,
    /// When the account's latest event was stored, milliseconds since the Unix epoch.
    pub last_activity_ms: u64,
    /// Log position of the account's latest event.
    pub last_position: u64,
}

/// The document `all` of the `totals` table.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    /// Accounts opened and not closed.
    pub accounts_open: u64,
    /// Sum of the balances of every account, by currency.
    pub balance_by_currency: BTreeMap<String, i64>,
}

/// The account-summary projection.
pub struct AccountSummary;

impl Projection for AccountSummary {
    type Event = Event;

    const NAME: &'static str = "account-summary";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "Every bank account's balance and state, and the open accounts and balances by currency.";
    const AGGREGATE_TYPES: &'static [&'static str] = &["bank-account"];
    // Listed so that an event a later bank-account adds is not delivered, rather than
    // failing to decode.
    const EVENTS: &'static [&'static str] = &[
        "AccountOpened",
        "MoneyDeposited",
        "MoneyWithdrawn",
        "AccountClosed",
    ];
    const TABLES: &'static [&'static str] = &[ACCOUNTS, TOTALS];

    // Through `modify`, so that the totals (which every event changes) and an account
    // touched by several events of a batch are decoded and encoded once per batch. On
    // an error the batch is discarded whole, so what the closures took is not missed.
    fn apply(envelope: Envelope<Event>, docs: &mut Documents<'_>) -> Result<(), String> {
        let id = envelope.aggregate_id.as_str();
        let mut totals = docs.modify(TOTALS, ALL, |totals: &mut Option<Totals>| {
            totals.take().unwrap_or_default()
        })?;
        docs.modify(ACCOUNTS, id, |account: &mut Option<Account>| {
            let next = next_account(&mut totals, account.take(), envelope.event, id)?;
            *account = Some(Account {
                last_activity_ms: envelope.timestamp_ms,
                last_position: envelope.position,
                ..next
            });
            Ok::<(), String>(())
        })??;
        docs.modify(TOTALS, ALL, |kept: &mut Option<Totals>| {
            *kept = Some(totals)
        })
    }
}

/// The account `id` after `event`, with `totals` changed to match. `account` is
/// `None` before the account's first event.
fn next_account(
    totals: &mut Totals,
    account: Option<Account>,
    event: Event,
    id: &str,
) -> Result<Account, String> {
    let Some(mut account) = account else {
        return match event {
            Event::AccountOpened {
                initial_balance,
                currency,
            } => open(totals, initial_balance, currency),
            _ => Err(format!("account {id:?} was never opened")),
        };
    };
    match event {
        Event::AccountOpened { .. } => {
            return Err(format!("account {id:?} is opened a second time"));
        }
        Event::MoneyDeposited { amount } => {
            move_money(totals, &mut account, amount, i64::checked_add)?;
        }
        Event::MoneyWithdrawn { amount } => {
            move_money(totals, &mut account, amount, i64::checked_sub)?;
        }
        Event::AccountClosed => close(totals, &mut account),
    }
    Ok(account)
}

/// A newly opened account, counted in `totals`.
fn open(totals: &mut Totals, initial_balance: i64, currency: String) -> Result<Account, String> {
    totals.accounts_open += 1;
    add_to_total(totals, &currency, initial_balance, i64::checked_add)?;
    Ok(Account {
        balance: initial_balance,
        currency,
        open: true,
        closed: false,
        last_activity_ms: 0,
        last_position: 0,
    })
}

/// Closes `account`, which no longer counts as open.
fn close(totals: &mut Totals, account: &mut Account) {
    if account.open {
        totals.accounts_open -= 1;
    }
    account.open = false;
    account.closed = true;
}

/// Adds `amount` to, or takes it from (`operation`), the account's balance and its
/// currency's total.
fn move_money(
    totals: &mut Totals,
    account: &mut Account,
    amount: i64,
    operation: fn(i64, i64) -> Option<i64>,
) -> Result<(), String> {
    account.balance = operation(account.balance, amount)
        .ok_or_else(|| format!("the balance {} overflows by {amount}", account.balance))?;
    add_to_total(totals, &account.currency, amount, operation)
}

/// Adds `amount` to, or takes it from (`operation`), the total balance of `currency`.
fn add_to_total(
    totals: &mut Totals,
    currency: &str,
    amount: i64,
    operation: fn(i64, i64) -> Option<i64>,
) -> Result<(), String> {
    let total = totals
        .balance_by_currency
        .entry(currency.to_owned())
        .or_default();
    *total = operation(*total, amount)
        .ok_or_else(|| format!("the total balance in {currency} overflows by {amount}"))?;
    Ok(())
}

tally_sdk::export_projection!(AccountSummary);
