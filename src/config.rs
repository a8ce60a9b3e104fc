//! The TOML configuration: a store, keys and compression at the top as
//! defaults, and sets, each with its sources and optional overrides.
//!
//! Looked up in `--config`, `SLUICE_CONFIG`, `./sluice.toml`, then
//! `/etc/sluice/sluice.toml`; without one, flags alone describe a set.
//! Strings may use `${VAR}` (an environment variable; `$$` is a literal `$`),
//! so secrets stay in the environment. An unset variable is an error: at
//! once outside `[sets]`, and for a set only when that set is used, so one
//! host's env file needs only the secrets of the sets it runs.
//! Unknown keys are errors, so a typo never silently changes a backup.

use std::{
    cell::RefCell,
    collections::{BTreeMap, BTreeSet},
    fmt,
    path::{Path, PathBuf},
    str::FromStr,
    time::Duration,
};

use serde::{Deserialize, Deserializer, de::Error as _};

use crate::{catalog::validate_set_name, source::Source};

/// Where the config is looked for when neither `--config` nor
/// `SLUICE_CONFIG` names one.
pub const DEFAULT_PATHS: [&str; 2] = ["sluice.toml", "/etc/sluice/sluice.toml"];

/// The default part size: 16 MiB, which caps an object at about 156 GiB on
/// S3's 10,000 parts when the source gives no size hint.
pub const DEFAULT_PART_SIZE: u64 = 16 * 1024 * 1024;

/// A configuration problem.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("could not read config file `{}`: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not match the schema.
    #[error("config file `{}` is invalid: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// toml's message, with line and column.
        message: String,
    },
    /// A value is valid TOML but wrong.
    #[error("config: {0}")]
    Invalid(String),
    /// No store is configured for a set.
    #[error(
        "no store for set `{0}`: set `url` under [store] in the config (e.g. \"file:///var/backups/sluice\"), or pass --store URL"
    )]
    NoStore(String),
    /// A backup was asked for a set without sources.
    #[error("set `{set}` has no sources: {hint}")]
    NoSources {
        /// The set.
        set: String,
        /// What to do.
        hint: String,
    },
    /// A flag is wrong.
    #[error("{0}")]
    Usage(String),
    /// A set names environment variables that are not set.
    #[error(
        "set `{set}` uses {}, not set; set {} (a timer's service reads /etc/sluice/{set}.env), or write $$ for a literal $",
        names.iter().map(|n| format!("${{{n}}}")).collect::<Vec<_>>().join(", "),
        if names.len() == 1 { "it" } else { "them" }
    )]
    UnsetVariables {
        /// The set.
        set: String,
        /// The variables, as the config names them.
        names: Vec<String>,
    },
}

/// The whole configuration file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Config {
    /// The default store.
    #[serde(default)]
    pub store: Option<StoreConfig>,
    /// The default keys.
    #[serde(default)]
    pub keys: Option<KeysConfig>,
    /// The default compression.
    #[serde(default)]
    pub compression: Option<Compression>,
    /// The default retention policy of every set.
    #[serde(default)]
    pub retention: Option<Retention>,
    /// The default notifications of every set.
    #[serde(default)]
    pub notify: Option<NotifyConfig>,
    /// Whether `backup` prunes a set with retention after it succeeds
    /// (default true); false when a separate pruner does it, as with the
    /// least-privilege credentials of README, "Least privilege".
    #[serde(default)]
    pub prune_after_backup: Option<bool>,
    /// The sets, by name.
    #[serde(default)]
    pub sets: BTreeMap<String, SetConfig>,
    /// Sets whose `${VAR}`s are not all set, with the names missing: such a
    /// set parsed with those variables empty and is refused by
    /// [`Config::set`], while the other sets work.
    #[serde(skip)]
    pub unset_variables: BTreeMap<String, UnsetVariables>,
}

/// `[store]`: where backups go.
///
/// `url`, `part-size` and `parallel-parts` apply to every store; the other
/// keys configure `s3://` stores and are ignored by `file://` ones.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct StoreConfig {
    /// `file:///absolute/path` or `s3://bucket/prefix` (the prefix is optional).
    #[serde(deserialize_with = "env_string")]
    pub url: String,
    /// Size of each stored part (`"16MiB"`); parts are checked one by one on restore.
    #[serde(default = "default_part_size")]
    pub part_size: ByteSize,
    /// Parts uploaded or downloaded at once.
    #[serde(default = "default_parallel_parts")]
    pub parallel_parts: usize,
    /// S3 endpoint of an S3-compatible server (`"http://127.0.0.1:9000"`);
    /// omit for AWS.
    #[serde(default, deserialize_with = "env_opt_string")]
    pub endpoint: Option<String>,
    /// S3 region; omit to use the SDK's (`AWS_REGION`, the profile).
    #[serde(default, deserialize_with = "env_opt_string")]
    pub region: Option<String>,
    /// Address buckets as `endpoint/bucket` instead of `bucket.endpoint`
    /// (MinIO and most self-hosted servers need it).
    #[serde(default)]
    pub path_style: bool,
    /// Storage class of data objects (`"STANDARD_IA"`, ...); manifests stay
    /// in the bucket's default class so listing stays cheap and immediate.
    #[serde(default)]
    pub storage_class: Option<String>,
    /// Server-side encryption: `"AES256"` or `"aws:kms"`.
    #[serde(default)]
    pub sse: Option<String>,
    /// KMS key for `sse = "aws:kms"`; omit for the bucket's default key.
    #[serde(default, deserialize_with = "env_opt_string")]
    pub sse_kms_key_id: Option<String>,
    /// Whether the S3 client sends and checks checksums on every request
    /// that supports them, or only where S3 requires them.
    #[serde(default)]
    pub checksums: Checksums,
    /// S3 Object Lock: every backup object and manifest is written with a
    /// retention (`{ mode = "governance", days = 30 }`), so that nobody can
    /// delete or overwrite it before then, and `prune` keeps (and reports)
    /// what is still locked. The bucket must have Object Lock enabled; an
    /// `s3://` store only.
    #[serde(default)]
    pub object_lock: Option<ObjectLock>,
    /// Per-attempt time to connect to S3 (`"10s"`).
    #[serde(default = "default_connect_timeout", deserialize_with = "duration")]
    pub connect_timeout: Duration,
    /// Per-attempt time from sending a request (a whole part, for an
    /// upload) until S3's answer starts (`"120s"`); allow for `part-size`
    /// at the upload bandwidth.
    #[serde(default = "default_read_timeout", deserialize_with = "duration")]
    pub read_timeout: Duration,
    /// How long a backup may move no bytes at all (nothing read from the
    /// source, no part stored) before it fails (`"10m"`; `"0s"` turns the
    /// watchdog off). Catches what per-attempt timeouts cannot: a server
    /// that trickles, a dump that hangs.
    #[serde(default = "default_stall_timeout", deserialize_with = "duration")]
    pub stall_timeout: Duration,
    /// How long a set's lease lasts unless renewed (`"5m"`); a run renews
    /// it every quarter of that, and a crashed run's lease lapses after it.
    #[serde(default = "default_lease_ttl", deserialize_with = "duration")]
    pub lease_ttl: Duration,
    /// Attempts per S3 request (at least 1) before the run fails.
    #[serde(default = "default_attempts")]
    pub attempts: u32,
    /// Delay before the first retry; it doubles with each further one, up
    /// to 20 s (`"500ms"`).
    #[serde(default = "default_retry_delay", deserialize_with = "duration")]
    pub retry_delay: Duration,
}

