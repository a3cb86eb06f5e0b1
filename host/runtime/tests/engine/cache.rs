//! The on-disk compile cache: a second engine on the same directory loads
//! compiled code instead of compiling; a corrupt entry is recompiled.

use std::time::Instant;

use tally_runtime::{CacheStatus, EngineConfig, LoadedPlugin, PluginEngine};
use tally_test_support::components;

use crate::{bytes, test_config};

fn engine_on(dir: &std::path::Path) -> PluginEngine {
    PluginEngine::new(EngineConfig {
        cache_dir: Some(dir.to_owned()),
        ..test_config()
    })
    .unwrap()
}

fn entries(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "cwasm"))
        .collect()
}

#[test]
fn a_second_engine_hits_the_cache_and_a_corrupt_entry_is_recompiled() {
    let dir = tempfile::tempdir().unwrap();
    let v1 = bytes(components::BANK_ACCOUNT_V1);

    let started = Instant::now();
    let first = LoadedPlugin::load(&engine_on(dir.path()), &v1).unwrap();
    let compiled_in = started.elapsed();
    assert_eq!(first.cache_status(), CacheStatus::Miss);
    let files = entries(dir.path());
    assert_eq!(files.len(), 1, "{files:?}");

    let started = Instant::now();
    let second = LoadedPlugin::load(&engine_on(dir.path()), &v1).unwrap();
    let cached_in = started.elapsed();
    assert_eq!(second.cache_status(), CacheStatus::Hit);
    assert_eq!(second.info(), first.info());
    assert!(second.instance().initial_state().is_ok());
    eprintln!("bank-account v1 load: compiled {compiled_in:?}, from cache {cached_in:?}");

    // Flip one byte of the compiled code: the checksum catches it.
    let mut file = std::fs::read(&files[0]).unwrap();
    let middle = file.len() / 2;
    file[middle] ^= 0x40;
    std::fs::write(&files[0], &file).unwrap();
    let third = LoadedPlugin::load(&engine_on(dir.path()), &v1).unwrap();
    assert_eq!(third.cache_status(), CacheStatus::Replaced);
    assert!(third.instance().initial_state().is_ok());
    // A truncated file too.
    std::fs::write(&files[0], &file[..10]).unwrap();
    let fourth = LoadedPlugin::load(&engine_on(dir.path()), &v1).unwrap();
    assert_eq!(fourth.cache_status(), CacheStatus::Replaced);
    // The rewritten entry is good again.
    let fifth = LoadedPlugin::load(&engine_on(dir.path()), &v1).unwrap();
    assert_eq!(fifth.cache_status(), CacheStatus::Hit);
    assert_eq!(entries(dir.path()).len(), 1);
}

#[test]
fn an_engine_with_other_code_generation_settings_does_not_share_entries() {
    let dir = tempfile::tempdir().unwrap();
    let panic_plugin = bytes(components::TEST_PANIC);
    let plain = LoadedPlugin::load(&engine_on(dir.path()), &panic_plugin).unwrap();
    assert_eq!(plain.cache_status(), CacheStatus::Miss);
    let optimised = PluginEngine::new(EngineConfig {
        cache_dir: Some(dir.path().to_owned()),
        optimize: true,
        ..test_config()
    })
    .unwrap();
    let loaded = LoadedPlugin::load(&optimised, &panic_plugin).unwrap();
    assert_eq!(loaded.cache_status(), CacheStatus::Miss);
    assert_eq!(entries(dir.path()).len(), 2);
}

#[test]
fn without_a_cache_directory_every_load_compiles() {
    let loaded = LoadedPlugin::load(crate::engine(), &bytes(components::TEST_IMPOSTOR)).unwrap();
    assert_eq!(loaded.cache_status(), CacheStatus::Disabled);
}
