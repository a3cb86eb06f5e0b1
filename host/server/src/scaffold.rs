//! `tally plugin new NAME`: scaffolds a plugin crate on `tally-sdk`.
//!
//! The generated crate is a workspace of its own (it builds wherever it is put). An
//! aggregate plugin has one aggregate type called NAME: a `Record { value }` command,
//! a `Recorded { value }` event, a state that keeps the count and total of the
//! recorded values, one rejection code (`invalid-value`), given/when/then tests and a
//! README with the build and install instructions. With `--projection` it is a
//! projection named NAME instead, over those `Recorded` events of one aggregate type:
//! one table, a document per aggregate, given/then tests and a README. As generated,
//! `cargo test` passes and `cargo build --release --target wasm32-wasip2` produces the
//! component `target/wasm32-wasip2/release/<name_with_underscores>.wasm`.
//!
//! The generated sources are laid out as `rustfmt` (edition 2024) would lay them
//! out, for every valid name, so `cargo fmt --check` passes on a fresh plugin.
//!
//! With `--lang python` or `--lang js` the aggregate plugin is a Python or JavaScript
//! project on that language's SDK instead (`languages.rs`), with the same rules,
//! native tests (pytest, `node --test`) and a README with the exact build command.

mod languages;
mod projection;

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Longest plugin name accepted, in bytes.
pub const MAX_NAME_LEN: usize = 64;

/// The Rust target plugins are built for.
pub const WASM_TARGET: &str = "wasm32-wasip2";

/// What to generate and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scaffold {
    /// Plugin name, kebab-case: the crate name, and the aggregate type or the
    /// projection name.
    pub name: String,
    /// What the crate is.
    pub kind: Kind,
    /// The crate's root directory. It is created if missing and must be empty if it
    /// exists (`tally plugin new NAME` defaults it to `./NAME`).
    pub dir: PathBuf,
    /// Where the generated crate takes `tally-sdk` from (for Python and JavaScript:
    /// the directory of that language's SDK in a checkout).
    pub sdk: SdkSource,
    /// The language the plugin is written in.
    pub language: Language,
}

/// The language of a generated plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Language {
    /// Rust, on `tally-sdk` (aggregate plugins and projections).
    #[default]
    Rust,
    /// Python, on `guest-sdk/python`, built by componentize-py (aggregate plugins).
    Python,
    /// JavaScript, on `guest-sdk/js`, built by componentize-js (aggregate plugins).
    Js,
}

impl Language {
    /// The folder of this language's SDK in a checkout (`guest-sdk/<folder>`).
    pub fn sdk_folder(self) -> &'static str {
        match self {
            Language::Rust => "rust",
            Language::Python => "python",
            Language::Js => "js",
        }
    }
}

/// What kind of plugin to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// An aggregate plugin: the aggregate type NAME, its commands, events and state.
    Aggregate,
    /// A projection named NAME: a read model folded from the events of one aggregate
    /// type (`Recorded { value }`, as an aggregate plugin from this scaffold writes).
    Projection {
        /// The aggregate type whose events it reads, kebab-case.
        aggregate_type: String,
    },
}

/// The aggregate type a projection reads when none is given: that of the example
/// `tally plugin new counter`, whose events the generated projection reads.
pub const DEFAULT_AGGREGATE_TYPE: &str = "counter";

/// Where the generated crate takes `tally-sdk` from (it is not on crates.io).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SdkSource {
    /// A local checkout: the directory holding the SDK's `Cargo.toml`. A relative
    /// path is taken from the current directory. When the new crate is inside the
    /// checkout (the SDK directory's parent), `Cargo.toml` names the SDK by a relative
    /// path, which survives moving the checkout; elsewhere by its absolute path, with
    /// a comment saying to change it if the checkout moves.
    Path(PathBuf),
    /// A git repository holding the `tally-sdk` package (cargo finds it anywhere in
    /// the repository, e.g. in `guest-sdk/`).
    Git {
        /// Repository URL, e.g. `https://example.org/tally.git`.
        url: String,
    },
}