/// `checksums` under `[store]`: when the S3 client computes request
/// checksums and validates response checksums.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Checksums {
    /// On every operation that supports them (the SDK's default).
    #[default]
    Always,
    /// Only where S3 requires them; for S3-compatible servers that reject
    /// the SDK's default checksum headers.
    WhenRequired,
}

/// `object-lock = { mode = "…", days = N }` under `[store]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ObjectLock {
    /// Who may lift the retention early.
    pub mode: LockMode,
    /// How long each object is retained after it is written.
    pub days: std::num::NonZeroU32,
}

/// The S3 Object Lock retention mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LockMode {
    /// Users with `s3:BypassGovernanceRetention` can still delete early.
    Governance,
    /// Nobody can delete before the date, not even the account's root user.
    Compliance,
}

fn default_part_size() -> ByteSize {
    ByteSize(DEFAULT_PART_SIZE)
}

fn default_parallel_parts() -> usize {
    4
}

fn default_connect_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_read_timeout() -> Duration {
    Duration::from_secs(120)
}

fn default_stall_timeout() -> Duration {
    Duration::from_secs(600)
}

fn default_hook_timeout() -> Duration {
    Duration::from_secs(300)
}

fn default_notify_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_lease_ttl() -> Duration {
    Duration::from_secs(300)
}

fn default_attempts() -> u32 {
    5
}

fn default_retry_delay() -> Duration {
    Duration::from_millis(500)
}

impl StoreConfig {
    /// A store at `url` with default settings.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            part_size: default_part_size(),
            parallel_parts: default_parallel_parts(),
            endpoint: None,
            region: None,
            path_style: false,
            storage_class: None,
            sse: None,
            sse_kms_key_id: None,
            checksums: Checksums::default(),
            object_lock: None,
            connect_timeout: default_connect_timeout(),
            read_timeout: default_read_timeout(),
            stall_timeout: default_stall_timeout(),
            lease_ttl: default_lease_ttl(),
            attempts: default_attempts(),
            retry_delay: default_retry_delay(),
        }
    }
}

/// `[keys]`: who can open what.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct KeysConfig {
    /// Public keys that open full copies.
    #[serde(default, deserialize_with = "env_strings")]
    pub recipients: Vec<String>,
    /// Public keys that open anonymized copies (developers' keys); they
    /// never open full copies.
    #[serde(default, deserialize_with = "env_strings")]
    pub anonymized_recipients: Vec<String>,
    /// The file holding this host's signing key (`sluice keygen
    /// --signing`): `backup` signs every manifest with it, and `restore`
    /// its safety backups. A path, not the key; relative to the config
    /// file's directory.
    #[serde(default, deserialize_with = "env_opt_path")]
    pub signing_key: Option<PathBuf>,
    /// Public keys (`sluicesign1…`) whose signatures `restore`, `fetch` and
    /// `verify` accept; several while a signing key is being replaced.
    #[serde(default, deserialize_with = "env_strings")]
    pub trusted_signers: Vec<String>,
}

/// `[compression]`: zstd settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Compression {
    /// zstd level, 1 (fastest) to 19; default 3.
    #[serde(default = "default_level")]
    pub level: i32,
    /// Worker threads; 0 (the default) means one per available core.
    #[serde(default)]
    pub threads: u32,
}

fn default_level() -> i32 {
    3
}

impl Default for Compression {
    fn default() -> Self {
        Self {
            level: default_level(),
            threads: 0,
        }
    }
}

/// `retention = { … }`: which backups `sluice prune` keeps (see
/// [`crate::retention`]). Every `keep-*` count is a number of backups (of
/// hours, days, … for the calendar rules); 0 or absent turns a rule off.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Retention {
    /// The N newest backups.
    #[serde(default)]
    pub keep_last: u32,
    /// The newest backup of each of the N newest UTC hours that have one.
    #[serde(default)]
    pub keep_hourly: u32,
    /// The newest backup of each of the N newest UTC days that have one.
    #[serde(default)]
    pub keep_daily: u32,
    /// The newest backup of each of the N newest ISO weeks that have one.
    #[serde(default)]
    pub keep_weekly: u32,
    /// The newest backup of each of the N newest months that have one.
    #[serde(default)]
    pub keep_monthly: u32,
    /// The newest backup of each of the N newest years that have one.
    #[serde(default)]
    pub keep_yearly: u32,
    /// Every backup younger than this (`"7d"`).
    #[serde(default, deserialize_with = "opt_duration")]
    pub keep_within: Option<Duration>,
    /// Pre-restore safety backups younger than this are kept, older ones
    /// removed (`"7d"`, the default); no other rule keeps them.
    #[serde(default = "default_pre_restore_within", deserialize_with = "duration")]
    pub pre_restore_within: Duration,
}

fn default_pre_restore_within() -> Duration {
    Duration::from_secs(7 * 24 * 3600)
}

impl Retention {
    /// Refuses a policy with no `keep-*` rule: it would remove every
    /// backup but the newest, which is never what a typo meant.
    fn validate(&self, what: &str) -> Result<(), ConfigError> {
        let counts = [
            self.keep_last,
            self.keep_hourly,
            self.keep_daily,
            self.keep_weekly,
            self.keep_monthly,
            self.keep_yearly,
        ];
        if counts.iter().all(|&n| n == 0) && self.keep_within.is_none() {
            return Err(ConfigError::Invalid(format!(
                "{what} has no keep-* rule, so prune would remove every backup but the newest: add one (e.g. keep-daily = 7), or remove `retention` to keep every backup"
            )));
        }
        Ok(())
    }
}

