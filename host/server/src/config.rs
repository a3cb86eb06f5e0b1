//! The configuration of `tally serve`: every setting is a flag, an environment
//! variable `TALLY_*` and a key of an optional TOML file, in that order of
//! precedence, over a documented default.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use serde::Deserialize;
use tally_runtime::RuntimeConfig;
use tally_runtime::tally_store::tally_wal::FsyncPolicy;
use tally_runtime::tally_store_postgres::PostgresConfig;

use tally_projections::ProjectionsConfig;

use crate::api::ApiLimits;
use crate::api::auth::AdminToken;

/// Flags of `tally serve` (each also `TALLY_<NAME>`).
#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    /// TOML file with any of the settings below (keys in snake_case).
    #[arg(long, env = "TALLY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data directory [default: ./tally-data].
    #[arg(long, env = "TALLY_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Where the events are: `embedded` (the write-ahead log in the data directory) or
    /// a PostgreSQL database, `postgres://USER@HOST:PORT/DB` (or libpq's `key=value`
    /// form), which several hosts may share; several `HOST:PORT` with
    /// `target_session_attrs=read-write` follow the primary after a failover
    /// [default: embedded].
    #[arg(long, env = "TALLY_STORE", hide_env_values = true)]
    pub store: Option<String>,
    /// Most connections to PostgreSQL (with --store postgres://...) [default: 8].
    #[arg(long, env = "TALLY_STORE_POOL")]
    pub store_pool: Option<usize>,
    /// Address to listen on, `HOST:PORT` (a name such as `localhost` is resolved)
    /// [default: 127.0.0.1:7070].
    #[arg(long, env = "TALLY_LISTEN", value_parser = parse_listen)]
    pub listen: Option<SocketAddr>,
    /// When appends are acknowledged: `durable` (after fsync), `batch:<ms>` (fsync
    /// every <ms>, answered once synced) or `os` (no fsync) [default: durable].
    #[arg(long, env = "TALLY_FSYNC")]
    pub fsync: Option<String>,
    /// Install every `.wasm` component in this directory at start, aggregate plugins
    /// (activated) and projections; a missing or unreadable directory, or a component
    /// that cannot be installed, stops the start.
    #[arg(long, env = "TALLY_PLUGINS")]
    pub plugins: Option<PathBuf>,
    /// With --plugins: install and activate new or changed components live (one that
    /// fails then is logged, and the service keeps the plugins it has).
    #[arg(long, env = "TALLY_WATCH")]
    pub watch: bool,
    /// Bearer token required by the admin endpoints (required to listen beyond
    /// loopback).
    #[arg(long, env = "TALLY_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Largest command request body in bytes [default: 1048576].
    #[arg(long, env = "TALLY_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Largest plugin upload in bytes [default: 67108864].
    #[arg(long, env = "TALLY_MAX_PLUGIN_BYTES")]
    pub max_plugin_bytes: Option<usize>,
    /// Time a client has to send a request's headers, in milliseconds; the
    /// connection is closed after it [default: 10000].
    #[arg(long, env = "TALLY_HEADER_TIMEOUT_MS")]
    pub header_timeout_ms: Option<u64>,
    /// Time a client has to send a request's body, in milliseconds; answered 408
    /// after it [default: 60000].
    #[arg(long, env = "TALLY_BODY_TIMEOUT_MS")]
    pub body_timeout_ms: Option<u64>,
    /// CPU limit of one plugin call in milliseconds [default: 1000].
    #[arg(long, env = "TALLY_CALL_TIMEOUT_MS")]
    pub call_timeout_ms: Option<u64>,
    /// Memory limit of one plugin instance in MiB [default: 64].
    #[arg(long, env = "TALLY_PLUGIN_MEMORY_MIB")]
    pub plugin_memory_mib: Option<usize>,
    /// Memory for cached aggregate states in MiB [default: 256].
    #[arg(long, env = "TALLY_CACHE_MIB")]
    pub cache_mib: Option<usize>,
    /// Events between snapshots of an aggregate; 0 turns them off [default: 1000].
    #[arg(long, env = "TALLY_SNAPSHOT_EVERY")]
    pub snapshot_every: Option<u64>,
    /// Log format: `text` or `json` [default: text]; filter with RUST_LOG.
    #[arg(long, env = "TALLY_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// Directory of compiled plugins, shareable between data directories of the
    /// same build [default: DATA_DIR/compile-cache].
    #[arg(long, env = "TALLY_COMPILE_CACHE")]
    pub compile_cache: Option<PathBuf>,
    /// Most live event streams (`/v1/subscribe`) open at once; more are answered 503
    /// `too-many-subscribers` [default: 10000].
    #[arg(long, env = "TALLY_MAX_SUBSCRIBERS")]
    pub max_subscribers: Option<NonZeroUsize>,
    /// Events a live event stream reads from the log at a time while it catches up,
    /// and most events per page of the shared live reader: bounds what each
    /// subscriber holds [default: 128].
    #[arg(long, env = "TALLY_SUBSCRIBER_PAGE")]
    pub subscriber_page: Option<NonZeroUsize>,
    /// Most events a projection applies in one batch (one plugin call, one read-model
    /// transaction) [default: 10000].
    #[arg(long, env = "TALLY_PROJECTION_BATCH")]
    pub projection_batch: Option<usize>,
    /// About how long one batch of a projection should take, in milliseconds: batches
    /// are sized from the time per event of the last ones, up to --projection-batch
    /// [default: 10].
    #[arg(long, env = "TALLY_PROJECTION_BATCH_MS")]
    pub projection_batch_ms: Option<u64>,
    /// Longest a projection read with `min_position` waits for the projection to
    /// reach it, in milliseconds [default: 5000].
    #[arg(long, env = "TALLY_PROJECTION_WAIT_MS")]
    pub projection_wait_ms: Option<u64>,
    /// Longest time between durable commits of a projection's read model while events
    /// keep coming, in milliseconds: what a crash can make a projection apply again
    /// (never twice into its read model); 0 makes every batch durable [default: 1000].
    #[arg(long, env = "TALLY_PROJECTION_DURABLE_MS")]
    pub projection_durable_ms: Option<u64>,
}