/// Why a plugin could not be generated.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    /// The name does not fit the rules.
    #[error("invalid plugin name {name:?}: {reason}")]
    InvalidName {
        /// The name given.
        name: String,
        /// Which rule it breaks.
        reason: String,
    },
    /// The aggregate type a projection reads is not kebab-case.
    #[error("invalid aggregate type {aggregate_type:?}: {reason}")]
    InvalidAggregateType {
        /// The aggregate type given.
        aggregate_type: String,
        /// Which rule it breaks.
        reason: String,
    },
    /// The combination asked for is not generated.
    #[error("{0}")]
    Unsupported(String),
    /// The target directory exists and holds something.
    #[error(
        "{} already exists and is not empty; refusing to overwrite it (choose another directory)",
        .dir.display()
    )]
    DirNotEmpty {
        /// The target directory.
        dir: PathBuf,
    },
    /// The target path exists and is not a directory.
    #[error("{} exists and is not a directory", .path.display())]
    NotADirectory {
        /// The target path.
        path: PathBuf,
    },
    /// The SDK path does not hold a `Cargo.toml`.
    #[error("no tally-sdk at {}: it has no Cargo.toml", .path.display())]
    SdkNotFound {
        /// The SDK path given.
        path: PathBuf,
    },
    /// The SDK git URL is empty or cannot be written into `Cargo.toml`.
    #[error("invalid tally-sdk git URL {url:?}: {reason}")]
    InvalidGitUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A path that must go into `Cargo.toml` is not UTF-8.
    #[error("{} is not valid UTF-8 and cannot be written into Cargo.toml", .path.display())]
    NonUtf8Path {
        /// The path.
        path: PathBuf,
    },
    /// Reading or writing the file system failed.
    #[error("cannot {action} {}: {source}", .path.display())]
    Io {
        /// What was being done (`create`, `write`, `read`, ...).
        action: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// Rust keywords (strict, reserved, and edition 2024's `gen`): not a crate name.
const KEYWORDS: &[&str] = &[
    "abstract", "as", "async", "await", "become", "box", "break", "const", "continue", "crate",
    "do", "dyn", "else", "enum", "extern", "false", "final", "fn", "for", "gen", "if", "impl",
    "in", "let", "loop", "macro", "match", "mod", "move", "mut", "override", "priv", "pub", "ref",
    "return", "self", "static", "struct", "super", "trait", "true", "try", "type", "typeof",
    "unsafe", "unsized", "use", "virtual", "where", "while", "yield",
];

/// The built-in crates: a crate of that name would clash with them.
const BUILTIN_CRATES: &[&str] = &["alloc", "core", "proc-macro", "std", "test"];

/// The generated crate's direct dependencies: a crate of the same name would clash.
const DEPENDENCY_NAMES: &[&str] = &["serde", "tally-sdk"];

/// File names Windows reserves in every directory.
const WINDOWS_RESERVED: &[&str] = &[
    "con", "prn", "aux", "nul", "com1", "com2", "com3", "com4", "com5", "com6", "com7", "com8",
    "com9", "lpt1", "lpt2", "lpt3", "lpt4", "lpt5", "lpt6", "lpt7", "lpt8", "lpt9",
];

/// Names the generated aggregate code uses, separated by spaces: the state type must
/// not shadow them.
const AGGREGATE_CODE_NAMES: &str =
    "Aggregate Command Context Deserialize Event Rejection Serialize";

/// Names the generated projection code uses, separated by spaces: the projection
/// type (a unit struct, so also a value) must not shadow them.
const PROJECTION_CODE_NAMES: &str =
    "Deserialize Documents Envelope Event GivenEvent Projection Serialize Totals TOTALS";

/// Names the Rust prelude provides, separated by spaces: the generated type must not
/// shadow them.
const PRELUDE_NAMES: &str = "AsMut AsRef Box Clone Copy Debug Default DoubleEndedIterator Drop Eq Err ExactSizeIterator \
    Extend Fn FnMut FnOnce From FromIterator Hash Into IntoIterator Iterator None Ok Option Ord \
    PartialEq PartialOrd Result Send Sized Some String Sync ToOwned ToString TryFrom TryInto \
    Unpin Vec";

/// Checks a plugin name: kebab-case `[a-z][a-z0-9]*(-[a-z0-9]+)*`, at most
/// [`MAX_NAME_LEN`] bytes, not a Rust keyword, built-in crate, dependency of the
/// generated crate or Windows-reserved file name.
pub fn validate_name(name: &str) -> Result<(), ScaffoldError> {
    let invalid = |reason: String| {
        Err(ScaffoldError::InvalidName {
            name: name.to_owned(),
            reason,
        })
    };
    let kebab = "use kebab-case: lowercase letters and digits in words joined by single `-`, \
                 starting with a letter (e.g. `shopping-cart`)";
    if name.is_empty() {
        return invalid("the name is empty".into());
    }
    if name.len() > MAX_NAME_LEN {
        return invalid(format!(
            "{} bytes long; at most {MAX_NAME_LEN} are allowed",
            name.len()
        ));
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return invalid(format!("it must start with a lowercase letter; {kebab}"));
    }
    if !kebab_words(name) {
        return invalid(kebab.into());
    }
    if KEYWORDS.contains(&name) {
        return invalid("it is a Rust keyword".into());
    }
    if BUILTIN_CRATES.contains(&name) {
        return invalid("it is the name of a built-in crate".into());
    }
    if DEPENDENCY_NAMES.contains(&name) {
        return invalid("the plugin crate depends on a crate of that name".into());
    }
    if WINDOWS_RESERVED.contains(&name) {
        return invalid("it is a reserved file name on Windows".into());
    }
    Ok(())
}

/// Checks the aggregate type a projection reads as the host does: at most
/// [`MAX_NAME_LEN`] bytes of lowercase letters and digits in words joined by single
/// `-`.
pub fn validate_aggregate_type(aggregate_type: &str) -> Result<(), ScaffoldError> {
    if aggregate_type.len() <= MAX_NAME_LEN && kebab_words(aggregate_type) {
        return Ok(());
    }
    Err(ScaffoldError::InvalidAggregateType {
        aggregate_type: aggregate_type.to_owned(),
        reason: format!(
            "use kebab-case, at most {MAX_NAME_LEN} bytes: lowercase letters and digits in \
             words joined by single `-` (e.g. `shopping-cart`)"
        ),
    })
}

/// Whether `name` is words of lowercase letters and digits joined by single `-`
/// (an empty name is one empty word: no).
fn kebab_words(name: &str) -> bool {
    name.split('-').all(|word| {
        !word.is_empty()
            && word
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    })
}

/// The crate's Rust name: NAME with `-` replaced by `_` (also the `.wasm` file stem).
pub fn crate_ident(name: &str) -> String {
    name.replace('-', "_")
}

/// Where `cargo build --release --target wasm32-wasip2` puts the component,
/// relative to the target directory (`target/` by default, or `CARGO_TARGET_DIR`).
pub fn wasm_path(name: &str) -> PathBuf {
    Path::new(WASM_TARGET)
        .join("release")
        .join(format!("{}.wasm", crate_ident(name)))
}

/// The state type's name: NAME in PascalCase (`shopping-cart` -> `ShoppingCart`),
/// with an `Aggregate` suffix if that would shadow a name the code uses.
pub fn type_ident(name: &str) -> String {
    unshadowed(pascal_case(name), AGGREGATE_CODE_NAMES, "Aggregate")
}

/// The projection type's name: NAME in PascalCase (`cart-totals` -> `CartTotals`),
/// with a `Projection` suffix if that would shadow a name the code uses.
pub fn projection_type_ident(name: &str) -> String {
    unshadowed(pascal_case(name), PROJECTION_CODE_NAMES, "Projection")
}

/// A kebab-case name in PascalCase.
fn pascal_case(name: &str) -> String {
    name.split('-')
        .map(|word| {
            let mut chars = word.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

/// `pascal`, with `suffix` if it is one of `code_names` or the prelude's names.
fn unshadowed(pascal: String, code_names: &str, suffix: &str) -> String {
    let mut taken = code_names
        .split_whitespace()
        .chain(PRELUDE_NAMES.split_whitespace());
    if taken.any(|taken| taken == pascal) {
        pascal + suffix
    } else {
        pascal
    }
}

/// Generates the plugin crate described by `scaffold`; returns the files written,
/// each as `scaffold.dir` joined with its relative path.
///
/// Nothing is overwritten: the directory must be missing or empty, and every file
/// is created new. If writing fails part-way, what was written is removed again.
pub fn generate(scaffold: &Scaffold) -> Result<Vec<PathBuf>, ScaffoldError> {
    let files = render(scaffold)?;
    let dir = &scaffold.dir;
    let created_dir = prepare_dir(dir)?;

    let mut written = Vec::new();
    let mut created_subdirs = Vec::new();
    let result = files.iter().try_for_each(|(relative, contents)| {
        let path = dir.join(relative);
        if let Some(parent) = path.parent()
            && !parent.exists()
        {
            fs::create_dir_all(parent).map_err(|source| ScaffoldError::Io {
                action: "create",
                path: parent.to_owned(),
                source,
            })?;
            created_subdirs.push(parent.to_owned());
        }
        write_new(&path, contents)?;
        if relative.ends_with(".sh") {
            make_executable(&path)?;
        }
        written.push(path);
        Ok(())
    });
    if let Err(error) = result {
        // Best effort: leave the file system as it was found.
        for path in &written {
            let _ = fs::remove_file(path);
        }
        for subdir in created_subdirs.iter().rev() {
            let _ = fs::remove_dir(subdir);
        }
        if created_dir {
            let _ = fs::remove_dir(dir);
        }
        return Err(error);
    }
    Ok(written)
}

/// Makes sure `dir` is an empty directory; returns whether it was created.
fn prepare_dir(dir: &Path) -> Result<bool, ScaffoldError> {
    match fs::metadata(dir) {
        Ok(metadata) if !metadata.is_dir() => Err(ScaffoldError::NotADirectory {
            path: dir.to_owned(),
        }),
        Ok(_) => {
            let mut entries = fs::read_dir(dir).map_err(|source| ScaffoldError::Io {
                action: "read",
                path: dir.to_owned(),
                source,
            })?;
            if entries.next().is_some() {
                return Err(ScaffoldError::DirNotEmpty {
                    dir: dir.to_owned(),
                });
            }
            Ok(false)
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            fs::create_dir_all(dir).map_err(|source| ScaffoldError::Io {
                action: "create",
                path: dir.to_owned(),
                source,
            })?;
            Ok(true)
        }
        Err(source) => Err(ScaffoldError::Io {
            action: "inspect",
            path: dir.to_owned(),
            source,
        }),
    }
}

/// Lets the owner, and everyone, run the script at `path`.
fn make_executable(path: &Path) -> Result<(), ScaffoldError> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).map_err(|source| {
        ScaffoldError::Io {
            action: "make executable",
            path: path.to_owned(),
            source,
        }
    })
}

/// Writes a file that must not exist yet.
fn write_new(path: &Path, contents: &str) -> Result<(), ScaffoldError> {
    let io_error = |source| ScaffoldError::Io {
        action: "write",
        path: path.to_owned(),
        source,
    };
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(io_error)?;
    file.write_all(contents.as_bytes()).map_err(io_error)
}

/// The `tally-sdk` lines of the new crate (in `crate_dir`)'s `Cargo.toml`: a comment
/// saying where the SDK comes from, then the dependency.
fn sdk_dependency(sdk: &SdkSource, crate_dir: &Path) -> Result<String, ScaffoldError> {
    match sdk {
        SdkSource::Path(path) => sdk_path_dependency(path, crate_dir),
        SdkSource::Git { url } => {
            let invalid = |reason| ScaffoldError::InvalidGitUrl {
                url: url.clone(),
                reason,
            };
            if url.trim().is_empty() {
                return Err(invalid("it is empty"));
            }
            if url.chars().any(char::is_control) {
                return Err(invalid("it contains control characters"));
            }
            Ok(format!(
                "# The SDK from its git repository.\ntally-sdk = {{ git = {} }}",
                toml_string(url)
            ))
        }
    }
}

/// The `tally-sdk` lines for an SDK in a local directory: relative to the crate when
/// the crate is inside the SDK's checkout, else absolute.
fn sdk_path_dependency(sdk: &Path, crate_dir: &Path) -> Result<String, ScaffoldError> {
    let sdk = absolute(sdk)?;
    if !sdk.join("Cargo.toml").is_file() {
        return Err(ScaffoldError::SdkNotFound { path: sdk });
    }
    let crate_dir = absolute(crate_dir)?;
    let relative = checkout_of(&sdk)
        .filter(|checkout| crate_dir.starts_with(checkout))
        .and_then(|_| pathdiff::diff_paths(&sdk, &crate_dir));
    let (comment, path) = match &relative {
        Some(relative) => (
            "# The SDK of the Tally checkout this crate is in, by a relative path: the\n\
             # checkout can move with the crate inside it.",
            relative,
        ),
        None => (
            "# The SDK by its absolute path: if the checkout moves, change this path (or take\n\
             # the SDK from its repository: `tally-sdk = { git = \"<url>\" }`).",
            &sdk,
        ),
    };
    let text = path
        .to_str()
        .ok_or_else(|| ScaffoldError::NonUtf8Path { path: sdk.clone() })?;
    Ok(format!(
        "{comment}\ntally-sdk = {{ path = {} }}",
        toml_string(text)
    ))
}

/// The Tally checkout a directory of it (an SDK, `wit/`) is part of: the nearest
/// directory above it that holds a `Cargo.toml` (the workspace root).
fn checkout_of(dir: &Path) -> Option<&Path> {
    dir.ancestors()
        .skip(1)
        .find(|ancestor| ancestor.join("Cargo.toml").is_file())
}

/// `path` made absolute against the current directory (it need not exist).
fn absolute(path: &Path) -> Result<PathBuf, ScaffoldError> {
    std::path::absolute(path).map_err(|source| ScaffoldError::Io {
        action: "resolve",
        path: path.to_owned(),
        source,
    })
}

/// A TOML basic string holding `text`.
fn toml_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `short` if its longest line is at most `width` bytes long, else `long`: how
/// rustfmt (default `max_width = 100`) breaks the few lines that embed the name.
fn fitting(width: usize, short: String, long: String) -> String {
    if short.lines().all(|line| line.len() <= width) {
        short
    } else {
        long
    }
}

/// Checks what `scaffold` describes and renders every file of it: its path relative
/// to the crate root and its contents.
fn render(scaffold: &Scaffold) -> Result<Vec<(&'static str, String)>, ScaffoldError> {
    validate_name(&scaffold.name)?;
    if scaffold.language != Language::Rust {
        return render_other_language(scaffold);
    }
    if let Kind::Projection { aggregate_type } = &scaffold.kind {
        validate_aggregate_type(aggregate_type)?;
    }
    let sdk = sdk_dependency(&scaffold.sdk, &scaffold.dir)?;
    let (templates, mut values) = match &scaffold.kind {
        Kind::Aggregate => aggregate_values(&scaffold.name),
        Kind::Projection { aggregate_type } => projection::values(&scaffold.name, aggregate_type),
    };
    values.push(("sdk", sdk));
    let fill = |template: &str| fill(template, &values);
    Ok(vec![
        ("Cargo.toml", fill(CARGO_TOML)),
        (".gitignore", GITIGNORE.to_owned()),
        ("README.md", fill(templates.readme)),
        ("src/lib.rs", fill(templates.lib)),
        (templates.tests_path, fill(templates.tests)),
    ])
}

/// The files of a Python or JavaScript aggregate plugin.
fn render_other_language(
    scaffold: &Scaffold,
) -> Result<Vec<(&'static str, String)>, ScaffoldError> {
    if matches!(scaffold.kind, Kind::Projection { .. }) {
        return Err(ScaffoldError::Unsupported(
            "projections are written in Rust for now: leave out --lang".into(),
        ));
    }
    let SdkSource::Path(sdk) = &scaffold.sdk else {
        return Err(ScaffoldError::Unsupported(
            "a Python or JavaScript SDK comes from a local checkout, not a git URL".into(),
        ));
    };
    match scaffold.language {
        Language::Python => languages::python(&scaffold.name, &scaffold.dir, sdk),
        Language::Js => languages::javascript(&scaffold.name, &scaffold.dir, sdk),
        Language::Rust => unreachable!("Rust is rendered by `render`"),
    }
}

/// The templates of one kind of crate, beside the manifest and `.gitignore` every
/// crate has.
struct Templates {
    /// `README.md`.
    readme: &'static str,
    /// `src/lib.rs`.
    lib: &'static str,
    /// The test file's path, relative to the crate root.
    tests_path: &'static str,
    /// The test file.
    tests: &'static str,
}

/// What fills the templates in: each `{{key}}` and its value.
type Values = Vec<(&'static str, String)>;

/// `template` with the sections every crate shares (`{{build}}`) filled in, then
/// each `{{key}}` of `values`, in order.
fn fill(template: &str, values: &[(&str, String)]) -> String {
    let mut text = template.replace("{{build}}", README_BUILD);
    for (key, value) in values {
        text = text.replace(&format!("{{{{{key}}}}}"), value);
    }
    text
}

/// `use CRATE::{names};` as rustfmt writes it: the names sorted, on one line if it
/// fits.
fn use_list<const N: usize>(ident: &str, mut names: [&str; N]) -> String {
    // rustfmt sorts the names in braces by version sort: byte order, but `_` before
    // digits and letters. Numbers compare by value, which only the generated type
    // can hold, so byte order is that order here (measured, 1.9.0).
    names.sort_unstable_by_key(|name| name.replace('_', " "));
    let names = names.join(", ");
    // rustfmt keeps a `use` list on one line only up to 98 bytes (measured, 1.9.0).
    fitting(
        98,
        format!("use {ident}::{{{names}}};"),
        format!("use {ident}::{{\n    {names},\n}};"),
    )
}

/// The templates of the aggregate plugin `name` and what fills them in.
fn aggregate_values(name: &str) -> (Templates, Values) {
    let ident = crate_ident(name);
    let ty = type_ident(name);
    let aggregate_type = fitting(
        100,
        format!("    const AGGREGATE_TYPE: &'static str = \"{name}\";"),
        format!("    const AGGREGATE_TYPE: &'static str =\n        \"{name}\";"),
    );
    let templates = Templates {
        readme: README_MD,
        lib: LIB_RS,
        tests_path: "tests/given_when_then.rs",
        tests: TESTS_RS,
    };
    let values = vec![
        (
            "description",
            format!("Tally plugin: the {name} aggregate."),
        ),
        ("tests", "given/when/then".to_owned()),
        ("name", name.to_owned()),
        ("use_crate", use_list(&ident, ["Command", "Event", &ty])),
        ("crate", ident),
        ("Type", ty),
        ("AGGREGATE_TYPE", aggregate_type),
    ];
    (templates, values)
}

/// The manifest of either kind of crate.
const CARGO_TOML: &str = r#"[package]
name = "{{name}}"
description = "{{description}}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
# cdylib: the WebAssembly component; rlib: the native {{tests}} tests.
crate-type = ["cdylib", "rlib"]

[dependencies]
serde = { version = "1", features = ["derive"] }
# Its default feature `call-arena` makes the SDK's call arena the component's
# allocator; see the tally-sdk README for what it costs and how to turn it off.
{{sdk}}

# A workspace of its own, so that the plugin builds standalone wherever it lives.
[workspace]

# Plugins run on every command and every fold, projections on every event: built
# for speed. A panic aborts (wasm has no unwinding here); the SDK's panic hook has
# already reported it on stderr by then.
[profile.release]
opt-level = 3
lto = true
codegen-units = 1
strip = true
panic = "abort"
debug = false
"#;

const GITIGNORE: &str = "/target\n";

const LIB_RS: &str = r#"//! The `{{name}}` aggregate: a Tally plugin.
//!
//! Generated by `tally plugin new`: it records values above zero and keeps their
//! count and total. Replace the commands, events, state and rules with your own.
//!
//! | code              | when                                                          |
//! |-------------------|---------------------------------------------------------------|
//! | `invalid-value`   | `Record` of zero or less, or of a value overflowing the total |
//! | `invalid-command` | unknown command or malformed data (from the SDK)              |

use serde::{Deserialize, Serialize};
use tally_sdk::{Aggregate, Context, Rejection};

/// What a client can ask of a `{{name}}`: one variant per command. On the wire a
/// command is its variant name and its fields as JSON: `Record` with `{"value": 5}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// Records a value above zero.
    Record {
        /// The value to record.
        value: i64,
    },
}

/// What happened to a `{{name}}`: one variant per event, all at schema version 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Event {
    /// A value was recorded.
    Recorded {
        /// The value recorded.
        value: i64,
    },
}

/// The state of one `{{name}}`, rebuilt from its events; also its state JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct {{Type}} {
    /// How many values were recorded.
    pub count: u64,
    /// The sum of the recorded values.
    pub total: i64,
}