/// `notify = { … }`: who hears about each backup (see [`crate::notify`]).
/// Every URL is optional; each is `http://` or `https://` and may carry
/// `user:password@` for basic authentication.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct NotifyConfig {
    /// POSTed to when a backup starts (healthchecks.io:
    /// `"https://hc-ping.com/UUID/start"`).
    #[serde(default, deserialize_with = "env_opt_string")]
    pub start: Option<String>,
    /// POSTed to, with a one-line summary, when a backup succeeds
    /// (`"https://hc-ping.com/UUID"`).
    #[serde(default, deserialize_with = "env_opt_string")]
    pub success: Option<String>,
    /// POSTed to, with the error's last lines, when a backup fails or is
    /// stopped (`"https://hc-ping.com/UUID/fail"`).
    #[serde(default, deserialize_with = "env_opt_string")]
    pub failure: Option<String>,
    /// POSTed a JSON document when a backup starts and when it ends.
    #[serde(default, deserialize_with = "env_opt_string")]
    pub webhook: Option<String>,
    /// Time for each attempt to deliver a notification (`"10s"`); each is
    /// tried up to 3 times.
    #[serde(default = "default_notify_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
}

impl NotifyConfig {
    /// The configured URLs with their keys.
    pub fn urls(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            ("start", &self.start),
            ("success", &self.success),
            ("failure", &self.failure),
            ("webhook", &self.webhook),
        ]
        .into_iter()
        .filter_map(|(key, url)| Some((key, url.as_deref()?)))
    }

    /// Refuses a URL sluice could not send to, naming its key but not the
    /// URL, which may hold a secret.
    fn validate(&self, what: &str) -> Result<(), ConfigError> {
        for (key, url) in self.urls() {
            let scheme = url::Url::parse(url).map(|u| u.scheme().to_owned());
            if !matches!(scheme.as_deref(), Ok("http" | "https")) {
                return Err(ConfigError::Invalid(format!(
                    "{what}'s notify.{key} is not an http:// or https:// URL (not shown: it may hold a secret); write e.g. \"https://hc-ping.com/UUID\""
                )));
            }
        }
        Ok(())
    }
}

/// `[sets.NAME]`: what one backup run covers.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct SetConfig {
    /// Overrides the top-level `[store]` as a whole.
    #[serde(default)]
    pub store: Option<StoreConfig>,
    /// Overrides the top-level `[keys]` as a whole.
    #[serde(default)]
    pub keys: Option<KeysConfig>,
    /// Overrides the top-level `[compression]`.
    #[serde(default)]
    pub compression: Option<Compression>,
    /// Overrides the top-level `retention` as a whole.
    #[serde(default)]
    pub retention: Option<Retention>,
    /// Overrides the top-level `prune-after-backup`.
    #[serde(default)]
    pub prune_after_backup: Option<bool>,
    /// When to back the set up: a 5-field cron expression (`"30 2 * * *"`),
    /// for `sluice schedule`.
    #[serde(default)]
    pub schedule: Option<String>,
    /// The time zone of `schedule` (an IANA name, `"Europe/Berlin"`); UTC
    /// by default.
    #[serde(default)]
    pub timezone: Option<String>,
    /// A command run before the backup (argv, no shell); if it fails, the
    /// dump is skipped and the backup fails.
    #[serde(default, deserialize_with = "env_strings")]
    pub before: Vec<String>,
    /// A command run after the backup, whatever its outcome, with
    /// `SLUICE_OUTCOME` (`success` or `failure`), `SLUICE_SET` and
    /// `SLUICE_BACKUP_ID` in its environment.
    #[serde(default, deserialize_with = "env_strings")]
    pub after: Vec<String>,
    /// How long each hook may run before it is killed (`"5m"`).
    #[serde(default = "default_hook_timeout", deserialize_with = "duration")]
    pub hook_timeout: Duration,
    /// A Prometheus textfile each backup rewrites
    /// (`"/var/lib/prometheus/node-exporter/sluice-prod.prom"`).
    #[serde(default, deserialize_with = "env_opt_path")]
    pub metrics_file: Option<PathBuf>,
    /// Overrides the top-level `notify` as a whole.
    #[serde(default)]
    pub notify: Option<NotifyConfig>,
    /// The sources, backed up and restored in this order.
    #[serde(default)]
    pub sources: Vec<Source>,
}

/// Command-line flags that stand in for (or override) the config.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// `--store URL`.
    pub store: Option<String>,
    /// `--recipient KEY`, repeatable; replaces the configured list.
    pub recipients: Vec<String>,
    /// `--source NAME=KIND:ARG`, repeatable; replaces the configured sources.
    pub sources: Vec<Source>,
    /// `--signing-key FILE` (or `SLUICE_SIGNING_KEY_FILE`); replaces the
    /// configured one.
    pub signing_key: Option<PathBuf>,
    /// `--trusted-signer KEY`, repeatable (or `SLUICE_TRUSTED_SIGNERS`);
    /// replaces the configured list.
    pub trusted_signers: Vec<String>,
    /// The set is to be backed up: the `${VAR}`s only a backup uses (see
    /// [`BACKUP_ONLY_KEYS`]) must be set too.
    pub backing_up: bool,
}

/// The keys of a set, of its `[keys]` and of its sources whose values only a
/// backup uses. A restore host may lack their `${VAR}`s: restoring needs the
/// store, the keys and the sources' connections, not the notify URLs.
pub const BACKUP_ONLY_KEYS: [&str; 7] = [
    "before",
    "after",
    "metrics-file",
    "notify",
    "signing-key",
    // Of a source: a command's dump argv and the anonymization rules.
    "backup",
    "anonymize",
];

/// The `${VAR}`s of one set that are not set.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UnsetVariables {
    /// Every one.
    pub all: Vec<String>,
    /// Those outside [`BACKUP_ONLY_KEYS`]: needed by every command.
    pub beyond_backup: Vec<String>,
}

/// Everything a command needs about one set, config and flags merged.
#[derive(Clone, Debug)]
pub struct SetPlan {
    /// The set's name.
    pub name: String,
    /// Its store.
    pub store: StoreConfig,
    /// Its keys.
    pub keys: KeysConfig,
    /// Its configured compression, if any; see [`SetPlan::compression_for`].
    pub compression: Option<Compression>,
    /// Its sources (empty for a set known only from the store).
    pub sources: Vec<Source>,
    /// Which backups `prune` keeps; none means all of them.
    pub retention: Option<Retention>,
    /// Whether `backup` prunes the set (when it has retention) after it
    /// succeeds.
    pub prune_after_backup: bool,
    /// The set's cron schedule, if any.
    pub schedule: Option<String>,
    /// The schedule's time zone; UTC when none.
    pub timezone: Option<String>,
    /// The `before` hook (empty for none).
    pub before: Vec<String>,
    /// The `after` hook (empty for none).
    pub after: Vec<String>,
    /// Each hook's time limit.
    pub hook_timeout: Duration,
    /// The Prometheus textfile, if any.
    pub metrics_file: Option<PathBuf>,
    /// Who hears about each backup, if anyone.
    pub notify: Option<NotifyConfig>,
    /// Whether the config file defines the set.
    pub configured: bool,
}