/// The same settings in the TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    data_dir: Option<PathBuf>,
    store: Option<String>,
    store_pool: Option<usize>,
    listen: Option<String>,
    fsync: Option<String>,
    plugins: Option<PathBuf>,
    watch: Option<bool>,
    admin_token: Option<String>,
    max_body_bytes: Option<usize>,
    max_plugin_bytes: Option<usize>,
    header_timeout_ms: Option<u64>,
    body_timeout_ms: Option<u64>,
    call_timeout_ms: Option<u64>,
    plugin_memory_mib: Option<usize>,
    cache_mib: Option<usize>,
    snapshot_every: Option<u64>,
    log_format: Option<String>,
    compile_cache: Option<PathBuf>,
    max_subscribers: Option<NonZeroUsize>,
    subscriber_page: Option<NonZeroUsize>,
    projection_batch: Option<usize>,
    projection_batch_ms: Option<u64>,
    projection_wait_ms: Option<u64>,
    projection_durable_ms: Option<u64>,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The resolved settings of the service.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The data directory (`--data-dir`): the runtime's directories are laid out in it
    /// ([`RuntimeConfig::new`]).
    pub data_dir: PathBuf,
    /// Where to listen.
    pub listen: SocketAddr,
    /// Components installed at start.
    pub plugins: Option<PathBuf>,
    /// Install changed components live.
    pub watch: bool,
    /// The admin token.
    pub admin_token: Option<AdminToken>,
    /// API limits.
    pub limits: ApiLimits,
    /// The runtime's settings.
    pub runtime: RuntimeConfig,
    /// Log format.
    pub log_format: LogFormat,
    /// The projections' settings.
    pub projections: ProjectionsConfig,
}

