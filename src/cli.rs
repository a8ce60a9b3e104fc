//! Command-line parsing (clap derive) and dispatch: one module per
//! subcommand, each turning its arguments into a library call and printing
//! the result (data on stdout, logs on stderr).

mod anonymize;
mod backup;
mod daemon;
mod fetch;
mod gc;
mod keygen;
mod list;
mod lock;
mod progress;
mod prune;
mod restore;
mod schedule;
mod show;
mod verify;

use std::{future::Future, io::IsTerminal, path::PathBuf, sync::Arc};

use clap::{Parser, Subcommand, ValueEnum};
use sluice::{
    Cancel,
    config::{Config, Overrides, SetPlan},
    lease::{self, Lease},
    signing::{Policy, TrustedSigners},
    store,
};
use tracing_subscriber::EnvFilter;

/// sluice streams database and file backups through zstd and age into object
/// storage, and restores them so that nothing half-applies.
///
/// Every stored object is a plain age file holding a plain zstd stream:
/// `age -d -i key.txt FILE | zstd -d` opens it without sluice.
#[derive(Debug, Parser)]
#[command(name = "sluice", version, max_term_width = 100)]
pub struct Cli {
    /// Config file [default: ./sluice.toml, then /etc/sluice/sluice.toml]
    #[arg(long, global = true, env = "SLUICE_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,

    /// Store URL, replacing the configured one: file:///absolute/path or s3://bucket/prefix
    #[arg(long, global = true, env = "SLUICE_STORE", value_name = "URL")]
    store: Option<String>,

    /// Only print errors
    #[arg(short, long, global = true)]
    quiet: bool,

    /// Print more (-v: debug, including dump tools' stderr)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,

    /// Log format on stderr
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    /// Human-readable lines
    Text,
    /// One JSON object per line, for journald and log shippers
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    Backup(backup::Args),
    Restore(restore::Args),
    Fetch(fetch::Args),
    List(list::Args),
    Show(show::Args),
    Verify(verify::Args),
    Prune(prune::Args),
    Gc(gc::Args),
    Lock(lock::Args),
    Schedule(schedule::Args),
    Daemon(daemon::Args),
    Keygen(keygen::Args),
    Anonymize(anonymize::Args),
}

/// Identity files, for the commands that decrypt.
#[derive(Debug, clap::Args)]
struct IdentityArgs {
    /// Identity file that opens the backup (from `sluice keygen` or age-keygen; repeatable)
    #[arg(
        short = 'i',
        long = "identity",
        env = "SLUICE_IDENTITY_FILE",
        value_name = "FILE"
    )]
    identities: Vec<PathBuf>,
}

/// Whose signatures a command that reads backups accepts.
#[derive(Debug, clap::Args)]
struct TrustArgs {
    /// Accept backups signed by this public key (sluicesign1…) instead of the configured trusted-signers (repeatable; comma-separated in the variable)
    #[arg(
        long = "trusted-signer",
        env = "SLUICE_TRUSTED_SIGNERS",
        value_name = "KEY",
        value_delimiter = ','
    )]
    trusted_signers: Vec<String>,
}

/// Which backups a command that uses their contents accepts.
#[derive(Debug, clap::Args)]
struct SignatureArgs {
    #[command(flatten)]
    trust: TrustArgs,

    /// Use a backup that is unsigned, or signed by a key that is not trusted, with a warning: one made before sluice signed backups, or by a host without a signing key. A manifest changed after it was signed is still refused
    #[arg(long)]
    allow_unsigned: bool,
}

impl SignatureArgs {
    /// The flags' part of the set's overrides.
    fn overrides(&self) -> Overrides {
        Overrides {
            trusted_signers: self.trust.trusted_signers.clone(),
            ..Overrides::default()
        }
    }

    /// What the set (with these flags applied) accepts.
    fn policy(&self, set: &SetPlan) -> Result<Policy, sluice::Error> {
        Ok(Policy {
            trusted: TrustedSigners::parse(&set.keys.trusted_signers)?,
            allow_unsigned: self.allow_unsigned,
        })
    }
}