impl Config {
    /// Finds and reads the config: `explicit` (from `--config` or
    /// `SLUICE_CONFIG`) must exist; otherwise the default paths are tried,
    /// and none existing means an empty config.
    pub fn discover(explicit: Option<&Path>) -> Result<(Self, Option<PathBuf>), ConfigError> {
        if let Some(path) = explicit {
            return Ok((Self::load(path)?, Some(path.to_owned())));
        }
        for candidate in DEFAULT_PATHS {
            let path = Path::new(candidate);
            if path.exists() {
                return Ok((Self::load(path)?, Some(path.to_owned())));
            }
        }
        Ok((Self::default(), None))
    }

    /// Reads one config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config = Self::parse(path, &text)?;
        // Rules files named relative to the config live beside it.
        let base = path.parent().unwrap_or(Path::new("."));
        for set in config.sets.values_mut() {
            for source in &mut set.sources {
                source.resolve_paths(base);
            }
        }
        let keys = config.sets.values_mut().filter_map(|s| s.keys.as_mut());
        for keys in config.keys.iter_mut().chain(keys) {
            if let Some(key) = &mut keys.signing_key
                && key.is_relative()
            {
                *key = base.join(&*key);
            }
        }
        Ok(config)
    }

    /// Parses config text; `path` names it in errors.
    pub fn parse(path: impl AsRef<Path>, text: &str) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let unset = unset_variables_of_sets(text);
        let deferred: BTreeSet<String> = unset.values().flat_map(|u| u.all.clone()).collect();
        DEFERRED.set(deferred);
        let parsed = toml::from_str::<Config>(text);
        DEFERRED.take();
        let mut config = parsed.map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        config.unset_variables = unset;
        // An empty path (an unset variable, see above) names no key.
        let keys = config.sets.values_mut().filter_map(|s| s.keys.as_mut());
        for keys in config.keys.iter_mut().chain(keys) {
            keys.signing_key.take_if(|path| path.as_os_str().is_empty());
        }
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(retention) = &self.retention {
            retention.validate("the top-level retention")?;
        }
        if let Some(notify) = &self.notify {
            notify.validate("the top level")?;
        }
        // A set with unset variables holds empty strings where they were;
        // it is refused when used, so its values are not checked here.
        let usable = |name: &String| !self.unset_variables.contains_key(name);
        let keys = self
            .sets
            .iter()
            .filter(|(name, _)| usable(name))
            .filter_map(|(name, s)| s.keys.as_ref().map(|k| (format!("[sets.{name}.keys]"), k)));
        for (section, keys) in self
            .keys
            .iter()
            .map(|k| ("[keys]".to_owned(), k))
            .chain(keys)
        {
            crate::signing::TrustedSigners::parse(&keys.trusted_signers)
                .map_err(|e| ConfigError::Invalid(format!("trusted-signers in {section}: {e}")))?;
        }
        for (name, set) in &self.sets {
            validate_set_name(name).map_err(|e| ConfigError::Invalid(e.to_string()))?;
            if !usable(name) {
                continue;
            }
            if let Some(retention) = &set.retention {
                retention.validate(&format!("set `{name}`'s retention"))?;
            }
            if let Some(notify) = &set.notify {
                notify.validate(&format!("set `{name}`"))?;
            }
            let mut seen = std::collections::BTreeSet::new();
            for source in &set.sources {
                crate::source::validate_source_name(source.name())
                    .map_err(|e| ConfigError::Invalid(format!("set `{name}`: {e}")))?;
                if !seen.insert(source.name()) {
                    return Err(ConfigError::Invalid(format!(
                        "set `{name}` has two sources named `{}`",
                        source.name()
                    )));
                }
            }
        }
        Ok(())
    }

    /// Merges the config and the flags for one set. A set the config does
    /// not define is allowed: it may exist in the store, or the flags may
    /// describe it.
    pub fn set(&self, name: &str, overrides: &Overrides) -> Result<SetPlan, ConfigError> {
        validate_set_name(name).map_err(|e| ConfigError::Usage(e.to_string()))?;
        if let Some(unset) = self.unset_variables.get(name) {
            let names = if overrides.backing_up {
                &unset.all
            } else {
                &unset.beyond_backup
            };
            if !names.is_empty() {
                return Err(ConfigError::UnsetVariables {
                    set: name.to_owned(),
                    names: names.clone(),
                });
            }
        }
        let configured = self.sets.get(name);
        let set = configured.cloned().unwrap_or_default();
        let mut store = set
            .store
            .or_else(|| self.store.clone())
            .map(Ok)
            .or_else(|| {
                overrides
                    .store
                    .as_ref()
                    .map(|url| Ok(StoreConfig::new(url)))
            })
            .unwrap_or_else(|| Err(ConfigError::NoStore(name.to_owned())))?;
        if let Some(url) = &overrides.store {
            store.url = url.clone();
        }
        let mut keys = set.keys.or_else(|| self.keys.clone()).unwrap_or_default();
        if !overrides.recipients.is_empty() {
            keys.recipients = overrides.recipients.clone();
        }
        if let Some(path) = &overrides.signing_key {
            keys.signing_key = Some(path.clone());
        }
        if !overrides.trusted_signers.is_empty() {
            keys.trusted_signers = overrides.trusted_signers.clone();
        }
        let mut names = std::collections::BTreeSet::new();
        if let Some(duplicate) = overrides.sources.iter().find(|s| !names.insert(s.name())) {
            return Err(ConfigError::Usage(format!(
                "--source names `{}` twice; give each source its own name",
                duplicate.name()
            )));
        }
        let sources = if overrides.sources.is_empty() {
            set.sources
        } else {
            overrides.sources.clone()
        };
        Ok(SetPlan {
            name: name.to_owned(),
            store,
            keys,
            compression: set.compression.or(self.compression),
            sources,
            retention: set.retention.or_else(|| self.retention.clone()),
            prune_after_backup: set
                .prune_after_backup
                .or(self.prune_after_backup)
                .unwrap_or(true),
            schedule: set.schedule,
            timezone: set.timezone,
            before: set.before,
            after: set.after,
            hook_timeout: set.hook_timeout,
            metrics_file: set.metrics_file,
            notify: set.notify.or_else(|| self.notify.clone()),
            configured: configured.is_some(),
        })
    }

    /// Names of the configured sets.
    pub fn set_names(&self) -> impl Iterator<Item = &str> {
        self.sets.keys().map(String::as_str)
    }
}