impl ServeConfig {
    /// Resolves flags and environment over the file over the defaults, and checks
    /// the result.
    pub fn resolve(args: ServeArgs) -> anyhow::Result<ServeConfig> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileSettings::default(),
        };
        let data_dir = args
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("./tally-data"));
        let file_listen = file
            .listen
            .as_deref()
            .map(parse_listen)
            .transpose()
            .map_err(|error| anyhow::anyhow!("listen in the configuration file: {error}"))?;
        let listen = args
            .listen
            .or(file_listen)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 7070)));
        let admin_token = args
            .admin_token
            .or(file.admin_token)
            .filter(|t| !t.is_empty())
            .map(|token| AdminToken::new(&token))
            .transpose()
            .map_err(anyhow::Error::msg)?;
        if !listen.ip().is_loopback() && admin_token.is_none() {
            anyhow::bail!(
                "refusing to listen on {listen} (not loopback) without an admin token: \
                 set --admin-token or TALLY_ADMIN_TOKEN"
            );
        }
        let fsync = parse_fsync(args.fsync.or(file.fsync).as_deref().unwrap_or("durable"))?;
        let log_format = match args.log_format.or(file.log_format).as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => anyhow::bail!("unknown log format {other:?}: use text or json"),
        };

        let mut runtime = RuntimeConfig::new(&data_dir);
        runtime.store.wal.fsync_policy = fsync;
        runtime.postgres = postgres_config(
            args.store.or(file.store).as_deref(),
            args.store_pool.or(file.store_pool),
        )?;
        if let Some(ms) = args.call_timeout_ms.or(file.call_timeout_ms) {
            anyhow::ensure!(ms > 0, "call_timeout_ms must be at least 1");
            runtime.engine.call_timeout = Duration::from_millis(ms);
        }
        if let Some(mib) = args.plugin_memory_mib.or(file.plugin_memory_mib) {
            anyhow::ensure!(mib > 0, "plugin_memory_mib must be at least 1");
            runtime.engine.memory_limit = mib << 20;
        }
        if let Some(mib) = args.cache_mib.or(file.cache_mib) {
            runtime.state_cache_bytes = mib << 20;
        }
        if let Some(dir) = args.compile_cache.or(file.compile_cache) {
            runtime.engine.cache_dir = Some(dir);
        }
        if let Some(every) = args.snapshot_every.or(file.snapshot_every) {
            runtime.snapshot_every = every;
        }
        if let Some(page) = args.subscriber_page.or(file.subscriber_page) {
            runtime.store.subscription_page = page.get();
        }
        let max_subscribers = args.max_subscribers.or(file.max_subscribers);
        let defaults = ApiLimits::default();
        let millis = |name: &str, value: Option<u64>, default: Duration| match value {
            Some(0) => anyhow::bail!("{name} must be at least 1"),
            Some(ms) => Ok(Duration::from_millis(ms)),
            None => Ok(default),
        };
        let limits = ApiLimits {
            header_read_timeout: millis(
                "header_timeout_ms",
                args.header_timeout_ms.or(file.header_timeout_ms),
                defaults.header_read_timeout,
            )?,
            body_read_timeout: millis(
                "body_timeout_ms",
                args.body_timeout_ms.or(file.body_timeout_ms),
                defaults.body_read_timeout,
            )?,
            max_body_bytes: args
                .max_body_bytes
                .or(file.max_body_bytes)
                .unwrap_or(defaults.max_body_bytes),
            max_plugin_bytes: args
                .max_plugin_bytes
                .or(file.max_plugin_bytes)
                .unwrap_or(defaults.max_plugin_bytes),
            max_id_len: runtime.store.max_name_len,
            max_subscribers: max_subscribers.map_or(defaults.max_subscribers, NonZeroUsize::get),
            ..defaults
        };
        let mut projections = ProjectionsConfig::new(data_dir.join("projections"));
        if let Some(batch) = args.projection_batch.or(file.projection_batch) {
            anyhow::ensure!(batch > 0, "projection_batch must be at least 1");
            projections.projector.batch_events = batch;
        }
        projections.projector.batch_time = millis(
            "projection_batch_ms",
            args.projection_batch_ms.or(file.projection_batch_ms),
            projections.projector.batch_time,
        )?;
        if let Some(ms) = args.projection_durable_ms.or(file.projection_durable_ms) {
            projections.projector.durable_every = Duration::from_millis(ms);
        }
        projections.max_wait = millis(
            "projection_wait_ms",
            args.projection_wait_ms.or(file.projection_wait_ms),
            projections.max_wait,
        )?;
        Ok(ServeConfig {
            projections,
            data_dir,
            listen,
            plugins: args.plugins.or(file.plugins),
            watch: args.watch || file.watch.unwrap_or(false),
            admin_token,
            limits,
            runtime,
            log_format,
        })
    }
}