impl Aggregate for {{Type}} {
    type Command = Command;
    type Event = Event;

{{AGGREGATE_TYPE}}
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "Records values above zero; keeps their count and total.";

    /// Decides a command: the events to record, or a rejection. Deterministic: the
    /// time is `ctx.now_ms`, never the system clock.
    fn handle(&self, _ctx: &Context, command: Command) -> Result<Vec<Event>, Rejection> {
        match command {
            Command::Record { value } => {
                if value <= 0 {
                    let message = format!("the value must be above zero, got {value}");
                    return Err(Rejection::new("invalid-value", message));
                }
                if self.total.checked_add(value).is_none() {
                    let message = format!("{value} would overflow the total {}", self.total);
                    return Err(Rejection::new("invalid-value", message));
                }
                Ok(vec![Event::Recorded { value }])
            }
        }
    }

    /// Evolves the state by one event that `handle` accepted: no validation here.
    fn apply(&mut self, event: Event) {
        match event {
            Event::Recorded { value } => {
                self.count += 1;
                self.total = self
                    .total
                    .checked_add(value)
                    .expect("handle refuses values that overflow the total");
            }
        }
    }
}

tally_sdk::export!({{Type}});
"#;

const TESTS_RS: &str = r##"//! Given/when/then tests, run natively with `cargo test`. Each step goes through
//! the same JSON encoding the component uses.