impl SetPlan {
    /// The compression of `source`'s objects: the configured one or, by
    /// default, zstd level 1 for databases (on pg_dump output measured
    /// about a third faster than level 3, no larger, at half the memory)
    /// and level 3 for everything else.
    pub fn compression_for(&self, source: &Source) -> Compression {
        self.compression.unwrap_or(match source {
            Source::Postgres(_) | Source::Mysql(_) => Compression {
                level: 1,
                ..Compression::default()
            },
            _ => Compression::default(),
        })
    }

    /// The sources, or an error saying how to add some.
    pub fn require_sources(&self, known_sets: &[&str]) -> Result<&[Source], ConfigError> {
        if !self.sources.is_empty() {
            return Ok(&self.sources);
        }
        let hint = if self.configured {
            format!(
                "add [[sets.{}.sources]] to the config, or pass --source NAME=KIND:ARG",
                self.name
            )
        } else if known_sets.is_empty() {
            "pass --source NAME=KIND:ARG (e.g. --source media=files:/srv/media), or describe the set in a config file".to_owned()
        } else {
            format!(
                "it is not in the config (which has: {}); pass --source NAME=KIND:ARG to back up something ad hoc",
                known_sets.join(", ")
            )
        };
        Err(ConfigError::NoSources {
            set: self.name.clone(),
            hint,
        })
    }
}

/// A size in bytes, written as `"16MiB"`, `"512KiB"`, `"1GiB"`, `"5MB"` or a
/// plain number of bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (number, unit) = s.split_at(split);
        let number: u64 = number
            .parse()
            .map_err(|_| format!("`{s}` is not a size; write e.g. \"16MiB\""))?;
        let factor: u64 = match unit.trim() {
            "" | "B" => 1,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            "KB" | "kB" => 1_000,
            "MB" => 1_000_000,
            "GB" => 1_000_000_000,
            other => {
                return Err(format!(
                    "unknown size unit `{other}` in `{s}`; use KiB, MiB or GiB"
                ));
            }
        };
        number
            .checked_mul(factor)
            .map(ByteSize)
            .ok_or_else(|| format!("`{s}` is too large"))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&human_bytes(self.0))
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(n) => Ok(ByteSize(n)),
            Raw::Text(t) => interpolate(&t, env_lookup)
                .and_then(|t| t.parse())
                .map_err(D::Error::custom),
        }
    }
}

/// `1536` → `1.5 KiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Replaces `${NAME}` with `lookup(NAME)` and `$$` with `$`.
pub fn interpolate(
    text: &str,
    mut lookup: impl FnMut(&str) -> Option<String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(after) = after.strip_prefix('$') {
            out.push('$');
            rest = after;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body
                .find('}')
                .ok_or_else(|| format!("unclosed `${{` in `{text}`"))?;
            let name = &body[..end];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!(
                    "`${{{name}}}` is not a valid environment variable reference"
                ));
            }
            let value = lookup(name).ok_or_else(|| {
                format!("environment variable `{name}` is not set (the config uses ${{{name}}}); set it, or write $$ for a literal $")
            })?;
            out.push_str(&value);
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

thread_local! {
    /// Unset variables that read as empty while [`Config::parse`] runs:
    /// those only sets name (see [`Config::unset_variables`]).
    static DEFERRED: RefCell<BTreeSet<String>> = const { RefCell::new(BTreeSet::new()) };
}

fn env_lookup(name: &str) -> Option<String> {
    std::env::var(name).ok().or_else(|| {
        DEFERRED
            .with_borrow(|deferred| deferred.contains(name))
            .then(String::new)
    })
}

/// The unset variables each set names that nothing outside `[sets]` names
/// (those stay errors at once), by set; sets that name none are left out.
/// Text that is not TOML gives none: parsing it reports the error.
fn unset_variables_of_sets(text: &str) -> BTreeMap<String, UnsetVariables> {
    /// Adds the variables `value` names to `general`, or to `backup_only`
    /// under a key of [`BACKUP_ONLY_KEYS`].
    fn referenced(
        value: &toml::Value,
        backup_only: bool,
        general: &mut BTreeSet<String>,
        only_backup: &mut BTreeSet<String>,
    ) {
        match value {
            toml::Value::String(s) => {
                let names = if backup_only { only_backup } else { general };
                // Malformed references are reported by the parse itself.
                let _ = interpolate(s, |name| {
                    names.insert(name.to_owned());
                    Some(String::new())
                });
            }
            toml::Value::Array(values) => {
                for v in values {
                    referenced(v, backup_only, general, only_backup);
                }
            }
            toml::Value::Table(table) => {
                for (key, v) in table {
                    let backup_only = backup_only || BACKUP_ONLY_KEYS.contains(&key.as_str());
                    referenced(v, backup_only, general, only_backup);
                }
            }
            _ => {}
        }
    }
    let Ok(mut root) = toml::from_str::<toml::Table>(text) else {
        return BTreeMap::new();
    };
    let Some(toml::Value::Table(sets)) = root.remove("sets") else {
        return BTreeMap::new();
    };
    let mut outside = BTreeSet::new();
    referenced(
        &toml::Value::Table(root),
        false,
        &mut outside,
        &mut BTreeSet::new(),
    );
    let unset = |names: BTreeSet<String>| -> Vec<String> {
        names
            .into_iter()
            .filter(|n| !outside.contains(n) && std::env::var_os(n).is_none())
            .collect()
    };
    sets.into_iter()
        .filter_map(|(set, value)| {
            let (mut general, mut only_backup) = (BTreeSet::new(), BTreeSet::new());
            referenced(&value, false, &mut general, &mut only_backup);
            let all = unset(general.union(&only_backup).cloned().collect());
            let beyond_backup = unset(general);
            (!all.is_empty()).then_some((set, UnsetVariables { all, beyond_backup }))
        })
        .collect()
}

/// Deserializes a string with `${VAR}` interpolation.
pub(crate) fn env_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let raw = String::deserialize(d)?;
    interpolate(&raw, env_lookup).map_err(D::Error::custom)
}