/// The PostgreSQL store `store` names (`None`: the embedded store), with a pool of
/// `pool` connections.
fn postgres_config(
    store: Option<&str>,
    pool: Option<usize>,
) -> anyhow::Result<Option<PostgresConfig>> {
    let connection = match store.map(str::trim) {
        None | Some("" | "embedded") => {
            anyhow::ensure!(
                pool.is_none(),
                "store_pool is for a PostgreSQL store (--store postgres://...)"
            );
            return Ok(None);
        }
        Some(connection) => connection,
    };
    let mut config = PostgresConfig::new(connection).map_err(|error| {
        anyhow::anyhow!(
            "store: use `embedded` or a PostgreSQL connection string \
             (postgres://USER@HOST:PORT/DB): {error}"
        )
    })?;
    if let Some(pool) = pool {
        anyhow::ensure!(pool >= 2, "store_pool must be at least 2");
        config.pool_size = pool;
    }
    Ok(Some(config))
}

fn read_file(path: &Path) -> anyhow::Result<FileSettings> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| anyhow::anyhow!("cannot read config file {}: {error}", path.display()))?;
    toml::from_str(&text)
        .map_err(|error| anyhow::anyhow!("config file {}: {error}", path.display()))
}

/// `durable`, `batch:<ms>` or `os`.
pub fn parse_fsync(text: &str) -> anyhow::Result<FsyncPolicy> {
    match text {
        "durable" | "always" => Ok(FsyncPolicy::Always),
        "os" => Ok(FsyncPolicy::Os),
        other => match other.strip_prefix("batch:") {
            Some(ms) => {
                let ms: u64 = ms
                    .trim_end_matches("ms")
                    .parse()
                    .map_err(|_| anyhow::anyhow!("bad fsync interval in {other:?}"))?;
                anyhow::ensure!(ms > 0, "the batch interval must be at least 1 ms");
                Ok(FsyncPolicy::Batch(Duration::from_millis(ms)))
            }
            None => anyhow::bail!("unknown fsync policy {other:?}: use durable, batch:<ms> or os"),
        },
    }
}

