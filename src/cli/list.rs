//! `sluice list [SET]`.

use std::{collections::BTreeMap, fmt::Write as _};

use serde::Serialize;
use sluice::{
    catalog::{self, Manifest},
    config::{ConfigError, Overrides, SetPlan, StoreConfig, human_bytes},
    signing::{Seal, Trust, TrustedSigners},
    store,
};

use super::{Context, TrustArgs};

/// List the committed backups of a set, or of every set, oldest first.
///
/// Without SET, lists the sets in the default store (--store or [store])
/// and every configured set. SIGNED says whether a trusted key signed each
/// backup (`trusted`), another key did (`untrusted`), none did
/// (`unsigned`), or the manifest changed after it was signed (`ALTERED`);
/// restore, fetch and verify accept only `trusted` ones unless
/// --allow-unsigned. Reads only; takes no lock.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The set to list [default: all]
    set: Option<String>,

    /// Print a JSON array (one object per backup) instead of a table
    #[arg(long)]
    json: bool,

    #[command(flatten)]
    trust: TrustArgs,
}

/// One line of `list --json`.
#[derive(Serialize)]
struct Entry<'a> {
    set: &'a str,
    id: &'a str,
    kind: String,
    note: Option<&'a str>,
    started_at: String,
    finished_at: String,
    stored_size: u64,
    sources: Vec<&'a str>,
    /// `trusted`, `untrusted`, `unsigned` or `altered`.
    signature: String,
    /// The signer's public key, when the signature is valid.
    signer: Option<String>,
}

pub async fn run(context: &Context, args: Args) -> anyhow::Result<()> {
    let overrides = || Overrides {
        trusted_signers: args.trust.trusted_signers.clone(),
        ..Overrides::default()
    };
    let trusted = |plan: &SetPlan| {
        TrustedSigners::parse(&plan.keys.trusted_signers).map_err(sluice::Error::from)
    };
    // Set name → its store and trusted signers.
    let mut sets: BTreeMap<String, (StoreConfig, TrustedSigners)> = BTreeMap::new();
    match &args.set {
        Some(name) => {
            let plan = context.set(name, overrides())?;
            sets.insert(name.clone(), (plan.store.clone(), trusted(&plan)?));
        }
        None => {
            let default_store = match (&context.store, &context.config.store) {
                (Some(url), Some(config)) => Some(StoreConfig {
                    url: url.clone(),
                    ..config.clone()
                }),
                (Some(url), None) => Some(StoreConfig::new(url)),
                (None, config) => config.clone(),
            };
            if let Some(config) = &default_store {
                let store = store::open(config).await.map_err(sluice::Error::from)?;
                for name in catalog::set_names(store.as_ref())
                    .await
                    .map_err(sluice::Error::from)?
                {
                    // Configured sets are added below, with their own store.
                    if context.config.sets.contains_key(&name) {
                        continue;
                    }
                    // A set the config does not name trusts what the
                    // top-level [keys] (or --trusted-signer) trusts.
                    let Some(plan) = usable(context.set(&name, overrides()))? else {
                        continue;
                    };
                    sets.insert(name, (config.clone(), trusted(&plan)?));
                }
            }
            for name in context.config.set_names() {
                let Some(plan) = usable(context.set(name, overrides()))? else {
                    continue;
                };
                sets.insert(name.to_owned(), (plan.store.clone(), trusted(&plan)?));
            }
            if sets.is_empty() && default_store.is_none() {
                anyhow::bail!(sluice::Error::from(sluice::config::ConfigError::Usage(
                    "nothing to list: pass --store URL, or a config with [store] url or sets (see --config)".to_owned()
                )));
            }
        }
    }
    let mut manifests: Vec<(Manifest, Trust)> = Vec::new();
    for (name, (config, trusted)) in &sets {
        let store = store::open(config).await.map_err(sluice::Error::from)?;
        manifests.extend(
            catalog::list(store, name)
                .await
                .map_err(sluice::Error::from)?
                .into_iter()
                .map(|m| {
                    let trust = trusted.judge(&m.seal);
                    (m, trust)
                }),
        );
    }
    if args.set.is_some() && manifests.is_empty() && !args.json {
        tracing::info!(
            "set `{}` has no backups yet",
            args.set.as_deref().unwrap_or_default()
        );
    }
    let mut out = String::new();
    if args.json {
        let entries: Vec<Entry<'_>> = manifests.iter().map(|(m, t)| entry(m, *t)).collect();
        out.push_str(&serde_json::to_string_pretty(&entries)?);
        writeln!(out)?;
        return super::print(&out);
    }
    if manifests.is_empty() {
        return Ok(());
    }
    let width = manifests
        .iter()
        .map(|(m, _)| m.set.len())
        .max()
        .unwrap_or(3)
        .max(3);
    writeln!(
        out,
        "{:width$}  {:21}  {:11}  {:9}  {:>9}  {:20}  NOTE",
        "SET", "ID", "KIND", "SIGNED", "STORED", "SOURCES"
    )?;
    for (m, trust) in &manifests {
        let sources = source_names(m);
        writeln!(
            out,
            "{:width$}  {:21}  {:11}  {:9}  {:>9}  {:20}  {}",
            m.set,
            m.id,
            m.kind.to_string(),
            trust.to_string(),
            human_bytes(m.stored_size()),
            sources.join(","),
            m.note.as_deref().unwrap_or("")
        )?;
    }
    super::print(&out)
}

fn entry(m: &Manifest, trust: Trust) -> Entry<'_> {
    Entry {
        set: &m.set,
        id: m.id.as_str(),
        kind: m.kind.to_string(),
        note: m.note.as_deref(),
        started_at: m.started_at.to_string(),
        finished_at: m.finished_at.to_string(),
        stored_size: m.stored_size(),
        sources: source_names(m),
        signature: trust.to_string().to_lowercase(),
        signer: match &m.seal {
            Seal::Signed { signer, .. } => Some(signer.to_string()),
            _ => None,
        },
    }
}

/// The sources a backup holds, each once (a source may have several
/// objects: its roles, its anonymized copy).
fn source_names(m: &Manifest) -> Vec<&str> {
    let mut names: Vec<&str> = m.objects.iter().map(|o| o.source.as_str()).collect();
    names.dedup();
    names
}

/// A set's plan; `None`, with a warning, for a set whose environment
/// variables are not all set, so that listing every set still lists the
/// others.
fn usable(plan: Result<SetPlan, sluice::Error>) -> Result<Option<SetPlan>, sluice::Error> {
    match plan {
        Err(sluice::Error::Config(e @ ConfigError::UnsetVariables { .. })) => {
            tracing::warn!("not listing it: {e}");
            Ok(None)
        }
        other => other.map(Some),
    }
}