/// Parses a duration written as `"500ms"`, `"10s"`, `"2m"`, `"24h"` or
/// `"7d"` (a day is 24 hours, a week 7 days; months and years are refused).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = |e: jiff::Error| {
        format!(
            "`{text}` is not a duration ({e}); write e.g. \"500ms\", \"10s\", \"2m\", \"24h\" or \"7d\""
        )
    };
    let span: jiff::Span = text.trim().parse().map_err(invalid)?;
    // Days and weeks count as 24 hours and 7 days; months and years,
    // whose length varies, are refused.
    let signed = span
        .to_duration(jiff::SpanRelativeTo::days_are_24_hours())
        .map_err(invalid)?;
    Duration::try_from(signed).map_err(|_| format!("`{text}` is negative; durations are positive"))
}

/// Deserializes a duration (see [`parse_duration`]).
fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    parse_duration(&text).map_err(D::Error::custom)
}

/// Deserializes an optional duration (see [`parse_duration`]).
fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

/// Deserializes a path with `${VAR}` interpolation.
pub(crate) fn env_path<'de, D: Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
    env_string(d).map(PathBuf::from)
}

/// Deserializes an optional string with `${VAR}` interpolation.
pub(crate) fn env_opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    env_string(d).map(Some)
}

/// Deserializes an optional path with `${VAR}` interpolation.
pub(crate) fn env_opt_path<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
    env_string(d).map(|s| Some(PathBuf::from(s)))
}

/// Deserializes a list of strings with `${VAR}` interpolation.
pub(crate) fn env_strings<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|s| interpolate(s, env_lookup))
        .collect::<Result<_, _>>()
        .map_err(D::Error::custom)
}