use tally_sdk::testing::given;

{{use_crate}}

#[test]
fn recording_a_value_counts_it_and_adds_it_to_the_total() {
    let history = [Event::Recorded { value: 2 }];
    let state = given::<{{Type}}>(history)
        .when(Command::Record { value: 3 })
        .then_events([Event::Recorded { value: 3 }]);
    assert_eq!(state.count, 2);
    assert_eq!(state.total, 5);
}

#[test]
fn recording_zero_is_rejected() {
    given::<{{Type}}>([])
        .when(Command::Record { value: 0 })
        .then_rejects("invalid-value");
}

#[test]
fn a_value_that_is_not_a_number_is_an_invalid_command() {
    given::<{{Type}}>([])
        .when_raw("Record", r#"{"value": "five"}"#)
        .then_rejects("invalid-command");
}
"##;

/// The README's build instructions, the same for either kind of crate.
const README_BUILD: &str = r#"## Build

```sh
rustup target add wasm32-wasip2          # once
cargo build --release --target wasm32-wasip2
```

The component lands in `target/wasm32-wasip2/release/{{crate}}.wasm` (under
`$CARGO_TARGET_DIR` instead of `target/` if that is set). No `cargo-component` or
other tool is needed."#;

const README_MD: &str = r#"# {{name}}

A Tally plugin: the `{{name}}` aggregate type, written in Rust on `tally-sdk`
and compiled to a WebAssembly component. Generated by
`tally plugin new {{name}}`.

- `src/lib.rs`: the commands, events and state, `handle` (decide) and `apply`
  (evolve), and `tally_sdk::export!`, which makes the crate a component.
- `tests/given_when_then.rs`: given these events, when this command, then these
  events (or this rejection).

## Test

```sh
cargo test
```

runs the given/when/then tests natively (no WebAssembly involved); every step goes
through the same JSON encoding the component uses.

{{build}}

## Install

```sh
tally plugin install target/wasm32-wasip2/release/{{crate}}.wasm --activate
```

## Evolve it

- A new command or event is a new enum variant; a refusal is a
  `Rejection::new("kebab-case-code", "message")`, and its code never changes meaning.
- `handle` and `apply` must be deterministic: the time is `ctx.now_ms`; no system
  clock, randomness, files or network.
- When an event's data changes, raise its schema version and add an upcaster
  (`EVENT_VERSIONS` and `UPCASTERS` on `Aggregate`; see the tally-sdk README).
  `cargo test` checks that both name real events, and `tally_sdk::testing::upcast`
  tests an upcaster.
- Raise `version` in `Cargo.toml` for every release: it is the plugin version
  `describe` reports, by which the host tells your releases apart.
"#;

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh, missing directory under the system temp dir.
    fn temp_dir(label: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "tally-scaffold-{label}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    /// A directory that looks like an SDK checkout (it has a `Cargo.toml`).
    fn fake_sdk(label: &str) -> PathBuf {
        let sdk = temp_dir(&format!("{label}-sdk"));
        fs::create_dir_all(&sdk).unwrap();
        fs::write(sdk.join("Cargo.toml"), "").unwrap();
        sdk
    }

    fn scaffold(name: &str, dir: &Path, sdk: &Path) -> Scaffold {
        Scaffold {
            name: name.to_owned(),
            kind: Kind::Aggregate,
            dir: dir.to_owned(),
            sdk: SdkSource::Path(sdk.to_owned()),
            language: Language::Rust,
        }
    }

    /// A checkout with a `Cargo.toml`, `wit/` and an SDK folder for `language` holding
    /// its manifest `marker`; returns the checkout and the SDK folder.
    fn fake_checkout(label: &str, language: Language, marker: &str) -> (PathBuf, PathBuf) {
        let checkout = temp_dir(label);
        let sdk = checkout.join("guest-sdk").join(language.sdk_folder());
        fs::create_dir_all(&sdk).unwrap();
        fs::create_dir_all(checkout.join("wit")).unwrap();
        fs::write(checkout.join("Cargo.toml"), "").unwrap();
        fs::write(sdk.join(marker), "").unwrap();
        (checkout, sdk)
    }

    #[test]
    fn a_python_plugin_names_the_checkouts_sdk_and_wit_and_its_build_script_runs() {
        let (checkout, sdk) = fake_checkout("py-checkout", Language::Python, "pyproject.toml");
        let dir = checkout.join("plugins").join("record");
        let files = generate(&Scaffold {
            language: Language::Python,
            ..scaffold("record", &dir, &sdk)
        })
        .unwrap();
        assert_eq!(files.len(), 7, "{files:?}");
        for file in &files {
            let text = fs::read_to_string(file).unwrap();
            assert!(
                !text.contains("{{"),
                "{} is not filled in:\n{text}",
                file.display()
            );
        }
        let domain = fs::read_to_string(dir.join("domain.py")).unwrap();
        // `Record` is the command's class: the state is `RecordState`.
        assert!(domain.contains("class RecordState:"), "{domain}");
        let build = fs::read_to_string(dir.join("build.sh")).unwrap();
        assert!(build.contains("--wit-path \"../../wit\""), "{build}");
        assert!(build.contains("../../guest-sdk/python"), "{build}");
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(dir.join("build.sh"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0o111, "build.sh is executable: {mode:o}");
        fs::remove_dir_all(checkout).unwrap();
    }

    #[test]
    fn a_javascript_plugin_depends_on_the_sdk_by_a_file_spec() {
        let (checkout, sdk) = fake_checkout("js-checkout", Language::Js, "package.json");
        let outside = temp_dir("js-outside");
        let files = generate(&Scaffold {
            language: Language::Js,
            ..scaffold("shopping-cart", &outside, &sdk)
        })
        .unwrap();
        assert_eq!(files.len(), 5, "{files:?}");
        let package = fs::read_to_string(outside.join("package.json")).unwrap();
        let manifest: serde_json::Value = serde_json::from_str(&package).unwrap();
        let spec = manifest["dependencies"]["@tally/sdk"].as_str().unwrap();
        assert_eq!(
            spec,
            format!("file:{}", sdk.display()),
            "outside the checkout: absolute"
        );
        let index = fs::read_to_string(outside.join("src/index.js")).unwrap();
        assert!(
            index.contains("export const ShoppingCart = defineAggregate"),
            "{index}"
        );
        fs::remove_dir_all(checkout).unwrap();
        fs::remove_dir_all(outside).unwrap();
    }

    #[test]
    fn projections_and_git_sdks_are_rust_only() {
        let (checkout, sdk) = fake_checkout("py-projection", Language::Python, "pyproject.toml");
        let dir = checkout.join("totals");
        let refused = [
            Scaffold {
                language: Language::Python,
                ..projection("totals", "counter", &dir, &sdk)
            },
            Scaffold {
                language: Language::Js,
                sdk: SdkSource::Git {
                    url: "https://example.org/tally.git".into(),
                },
                ..scaffold("totals", &dir, &sdk)
            },
        ];
        for scaffold in refused {
            let error = generate(&scaffold).unwrap_err();
            assert!(matches!(error, ScaffoldError::Unsupported(_)), "{error}");
            assert!(!dir.exists());
        }
        fs::remove_dir_all(checkout).unwrap();
    }

    /// Asserts that `files` are a generated crate's, in `dir`, with its tests in
    /// `tests`.
    fn assert_crate_files(files: &[PathBuf], dir: &Path, tests: &str) {
        let relative: Vec<_> = files.iter().map(|f| f.strip_prefix(dir).unwrap()).collect();
        let expected = ["Cargo.toml", ".gitignore", "README.md", "src/lib.rs", tests];
        assert_eq!(relative, expected.map(Path::new));
    }

    #[test]
    fn kebab_case_names_are_accepted() {
        for name in [
            "a",
            "counter",
            "shopping-cart",
            "v2",
            "order-line-2",
            "a1-b2-c3",
        ] {
            assert!(validate_name(name).is_ok(), "{name:?} was refused");
        }
        assert!(validate_name(&"a".repeat(MAX_NAME_LEN)).is_ok());
    }

    #[test]
    fn other_names_are_refused() {
        let too_long = "a".repeat(MAX_NAME_LEN + 1);
        for name in [
            "",
            "Counter",
            "shopping_cart",
            "shopping cart",
            "1counter",
            "-counter",
            "counter-",
            "shopping--cart",
            "café",
            "a/b",
            "..",
            too_long.as_str(),
        ] {
            let error = validate_name(name).expect_err(name);
            assert!(
                matches!(&error, ScaffoldError::InvalidName { name: n, .. } if n == name),
                "{error}"
            );
        }
    }

    #[test]
    fn keywords_builtin_crates_dependencies_and_windows_names_are_refused() {
        for name in [
            "fn",
            "self",
            "gen",
            "std",
            "test",
            "proc-macro",
            "serde",
            "tally-sdk",
            "nul",
        ] {
            assert!(validate_name(name).is_err(), "{name:?} was accepted");
        }
    }

    #[test]
    fn the_error_message_says_what_is_wrong() {
        let message = validate_name("Shopping_Cart").unwrap_err().to_string();
        assert!(message.contains("\"Shopping_Cart\""), "{message}");
        assert!(message.contains("kebab-case"), "{message}");
        let message = validate_name(&"a".repeat(65)).unwrap_err().to_string();
        assert!(message.contains("at most 64"), "{message}");
    }

    #[test]
    fn identifiers_derive_from_the_name() {
        assert_eq!(crate_ident("shopping-cart"), "shopping_cart");
        assert_eq!(type_ident("shopping-cart"), "ShoppingCart");
        assert_eq!(type_ident("order-line-2"), "OrderLine2");
        assert_eq!(type_ident("event"), "EventAggregate");
        assert_eq!(type_ident("result"), "ResultAggregate");
        assert_eq!(
            wasm_path("shopping-cart"),
            Path::new("wasm32-wasip2/release/shopping_cart.wasm")
        );
    }

    #[test]
    fn sdk_sources_become_toml_dependencies() {
        let sdk = fake_sdk("toml");
        let elsewhere = temp_dir("toml-elsewhere");
        let dependency = sdk_dependency(&SdkSource::Path(sdk.clone()), &elsewhere).unwrap();
        let last_line = dependency.lines().last().unwrap();
        assert_eq!(
            last_line,
            format!("tally-sdk = {{ path = \"{}\" }}", sdk.display())
        );
        assert!(dependency.contains("if the checkout moves"), "{dependency}");
        let git = SdkSource::Git {
            url: "https://example.org/tally.git".into(),
        };
        assert_eq!(
            sdk_dependency(&git, &elsewhere).unwrap().lines().last(),
            Some("tally-sdk = { git = \"https://example.org/tally.git\" }")
        );
        assert_eq!(toml_string(r#"C:\a "b""#), r#""C:\\a \"b\"""#);
        let missing = SdkSource::Path(sdk.join("nowhere"));
        assert!(matches!(
            sdk_dependency(&missing, &elsewhere),
            Err(ScaffoldError::SdkNotFound { .. })
        ));
        fs::remove_dir_all(sdk).unwrap();
    }

    #[test]
    fn a_crate_inside_the_checkout_names_the_sdk_by_a_relative_path() {
        let checkout = temp_dir("checkout");
        let sdk = checkout.join("guest-sdk").join("rust");
        fs::create_dir_all(&sdk).unwrap();
        fs::write(sdk.join("Cargo.toml"), "").unwrap();
        fs::write(checkout.join("Cargo.toml"), "").unwrap();
        let crate_dir = checkout.join("plugins").join("mine");
        let dependency = sdk_dependency(&SdkSource::Path(sdk), &crate_dir).unwrap();
        assert_eq!(
            dependency.lines().last(),
            Some("tally-sdk = { path = \"../../guest-sdk/rust\" }"),
            "{dependency}"
        );
        assert!(dependency.contains("relative path"), "{dependency}");
        fs::remove_dir_all(checkout).unwrap();
    }

    #[test]
    fn generates_the_crate_into_a_missing_directory() {
        let sdk = fake_sdk("fresh");
        let root = temp_dir("fresh");
        let dir = root.join("nested").join("shopping-cart");
        let files = generate(&scaffold("shopping-cart", &dir, &sdk)).unwrap();
        assert_crate_files(&files, &dir, "tests/given_when_then.rs");
        let manifest = fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        assert!(manifest.contains("name = \"shopping-cart\""), "{manifest}");
        assert!(manifest.contains("[workspace]"), "{manifest}");
        let lib = fs::read_to_string(dir.join("src/lib.rs")).unwrap();
        assert!(lib.contains("pub struct ShoppingCart {"), "{lib}");
        assert!(lib.contains("= \"shopping-cart\";"), "{lib}");
        assert!(lib.contains("tally_sdk::export!(ShoppingCart);"), "{lib}");
        let readme = fs::read_to_string(dir.join("README.md")).unwrap();
        assert!(
            readme.contains("target/wasm32-wasip2/release/shopping_cart.wasm --activate"),
            "{readme}"
        );
        assert!(!lib.contains("{{") && !readme.contains("{{") && !manifest.contains("{{"));
        fs::remove_dir_all(root).unwrap();
        fs::remove_dir_all(sdk).unwrap();
    }

    #[test]
    fn an_existing_empty_directory_is_used() {
        let sdk = fake_sdk("empty");
        let dir = temp_dir("empty");
        fs::create_dir_all(&dir).unwrap();
        assert_eq!(generate(&scaffold("counter", &dir, &sdk)).unwrap().len(), 5);
        fs::remove_dir_all(dir).unwrap();
        fs::remove_dir_all(sdk).unwrap();
    }

    #[test]
    fn a_non_empty_directory_is_never_overwritten() {
        let sdk = fake_sdk("busy");
        let dir = temp_dir("busy");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("notes.txt"), "mine").unwrap();
        let error = generate(&scaffold("counter", &dir, &sdk)).unwrap_err();
        assert!(
            matches!(error, ScaffoldError::DirNotEmpty { .. }),
            "{error}"
        );
        assert!(
            error.to_string().contains("refusing to overwrite"),
            "{error}"
        );
        let left: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["notes.txt"]);
        assert_eq!(fs::read_to_string(dir.join("notes.txt")).unwrap(), "mine");

        // A second run into a generated plugin is refused as well.
        let plugin = dir.join("counter");
        generate(&scaffold("counter", &plugin, &sdk)).unwrap();
        let before = fs::read_to_string(plugin.join("src/lib.rs")).unwrap();
        let again = generate(&scaffold("counter", &plugin, &sdk)).unwrap_err();
        assert!(
            matches!(again, ScaffoldError::DirNotEmpty { .. }),
            "{again}"
        );
        assert_eq!(
            fs::read_to_string(plugin.join("src/lib.rs")).unwrap(),
            before
        );

        // A file in the way is not a directory.
        let file = dir.join("notes.txt");
        let error = generate(&scaffold("counter", &file, &sdk)).unwrap_err();
        assert!(
            matches!(error, ScaffoldError::NotADirectory { .. }),
            "{error}"
        );
        fs::remove_dir_all(dir).unwrap();
        fs::remove_dir_all(sdk).unwrap();
    }

    #[test]
    fn an_invalid_name_or_sdk_creates_nothing() {
        let sdk = fake_sdk("nothing");
        let dir = temp_dir("nothing");
        assert!(generate(&scaffold("Bad_Name", &dir, &sdk)).is_err());
        assert!(generate(&scaffold("counter", &dir, &sdk.join("missing"))).is_err());
        assert!(!dir.exists());
        fs::remove_dir_all(sdk).unwrap();
    }

    fn projection(name: &str, aggregate_type: &str, dir: &Path, sdk: &Path) -> Scaffold {
        Scaffold {
            kind: Kind::Projection {
                aggregate_type: aggregate_type.to_owned(),
            },
            ..scaffold(name, dir, sdk)
        }
    }

    #[test]
    fn projection_identifiers_derive_from_the_name() {
        assert_eq!(projection_type_ident("cart-totals"), "CartTotals");
        assert_eq!(projection_type_ident("totals"), "TotalsProjection");
        assert_eq!(projection_type_ident("event"), "EventProjection");
        assert_eq!(projection_type_ident("option"), "OptionProjection");
        assert_eq!(projection_type_ident("t-o-t-a-l-s"), "TOTALSProjection");
        assert_eq!(projection_type_ident("command"), "Command");
    }

    #[test]
    fn aggregate_types_are_checked_as_the_host_checks_them() {
        for aggregate_type in ["counter", "bank-account", "2fa", &"a".repeat(MAX_NAME_LEN)] {
            assert!(
                validate_aggregate_type(aggregate_type).is_ok(),
                "{aggregate_type:?} was refused"
            );
        }
        let too_long = "a".repeat(MAX_NAME_LEN + 1);
        for aggregate_type in ["", "Counter", "bank_account", "a--b", "-a", &too_long] {
            let error = validate_aggregate_type(aggregate_type).expect_err(aggregate_type);
            assert!(error.to_string().contains("kebab-case"), "{error}");
        }
    }

    #[test]
    fn generates_a_projection_crate() {
        let sdk = fake_sdk("projection");
        let dir = temp_dir("projection");
        let files = generate(&projection("cart-totals", "shopping-cart", &dir, &sdk)).unwrap();
        assert_crate_files(&files, &dir, "tests/given_then.rs");
        let lib = fs::read_to_string(dir.join("src/lib.rs")).unwrap();
        for expected in [
            "pub struct CartTotals;",
            "pub const AGGREGATE_TYPE: &str = \"shopping-cart\";",
            "const NAME: &'static str = \"cart-totals\";",
            "tally_sdk::export_projection!(CartTotals);",
        ] {
            assert!(lib.contains(expected), "{expected} missing from {lib}");
        }
        let tests = fs::read_to_string(dir.join("tests/given_then.rs")).unwrap();
        assert!(
            tests.contains("use cart_totals::{AGGREGATE_TYPE, CartTotals, TOTALS};"),
            "{tests}"
        );
        let readme = fs::read_to_string(dir.join("README.md")).unwrap();
        assert!(
            readme.contains("tally plugin install target/wasm32-wasip2/release/cart_totals.wasm"),
            "{readme}"
        );
        for file in &files {
            let text = fs::read_to_string(file).unwrap();
            assert!(!text.contains("{{"), "{}: {text}", file.display());
        }
        fs::remove_dir_all(dir).unwrap();
        fs::remove_dir_all(sdk).unwrap();
    }

    #[test]
    fn an_invalid_aggregate_type_creates_nothing() {
        let sdk = fake_sdk("bad-type");
        let dir = temp_dir("bad-type");
        let error = generate(&projection("totals", "Bad_Type", &dir, &sdk)).unwrap_err();
        assert!(
            matches!(&error, ScaffoldError::InvalidAggregateType { aggregate_type, .. }
                if aggregate_type == "Bad_Type"),
            "{error}"
        );
        assert!(!dir.exists());
        fs::remove_dir_all(sdk).unwrap();
    }
}