/// Sets up logging on stderr: info by default, `-q` errors only, `-v` debug;
/// `SLUICE_LOG` (an env-filter directive) overrides. Progress bars are on
/// for text logs on a terminal without `-q`.
pub fn init_logging(cli: &Cli) {
    let level = match (cli.quiet, cli.verbose) {
        (true, _) => "error",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    let filter = EnvFilter::try_from_env("SLUICE_LOG")
        .unwrap_or_else(|_| EnvFilter::new(format!("sluice={level},warn")));
    let terminal = std::io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| progress::LogWriter)
        .with_target(false);
    match cli.log_format {
        LogFormat::Text => {
            if terminal && !cli.quiet {
                progress::enable();
            }
            builder.with_ansi(terminal).init();
        }
        LogFormat::Json => builder.json().init(),
    }
}

impl Cli {
    /// The flags that give a child `sluice` the same logging.
    fn log_flags(&self) -> Vec<String> {
        let mut flags = Vec::new();
        if self.quiet {
            flags.push("--quiet".to_owned());
        }
        flags.extend((0..self.verbose).map(|_| "--verbose".to_owned()));
        let format = match self.log_format {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        };
        flags.extend(["--log-format".to_owned(), format.to_owned()]);
        flags
    }
}

/// Runs the parsed command. Signals fire `cancel`, except in the daemon,
/// which handles them itself.
pub async fn run(cli: Cli, cancel: &Cancel) -> anyhow::Result<()> {
    if !matches!(cli.command, Command::Daemon(_)) {
        tokio::spawn(stop_on_signals(cancel.clone()));
    }
    let log_flags = cli.log_flags();
    let (config, config_path) =
        Config::discover(cli.config.as_deref()).map_err(sluice::Error::from)?;
    let context = Context {
        config,
        config_path,
        store: cli.store,
    };
    match cli.command {
        Command::Backup(args) => backup::run(&context, args, cancel).await,
        Command::Restore(args) => restore::run(&context, args, cancel).await,
        Command::Fetch(args) => fetch::run(&context, args, cancel).await,
        Command::List(args) => list::run(&context, args).await,
        Command::Show(args) => show::run(&context, args).await,
        Command::Verify(args) => verify::run(&context, args, cancel).await,
        Command::Prune(args) => prune::run(&context, args, cancel).await,
        Command::Gc(args) => gc::run(&context, args).await,
        Command::Lock(args) => lock::run(&context, args).await,
        Command::Schedule(args) => schedule::run(&context, args),
        Command::Daemon(args) => daemon::run(&context, args, log_flags).await,
        Command::Keygen(args) => keygen::run(args),
        Command::Anonymize(args) => anonymize::run(args),
    }
}

/// The reader of sluice's results went away (`sluice list | head`): not a
/// failure. Only results go through [`print`]; a restore or fetch whose
/// output stops being read fails.
#[derive(Debug, thiserror::Error)]
#[error("stdout was closed")]
pub struct StdoutClosed;

/// Runs `work` holding `set`'s lease for `command`, and gives the lease
/// back afterwards, whatever the outcome. Another run holding it fails this
/// one at once (exit 3), naming the holder.
async fn with_lease<T, F, Fut>(set: &SetPlan, command: &str, work: F) -> anyhow::Result<T>
where
    F: FnOnce(Arc<Lease>) -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let store = store::open(&set.store).await.map_err(sluice::Error::from)?;
    let lease = lease::acquire(store, &set.name, command, set.store.lease_ttl)
        .await
        .map_err(sluice::Error::from)?;
    let lease = Arc::new(lease);
    let result = work(Arc::clone(&lease)).await;
    lease.release().await;
    result
}

/// Writes a command's results to stdout.
fn print(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(StdoutClosed.into()),
        other => Ok(other?),
    }
}

/// The config and the global flags, for subcommands.
struct Context {
    config: Config,
    /// The config file read, if any.
    config_path: Option<PathBuf>,
    store: Option<String>,
}

impl Context {
    /// The set `name` with the global flags applied.
    fn set(&self, name: &str, mut overrides: Overrides) -> Result<SetPlan, sluice::Error> {
        overrides.store = self.store.clone();
        Ok(self.config.set(name, &overrides)?)
    }
}

/// Fires `cancel` on SIGINT, SIGTERM or SIGHUP, so the run cleans up (kills
/// restore processes, aborts uploads, removes staging) and exits; a second
/// signal exits at once.
async fn stop_on_signals(cancel: Cancel) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::warn!("could not install signal handlers; Ctrl-C will not clean up");
        return;
    };
    loop {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
            _ = hup.recv() => {}
        }
        if cancel.is_fired() {
            eprintln!("error: stopped at once by a second signal; temporary files may remain");
            std::process::exit(130);
        }
        tracing::warn!("stopping: cleaning up first (signal again to exit at once)");
        cancel.fire();
    }
}
