//! The fingerprint of a command, kept by the store with its command id so that a
//! retry of the command can be told from a reuse of the id for another command.

use sha2::{Digest, Sha256};
use tally_store::{CommandFingerprint, StreamId};

use crate::Command;

/// The fingerprint of `command` for the aggregate of `stream`: SHA-256 over the
/// aggregate type, the aggregate id, the command name and the command's data, as the
/// runtime received them (the data's bytes as they are: a retry sends the same
/// request again). Each part is preceded by its length, so that no two different
/// commands share an input (`("ab", "c")` and `("a", "bc")` differ).
pub(crate) fn command_fingerprint(stream: &StreamId, command: &Command) -> CommandFingerprint {
    let mut digest = Sha256::new();
    for part in [
        stream.aggregate_type.as_bytes(),
        stream.aggregate_id.as_bytes(),
        command.name.as_bytes(),
        &command.data,
    ] {
        digest.update((part.len() as u64).to_le_bytes());
        digest.update(part);
    }
    CommandFingerprint::new(digest.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fingerprint(aggregate_id: &str, name: &str, data: &str) -> CommandFingerprint {
        let stream = StreamId::new("bank-account", aggregate_id);
        let command = Command {
            name: name.to_owned(),
            data: data.as_bytes().to_vec(),
        };
        command_fingerprint(&stream, &command)
    }

    #[test]
    fn the_same_command_has_the_same_fingerprint() {
        let deposit = fingerprint("acc-1", "Deposit", r#"{"amount":5}"#);
        assert_eq!(deposit, fingerprint("acc-1", "Deposit", r#"{"amount":5}"#));
    }

    #[test]
    fn every_part_of_a_command_counts() {
        let deposit = fingerprint("acc-1", "Deposit", r#"{"amount":5}"#);
        for other in [
            fingerprint("acc-2", "Deposit", r#"{"amount":5}"#),
            fingerprint("acc-1", "Withdraw", r#"{"amount":5}"#),
            fingerprint("acc-1", "Deposit", r#"{"amount":6}"#),
        ] {
            assert_ne!(deposit, other);
        }
    }

    #[test]
    fn parts_do_not_run_into_each_other() {
        assert_ne!(fingerprint("ab", "c", ""), fingerprint("a", "bc", ""));
        assert_ne!(fingerprint("a", "b", "c"), fingerprint("a", "", "bc"));
    }
}