/// The address to listen on: `IP:PORT`, or `HOST:PORT` with a name that resolves
/// (the first address it resolves to).
fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    let mut addresses = text
        .to_socket_addrs()
        .map_err(|error| format!("{text:?} is not an address to listen on (HOST:PORT): {error}"))?;
    addresses
        .next()
        .ok_or_else(|| format!("{text:?} resolves to no address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_file_and_defaults_fill_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tally.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9000\"\ncache_mib = 8\nfsync = \"os\"\n",
        )
        .unwrap();
        let config = ServeConfig::resolve(ServeArgs {
            config: Some(file),
            cache_mib: Some(16),
            ..ServeArgs::default()
        })
        .unwrap();
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(config.runtime.state_cache_bytes, 16 << 20);
        assert_eq!(config.runtime.store.wal.fsync_policy, FsyncPolicy::Os);
        assert_eq!(config.data_dir, PathBuf::from("./tally-data"));
        assert_eq!(config.limits.max_body_bytes, 1 << 20);
    }

    #[test]
    fn the_store_is_embedded_unless_a_postgres_connection_is_given() {
        let resolve = |store: Option<&str>, pool: Option<usize>| {
            ServeConfig::resolve(ServeArgs {
                store: store.map(str::to_owned),
                store_pool: pool,
                ..ServeArgs::default()
            })
        };
        assert!(resolve(None, None).unwrap().runtime.postgres.is_none());
        assert!(
            resolve(Some("embedded"), None)
                .unwrap()
                .runtime
                .postgres
                .is_none()
        );
        let postgres = resolve(Some("postgres://tally@127.0.0.1:5432/events"), Some(4))
            .unwrap()
            .runtime
            .postgres
            .expect("a PostgreSQL store");
        assert_eq!(postgres.pool_size, 4);
        assert_eq!(postgres.connection.get_dbname(), Some("events"));
        let refused = [
            (Some("mysql://somewhere/db"), None, "connection string"),
            (Some("postgres://h/db"), Some(1), "at least 2"),
            (None, Some(4), "PostgreSQL store"),
        ];
        for (store, pool, expected) in refused {
            let error = resolve(store, pool).unwrap_err().to_string();
            assert!(error.contains(expected), "{store:?} {pool:?}: {error}");
        }
    }

    #[test]
    fn the_subscriber_cap_and_page_come_from_the_file_and_zero_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tally.toml");
        std::fs::write(&file, "max_subscribers = 5\nsubscriber_page = 32\n").unwrap();
        let config = ServeConfig::resolve(ServeArgs {
            config: Some(file),
            ..ServeArgs::default()
        })
        .unwrap();
        assert_eq!(config.limits.max_subscribers, 5);
        assert_eq!(config.runtime.store.subscription_page, 32);
        let defaults = ServeConfig::resolve(ServeArgs::default()).unwrap();
        assert_eq!(defaults.limits.max_subscribers, 10_000);
        for zero in ["max_subscribers = 0\n", "subscriber_page = 0\n"] {
            let file = dir.path().join("zero.toml");
            std::fs::write(&file, zero).unwrap();
            let error = ServeConfig::resolve(ServeArgs {
                config: Some(file),
                ..ServeArgs::default()
            })
            .unwrap_err()
            .to_string();
            assert!(error.contains("nonzero"), "{zero}: {error}");
        }
    }

    #[test]
    fn projection_settings_come_from_the_file_or_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tally.toml");
        std::fs::write(
            &file,
            "projection_batch = 250\nprojection_batch_ms = 3\nprojection_durable_ms = 0\n\
             projection_wait_ms = 70\n",
        )
        .unwrap();
        let config = ServeConfig::resolve(ServeArgs {
            config: Some(file),
            projection_wait_ms: Some(80),
            ..ServeArgs::default()
        })
        .unwrap();
        let projector = config.projections.projector;
        assert_eq!(projector.batch_events, 250);
        assert_eq!(projector.batch_time, Duration::from_millis(3));
        assert_eq!(projector.durable_every, Duration::ZERO);
        assert_eq!(config.projections.max_wait, Duration::from_millis(80));
        let defaults = ServeConfig::resolve(ServeArgs::default()).unwrap();
        assert_eq!(
            defaults.projections.projector.durable_every,
            Duration::from_secs(1)
        );
    }

    #[test]
    fn listen_takes_a_host_name_or_an_address() {
        assert!(parse_listen("localhost:7070").unwrap().ip().is_loopback());
        assert_eq!(
            parse_listen("127.0.0.1:9").unwrap(),
            SocketAddr::from(([127, 0, 0, 1], 9))
        );
        for bad in ["localhost", "127.0.0.1:http", ":7070"] {
            assert!(parse_listen(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_settings_are_refused_with_a_reason() {
        let open = ServeArgs {
            listen: Some("0.0.0.0:7070".parse().unwrap()),
            ..ServeArgs::default()
        };
        let error = ServeConfig::resolve(open).unwrap_err().to_string();
        assert!(error.contains("admin token"), "{error}");
        let short_token = ServeArgs {
            admin_token: Some("s3cret".into()),
            ..ServeArgs::default()
        };
        let error = ServeConfig::resolve(short_token).unwrap_err().to_string();
        assert!(error.contains("at least 16"), "{error}");
        assert!(parse_fsync("sometimes").is_err());
        assert_eq!(
            parse_fsync("batch:5ms").unwrap(),
            FsyncPolicy::Batch(Duration::from_millis(5))
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, "no_such_key = 1\n").unwrap();
        let error = ServeConfig::resolve(ServeArgs {
            config: Some(file),
            ..ServeArgs::default()
        })
        .unwrap_err()
        .to_string();
        assert!(error.contains("no_such_key"), "{error}");
    }
}
