//! The Python and JavaScript aggregate plugins of `tally plugin new --lang`: the
//! templates in `python/` and `js/` beside this file, filled in with the plugin's
//! names and where this checkout's SDK (and, for Python, the WIT contract) is. Each
//! plugin records values above zero and keeps their count and total, as the Rust one
//! does; as generated, its tests pass and its build command makes the component.

use std::path::{Path, PathBuf};

use super::{
    ScaffoldError, Values, absolute, checkout_of, crate_ident, fill, pascal_case, unshadowed,
};

/// Names the Python template's module uses, which the state class must not shadow
/// (plus the words Python reserves that PascalCase can make).
const PYTHON_CODE_NAMES: &str = "Record Recorded Aggregate Rejection None True False";
/// Names the JavaScript template's module uses, which the aggregate must not shadow.
const JS_CODE_NAMES: &str = "Rejection";

/// The files of the Python plugin `name` in `crate_dir`, on the SDK in `sdk`.
pub(super) fn python(
    name: &str,
    crate_dir: &Path,
    sdk: &Path,
) -> Result<Vec<(&'static str, String)>, ScaffoldError> {
    let sdk = sdk_dir(sdk, "pyproject.toml")?;
    let checkout =
        checkout_of(&sdk).ok_or_else(|| ScaffoldError::SdkNotFound { path: sdk.clone() })?;
    let mut values = common_values(
        name,
        unshadowed(pascal_case(name), PYTHON_CODE_NAMES, "State"),
    );
    values.push(("sdk_path", path_text(&sdk, crate_dir)?));
    values.push(("wit_path", path_text(&checkout.join("wit"), crate_dir)?));
    let fill = |template: &str| fill(template, &values);
    Ok(vec![
        (
            "pyproject.toml",
            fill(include_str!("python/pyproject.toml")),
        ),
        (".gitignore", fill(include_str!("python/gitignore"))),
        ("README.md", fill(include_str!("python/README.md"))),
        ("domain.py", fill(include_str!("python/domain.py"))),
        ("app.py", fill(include_str!("python/app.py"))),
        ("build.sh", fill(include_str!("python/build.sh"))),
        (
            "tests/test_given_when_then.py",
            fill(include_str!("python/tests/test_given_when_then.py")),
        ),
    ])
}

/// The files of the JavaScript plugin `name` in `crate_dir`, on the SDK in `sdk`.
pub(super) fn javascript(
    name: &str,
    crate_dir: &Path,
    sdk: &Path,
) -> Result<Vec<(&'static str, String)>, ScaffoldError> {
    let sdk = sdk_dir(sdk, "package.json")?;
    let mut values = common_values(
        name,
        unshadowed(pascal_case(name), JS_CODE_NAMES, "Aggregate"),
    );
    values.push(("sdk_spec", format!("file:{}", path_text(&sdk, crate_dir)?)));
    let fill = |template: &str| fill(template, &values);
    Ok(vec![
        ("package.json", fill(include_str!("js/package.json"))),
        (".gitignore", fill(include_str!("js/gitignore"))),
        ("README.md", fill(include_str!("js/README.md"))),
        ("src/index.js", fill(include_str!("js/src/index.js"))),
        (
            "test/given_when_then.test.js",
            fill(include_str!("js/test/given_when_then.test.js")),
        ),
    ])
}

/// What both languages' templates take: the name, the type's name, the component's
/// file name and the description.
fn common_values(name: &str, type_name: String) -> Values {
    vec![
        ("name", name.to_owned()),
        ("Type", type_name),
        ("crate", crate_ident(name)),
        (
            "description",
            format!("Tally plugin: the {name} aggregate."),
        ),
    ]
}

/// The SDK directory `sdk`, absolute, if it holds `marker` (its package's manifest).
fn sdk_dir(sdk: &Path, marker: &str) -> Result<PathBuf, ScaffoldError> {
    let sdk = absolute(sdk)?;
    if sdk.join(marker).is_file() {
        Ok(sdk)
    } else {
        Err(ScaffoldError::SdkNotFound { path: sdk })
    }
}

/// `target` as the generated files name it: relative to `crate_dir` when both are in
/// the same checkout (the checkout can move with the plugin inside it), else absolute.
fn path_text(target: &Path, crate_dir: &Path) -> Result<String, ScaffoldError> {
    let crate_dir = absolute(crate_dir)?;
    let relative = checkout_of(target)
        .filter(|checkout| crate_dir.starts_with(checkout))
        .and_then(|_| pathdiff::diff_paths(target, &crate_dir));
    let path = relative.as_deref().unwrap_or(target);
    path.to_str()
        .map(str::to_owned)
        .ok_or_else(|| ScaffoldError::NonUtf8Path {
            path: target.to_owned(),
        })
}
