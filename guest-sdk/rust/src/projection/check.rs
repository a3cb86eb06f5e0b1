//! Checks a projection's constants: names in kebab-case, at least one aggregate type
//! and table, nothing listed twice, and every name in `EVENTS` a variant of its event
//! enum.
//!
//! A misspelt event name in `EVENTS` compiles, and the host would then never deliver
//! the event it meant. As for an aggregate's schema tables, the variant names are
//! known only to serde, at run time: `describe` checks them (the host calls it when
//! it installs the projection), and so does every
//! [`testing::projection`](crate::testing::projection) scenario.

use crate::aggregate::is_kebab_case;
use crate::introspect::variant_names;
use crate::projection::Projection;

/// Panics with the projection's name and the first problem of its constants.
///
/// # Panics
/// If a constant is malformed, or `P::Event` is not an enum deriving `Deserialize`.
#[track_caller]
pub(crate) fn assert_projection<P: Projection>() {
    if let Err(error) = check::<P>() {
        panic!("projection {}: {error}", P::NAME);
    }
}

/// The first problem of `P`'s constants, if any.
fn check<P: Projection>() -> Result<(), String> {
    if !is_kebab_case(P::NAME) {
        return Err(format!("NAME {:?} is not kebab-case", P::NAME));
    }
    if !is_semver(P::VERSION) {
        return Err(format!(
            "VERSION {:?} is not a semver version such as 1.0.0",
            P::VERSION
        ));
    }
    check_names("AGGREGATE_TYPES", P::AGGREGATE_TYPES)?;
    check_names("TABLES", P::TABLES)?;
    check_events(P::EVENTS, variant_names::<P::Event>())
}

/// A non-empty list of distinct kebab-case names.
fn check_names(constant: &str, names: &[&str]) -> Result<(), String> {
    if names.is_empty() {
        return Err(format!("{constant} is empty; list at least one"));
    }
    for (index, name) in names.iter().enumerate() {
        if !is_kebab_case(name) {
            return Err(format!(
                "{constant} lists {name:?}, which is not kebab-case"
            ));
        }
        if names[..index].contains(name) {
            return Err(format!("{constant} lists {name:?} more than once"));
        }
    }
    Ok(())
}

/// Every listed event is a variant, listed once.
fn check_events(events: &[&str], variants: &[&str]) -> Result<(), String> {
    for (index, event) in events.iter().enumerate() {
        if !variants.contains(event) {
            return Err(format!(
                "EVENTS lists `{event}`, which is not an event variant; the events are: {}",
                variants.join(", ")
            ));
        }
        if events[..index].contains(event) {
            return Err(format!("EVENTS lists `{event}` more than once"));
        }
    }
    Ok(())
}

/// Whether `version` is `major.minor.patch` in decimal, with an optional
/// `-pre-release` or `+build` suffix.
fn is_semver(version: &str) -> bool {
    let core = version.split(['-', '+']).next().unwrap_or_default();
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn semver_versions_pass_and_others_do_not() {
        for good in ["1.0.0", "0.12.3", "2.0.0-rc.1", "1.2.3+build.5"] {
            assert!(is_semver(good), "{good}");
        }
        for bad in ["", "1", "1.0", "1.0.0.0", "v1.0.0", "1.x.0", "1..0"] {
            assert!(!is_semver(bad), "{bad}");
        }
    }

    #[test]
    fn names_must_be_present_distinct_and_kebab_case() {
        assert!(check_names("TABLES", &["accounts", "by-currency"]).is_ok());
        let error = check_names("TABLES", &[]).unwrap_err();
        assert_eq!(error, "TABLES is empty; list at least one");
        let error = check_names("TABLES", &["Accounts"]).unwrap_err();
        assert!(
            error.contains("\"Accounts\", which is not kebab-case"),
            "{error}"
        );
        let error = check_names("AGGREGATE_TYPES", &["a", "a"]).unwrap_err();
        assert!(error.contains("\"a\" more than once"), "{error}");
    }

    #[test]
    fn events_must_be_variants_listed_once() {
        let variants = ["Opened", "Closed"];
        assert!(check_events(&[], &variants).is_ok());
        assert!(check_events(&["Closed"], &variants).is_ok());
        let error = check_events(&["Opend"], &variants).unwrap_err();
        assert!(
            error.contains("`Opend`, which is not an event variant"),
            "{error}"
        );
        assert!(error.ends_with("the events are: Opened, Closed"), "{error}");
        let error = check_events(&["Closed", "Closed"], &variants).unwrap_err();
        assert!(error.contains("more than once"), "{error}");
    }
}