/// Deserializes an optional list of strings with `${VAR}` interpolation.
pub(crate) fn env_opt_strings<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Vec<String>>, D::Error> {
    env_strings(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
        [store]
        url = "file:///var/backups/sluice"
        part-size = "8MiB"

        [keys]
        recipients = ["age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"]

        [sets.prod]
        compression = { level = 5 }

        [[sets.prod.sources]]
        name = "media"
        kind = "files"
        path = "/srv/media"
        exclude = ["cache/**"]

        [[sets.prod.sources]]
        name = "mongo"
        kind = "command"
        backup = ["mongodump", "--archive"]
        restore = ["mongorestore", "--archive", "--drop"]
        extension = "archive"
    "#;

    #[test]
    fn databases_compress_at_level_1_unless_a_level_is_configured() {
        let text = |compression: &str| {
            format!(
                "[store]\nurl = \"file:///x\"\n{compression}\n\
                 [[sets.s.sources]]\nname = \"db\"\nkind = \"postgres\"\ndatabase = \"app\"\n\
                 [[sets.s.sources]]\nname = \"files\"\nkind = \"files\"\npath = \"/srv\"\n"
            )
        };
        let levels = |compression: &str| {
            let config = Config::parse("t.toml", &text(compression)).unwrap();
            let set = config.set("s", &Overrides::default()).unwrap();
            set.sources
                .iter()
                .map(|source| set.compression_for(source).level)
                .collect::<Vec<_>>()
        };
        assert_eq!(levels(""), [1, 3]);
        assert_eq!(levels("[compression]\nlevel = 3"), [3, 3]);
        assert_eq!(levels("[compression]\nlevel = 7"), [7, 7]);
    }

    #[test]
    fn the_documented_example_parses() {
        let config = Config::parse("t.toml", EXAMPLE).unwrap();
        let set = config.set("prod", &Overrides::default()).unwrap();
        assert_eq!(set.store.part_size, ByteSize(8 << 20));
        assert_eq!(set.store.parallel_parts, 4);
        assert_eq!(set.compression.unwrap().level, 5);
        assert_eq!(set.sources.len(), 2);
        assert_eq!(set.sources[1].object_name(), "mongo.archive.zst.age");
        assert!(set.configured);
    }

    #[test]
    fn durations_take_units_from_milliseconds_to_weeks() {
        let secs = |text| parse_duration(text).map(|d| d.as_secs_f64());
        assert_eq!(secs("500ms"), Ok(0.5));
        assert_eq!(secs("0s"), Ok(0.0));
        assert_eq!(secs("2m"), Ok(120.0));
        assert_eq!(secs("24h"), Ok(86_400.0));
        assert_eq!(secs("7d"), Ok(604_800.0));
        assert_eq!(secs("1w"), Ok(604_800.0));
        assert_eq!(secs("1d 12h"), Ok(129_600.0));
        for bad in ["1 month", "2y", "soon", "", "-5s"] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.contains(&format!("`{bad}`")), "{err}");
        }
    }

    #[test]
    fn s3_settings_parse_with_defaults_and_durations() {
        let config = Config::parse(
            "t.toml",
            r#"
            [store]
            url = "s3://backups/sluice"
            endpoint = "http://127.0.0.1:9000"
            region = "us-east-1"
            path-style = true
            storage-class = "STANDARD_IA"
            sse = "aws:kms"
            sse-kms-key-id = "alias/backups"
            checksums = "when-required"
            connect-timeout = "3s"
            read-timeout = "2m"
            attempts = 7
            retry-delay = "250ms"
            object-lock = { mode = "compliance", days = 30 }
            "#,
        )
        .unwrap();
        let store = config.store.unwrap();
        let lock = store.object_lock.unwrap();
        assert_eq!(lock.mode, LockMode::Compliance);
        assert_eq!(lock.days.get(), 30);
        assert_eq!(store.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert!(store.path_style);
        assert_eq!(store.checksums, Checksums::WhenRequired);
        assert_eq!(store.connect_timeout, Duration::from_secs(3));
        assert_eq!(store.read_timeout, Duration::from_secs(120));
        assert_eq!(store.retry_delay, Duration::from_millis(250));
        assert_eq!(store.attempts, 7);

        let defaults = Config::parse("t.toml", "[store]\nurl = \"s3://b\"\n")
            .unwrap()
            .store
            .unwrap();
        assert_eq!(defaults, StoreConfig::new("s3://b"));
        assert_eq!(defaults.checksums, Checksums::Always);

        let err = Config::parse(
            "t.toml",
            "[store]\nurl = \"s3://b\"\nread-timeout = \"soon\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("`soon` is not a duration"), "{err}");
        for bad in [
            r#"{ mode = "legal-hold", days = 1 }"#,
            r#"{ mode = "governance", days = 0 }"#,
            r#"{ mode = "governance" }"#,
        ] {
            let text = format!("[store]\nurl = \"s3://b\"\nobject-lock = {bad}\n");
            assert!(Config::parse("t.toml", &text).is_err(), "{bad} accepted");
        }
        let err = Config::parse(
            "t.toml",
            "[store]\nurl = \"s3://b\"\nchecksums = \"never\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("when-required"), "{err}");
    }

    #[test]
    fn flags_override_the_config() {
        let config = Config::parse("t.toml", EXAMPLE).unwrap();
        let overrides = Overrides {
            store: Some("file:///elsewhere".into()),
            recipients: vec!["age1other".into()],
            sources: vec![Source::from_flag("docs=files:/srv/docs").unwrap()],
            ..Overrides::default()
        };
        let set = config.set("prod", &overrides).unwrap();
        assert_eq!(set.store.url, "file:///elsewhere");
        assert_eq!(set.store.part_size, ByteSize(8 << 20));
        assert_eq!(set.keys.recipients, ["age1other"]);
        assert_eq!(set.sources[0].name(), "docs");
    }

    #[test]
    fn signing_keys_resolve_beside_the_config_and_signers_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sluice.toml");
        let signer = crate::signing::generate().signer.to_string();
        std::fs::write(
            &path,
            format!(
                "[store]\nurl = \"file:///x\"\n[keys]\nsigning-key = \"signing.key\"\ntrusted-signers = [\"{signer}\"]\n[sets.prod.keys]\nsigning-key = \"/etc/sluice/prod.key\"\n"
            ),
        )
        .unwrap();
        let config = Config::load(&path).unwrap();
        let docs = config.set("docs", &Overrides::default()).unwrap();
        assert_eq!(docs.keys.signing_key, Some(dir.path().join("signing.key")));
        assert_eq!(docs.keys.trusted_signers, [signer]);
        // A set's [keys] replaces the top-level one as a whole.
        let prod = config.set("prod", &Overrides::default()).unwrap();
        assert_eq!(prod.keys.signing_key, Some("/etc/sluice/prod.key".into()));
        assert!(prod.keys.trusted_signers.is_empty());
        let flags = Overrides {
            signing_key: Some("other.key".into()),
            trusted_signers: vec!["sluicesign1other".into()],
            ..Overrides::default()
        };
        let docs = config.set("docs", &flags).unwrap();
        assert_eq!(docs.keys.signing_key, Some("other.key".into()));
        assert_eq!(docs.keys.trusted_signers, ["sluicesign1other"]);

        let err = Config::parse("t.toml", "[sets.a.keys]\ntrusted-signers = [\"age1abc\"]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("trusted-signers in [sets.a.keys]"), "{err}");
        assert!(err.contains("sluicesign1"), "{err}");
    }

    #[test]
    fn a_set_without_a_store_says_how_to_give_one() {
        let err = Config::default()
            .set("x", &Overrides::default())
            .unwrap_err();
        assert!(err.to_string().contains("--store URL"), "{err}");
    }

    #[test]
    fn unknown_keys_are_errors_with_a_line_number() {
        let err = Config::parse("t.toml", "[store]\nurl = \"file:///x\"\npart_size = 3\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `part_size`"), "{err}");
        assert!(err.contains("line 3"), "{err}");
        let err = Config::parse(
            "t.toml",
            "[[sets.a.sources]]\nname = \"x\"\nkind = \"files\"\npath = \"/x\"\nexclud = []\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("unknown field `exclud`"), "{err}");
        let err = Config::parse(
            "t.toml",
            "[[sets.a.sources]]\nname = \"x\"\nkind = \"ftp\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("ftp"), "{err}");
    }

    #[test]
    fn duplicate_source_names_are_refused() {
        let text = "[[sets.a.sources]]\nname = \"x\"\nkind = \"files\"\npath = \"/x\"\n\
                    [[sets.a.sources]]\nname = \"x\"\nkind = \"files\"\npath = \"/y\"\n";
        let err = Config::parse("t.toml", text).unwrap_err().to_string();
        assert!(err.contains("two sources named `x`"), "{err}");
    }

    #[test]
    fn interpolation_replaces_variables_and_refuses_unset_ones() {
        let lookup = |name: &str| (name == "HOST").then(|| "db1".to_owned());
        assert_eq!(
            interpolate("pg://${HOST}/app", lookup).unwrap(),
            "pg://db1/app"
        );
        assert_eq!(
            interpolate("cost $$5 and $x", lookup).unwrap(),
            "cost $5 and $x"
        );
        let err = interpolate("${MISSING}", lookup).unwrap_err();
        assert!(err.contains("`MISSING` is not set"), "{err}");
        assert!(interpolate("${HOST", lookup).is_err());
        assert!(interpolate("${A-B}", lookup).is_err());
    }

    #[test]
    fn an_unset_variable_in_the_file_names_its_line() {
        let text = "[store]\nurl = \"${SLUICE_TEST_SURELY_UNSET_VAR}\"\n";
        let err = Config::parse("t.toml", text).unwrap_err().to_string();
        assert!(err.contains("SLUICE_TEST_SURELY_UNSET_VAR"), "{err}");
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn a_sets_unset_variable_refuses_that_set_only() {
        let config = Config::parse(
            "t.toml",
            r#"
            [store]
            url = "file:///x"
            [sets.prod]
            notify = { failure = "${SLUICE_TEST_UNSET_PROD_HC}" }
            [[sets.prod.sources]]
            name = "db"
            kind = "postgres"
            url = "postgres://app:${SLUICE_TEST_UNSET_PROD_PW}@db/app"
            [[sets.staging.sources]]
            name = "db"
            kind = "postgres"
            url = "postgres://app@db/staging"
            "#,
        )
        .unwrap();
        let backup = Overrides {
            backing_up: true,
            ..Overrides::default()
        };
        assert!(config.set("staging", &backup).is_ok());
        let err = config.set("prod", &backup).unwrap_err().to_string();
        assert_eq!(
            err,
            "set `prod` uses ${SLUICE_TEST_UNSET_PROD_HC}, ${SLUICE_TEST_UNSET_PROD_PW}, not set; \
             set them (a timer's service reads /etc/sluice/prod.env), or write $$ for a literal $"
        );
        // A restore needs the database's password, not the notify URL.
        let err = config
            .set("prod", &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("set `prod` uses ${SLUICE_TEST_UNSET_PROD_PW}, not set; set it"),
            "{err}"
        );
    }

    #[test]
    fn variables_only_a_backup_uses_are_not_needed_to_restore() {
        let config = Config::parse(
            "t.toml",
            r#"
            [store]
            url = "file:///x"
            [sets.prod]
            before = ["maintenance", "on", "${SLUICE_TEST_UNSET_HOOK}"]
            after = ["maintenance", "off", "${SLUICE_TEST_UNSET_HOOK}"]
            metrics-file = "${SLUICE_TEST_UNSET_METRICS}"
            notify = { failure = "${SLUICE_TEST_UNSET_HC}" }
            [sets.prod.keys]
            recipients = ["age1x"]
            signing-key = "${SLUICE_TEST_UNSET_SIGNING}"
            [[sets.prod.sources]]
            name = "gitref"
            kind = "command"
            backup = ["git", "-C", "${SLUICE_TEST_UNSET_REPO}", "rev-parse", "HEAD"]
            restore = ["tee", "gitref.txt"]
            "#,
        )
        .unwrap();
        let plan = config.set("prod", &Overrides::default()).unwrap();
        assert_eq!(plan.keys.signing_key, None);
        let err = config
            .set(
                "prod",
                &Overrides {
                    backing_up: true,
                    ..Overrides::default()
                },
            )
            .unwrap_err()
            .to_string();
        for name in ["HOOK", "METRICS", "HC", "SIGNING", "REPO"] {
            assert!(err.contains(&format!("SLUICE_TEST_UNSET_{name}")), "{err}");
        }
    }

    #[test]
    fn an_unset_variable_outside_the_sets_is_an_error_at_once_even_if_a_set_names_it() {
        let text = "[store]\nurl = \"${SLUICE_TEST_UNSET_SHARED}\"\n\
                    [sets.a.store]\nurl = \"${SLUICE_TEST_UNSET_SHARED}\"\n";
        let err = Config::parse("t.toml", text).unwrap_err().to_string();
        assert!(
            err.contains("`SLUICE_TEST_UNSET_SHARED` is not set"),
            "{err}"
        );
    }

    #[test]
    fn retention_is_a_default_that_a_set_replaces_as_a_whole() {
        let config = Config::parse(
            "t.toml",
            r#"
            retention = { keep-daily = 7 }
            [store]
            url = "file:///x"
            [sets.prod]
            retention = { keep-last = 3, keep-within = "2d", pre-restore-within = "1d" }
            [sets.docs]
            "#,
        )
        .unwrap();
        let prod = config.set("prod", &Overrides::default()).unwrap();
        let prod = prod.retention.unwrap();
        assert_eq!((prod.keep_last, prod.keep_daily), (3, 0));
        assert_eq!(prod.keep_within, Some(Duration::from_secs(2 * 86_400)));
        assert_eq!(prod.pre_restore_within, Duration::from_secs(86_400));
        let docs = config.set("docs", &Overrides::default()).unwrap();
        let docs = docs.retention.unwrap();
        assert_eq!(docs.keep_daily, 7);
        assert_eq!(docs.pre_restore_within, Duration::from_secs(7 * 86_400));
        let none = Config::parse("t.toml", "[store]\nurl = \"file:///x\"\n").unwrap();
        assert!(
            none.set("prod", &Overrides::default())
                .unwrap()
                .retention
                .is_none()
        );
    }

    #[test]
    fn prune_after_backup_is_on_unless_the_top_or_the_set_turns_it_off() {
        let overrides = Overrides {
            store: Some("file:///x".to_owned()),
            ..Overrides::default()
        };
        let prunes = |text: &str, name: &str| {
            Config::parse("t.toml", text)
                .unwrap()
                .set(name, &overrides)
                .unwrap()
                .prune_after_backup
        };
        assert!(prunes("[sets.a]\n", "a"));
        let off = "prune-after-backup = false\n[sets.a]\n[sets.b]\nprune-after-backup = true\n";
        assert!(!prunes(off, "a"));
        assert!(prunes(off, "b"));
    }

    #[test]
    fn a_retention_that_keeps_nothing_or_has_a_typo_is_refused() {
        let err = Config::parse("t.toml", "[sets.a]\nretention = { keep-dayly = 7 }\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `keep-dayly`"), "{err}");
        let err = Config::parse(
            "t.toml",
            "[sets.a]\nretention = { keep-last = 0, pre-restore-within = \"1d\" }\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("set `a`'s retention has no keep-* rule"),
            "{err}"
        );
        let err = Config::parse(
            "t.toml",
            "[sets.a]\nretention = { keep-within = \"1 month\" }\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("`1 month` is not a duration"), "{err}");
    }

    #[test]
    fn notify_is_a_default_that_a_set_replaces_as_a_whole() {
        let config = Config::parse(
            "t.toml",
            r#"
            [store]
            url = "file:///b"
            [notify]
            webhook = "https://hooks.example/sluice"
            [sets.prod.notify]
            start = "https://hc-ping.com/UUID/start"
            failure = "https://hc-ping.com/UUID/fail"
            timeout = "3s"
            [sets.dev]
            "#,
        )
        .unwrap();
        let prod = config.set("prod", &Overrides::default()).unwrap();
        let notify = prod.notify.unwrap();
        assert_eq!(notify.webhook, None);
        assert_eq!(notify.success, None);
        assert_eq!(notify.timeout, Duration::from_secs(3));
        assert_eq!(
            notify.urls().map(|(key, _)| key).collect::<Vec<_>>(),
            ["start", "failure"]
        );
        let dev = config.set("dev", &Overrides::default()).unwrap();
        let notify = dev.notify.unwrap();
        assert_eq!(
            notify.webhook.as_deref(),
            Some("https://hooks.example/sluice")
        );
        assert_eq!(notify.timeout, Duration::from_secs(10));
        let none = Config::parse("t.toml", "[store]\nurl = \"file:///b\"\n").unwrap();
        assert!(
            none.set("x", &Overrides::default())
                .unwrap()
                .notify
                .is_none()
        );
    }

    #[test]
    fn a_notify_url_that_is_not_http_is_refused_without_showing_it() {
        for url in [
            "hc-ping.com/secret-uuid",
            "ftp://host/secret-uuid",
            "mailto:secret-uuid@x",
        ] {
            let err = Config::parse("t.toml", &format!("[sets.a.notify]\nsuccess = \"{url}\"\n"))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("set `a`'s notify.success is not an http:// or https:// URL"),
                "{err}"
            );
            assert!(!err.contains("secret-uuid"), "{err}");
        }
        let err = Config::parse("t.toml", "[notify]\nwebhook = \"hooks.example\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("the top level's notify.webhook"), "{err}");
        let err = Config::parse("t.toml", "[notify]\nsucess = \"https://x\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `sucess`"), "{err}");
    }

    #[test]
    fn sizes_parse() {
        assert_eq!("16MiB".parse::<ByteSize>().unwrap(), ByteSize(16 << 20));
        assert_eq!("5 MB".parse::<ByteSize>().unwrap(), ByteSize(5_000_000));
        assert_eq!("4096".parse::<ByteSize>().unwrap(), ByteSize(4096));
        assert!("16 mebibytes".parse::<ByteSize>().is_err());
        assert!("MiB".parse::<ByteSize>().is_err());
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(12), "12 B");
    }
}
