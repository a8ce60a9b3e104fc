//! `sluice list [SET]`.

use std::{collections::BTreeMap, fmt::Write as _};

use serde::Serialize;
use sluice::{
    catalog::{self, Manifest},
    config::{Overrides, StoreConfig, human_bytes},
    store,
};

use super::Context;

/// List the committed backups of a set, or of every set, oldest first.
///
/// Without SET, lists the sets in the default store (--store or [store])
/// and every configured set. Reads only; takes no lock.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The set to list [default: all]
    set: Option<String>,

    /// Print a JSON array (one object per backup) instead of a table
    #[arg(long)]
    json: bool,
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
}

pub async fn run(context: &Context, args: Args) -> anyhow::Result<()> {
    // Set name → its store.
    let mut sets: BTreeMap<String, StoreConfig> = BTreeMap::new();
    match &args.set {
        Some(name) => {
            let plan = context.set(name, Overrides::default())?;
            sets.insert(name.clone(), plan.store);
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
                    sets.insert(name, config.clone());
                }
            }
            for name in context.config.set_names() {
                let plan = context.set(name, Overrides::default())?;
                sets.insert(name.to_owned(), plan.store);
            }
            if sets.is_empty() && default_store.is_none() {
                anyhow::bail!(sluice::Error::from(sluice::config::ConfigError::Usage(
                    "nothing to list: pass --store URL, or a config with [store] url or sets (see --config)".to_owned()
                )));
            }
        }
    }
    let mut manifests: Vec<Manifest> = Vec::new();
    for (name, config) in &sets {
        let store = store::open(config).await.map_err(sluice::Error::from)?;
        manifests.extend(
            catalog::list(store, name)
                .await
                .map_err(sluice::Error::from)?,
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
        let entries: Vec<Entry<'_>> = manifests.iter().map(entry).collect();
        out.push_str(&serde_json::to_string_pretty(&entries)?);
        writeln!(out)?;
        return super::print(&out);
    }
    if manifests.is_empty() {
        return Ok(());
    }
    let width = manifests
        .iter()
        .map(|m| m.set.len())
        .max()
        .unwrap_or(3)
        .max(3);
    writeln!(
        out,
        "{:width$}  {:21}  {:11}  {:>9}  {:20}  NOTE",
        "SET", "ID", "KIND", "STORED", "SOURCES"
    )?;
    for m in &manifests {
        let sources = source_names(m);
        writeln!(
            out,
            "{:width$}  {:21}  {:11}  {:>9}  {:20}  {}",
            m.set,
            m.id,
            m.kind.to_string(),
            human_bytes(m.stored_size()),
            sources.join(","),
            m.note.as_deref().unwrap_or("")
        )?;
    }
    super::print(&out)
}

fn entry(m: &Manifest) -> Entry<'_> {
    Entry {
        set: &m.set,
        id: m.id.as_str(),
        kind: m.kind.to_string(),
        note: m.note.as_deref(),
        started_at: m.started_at.to_string(),
        finished_at: m.finished_at.to_string(),
        stored_size: m.stored_size(),
        sources: source_names(m),
    }
}

/// The sources a backup holds, each once (a source may have several
/// objects: its roles, its anonymized copy).
fn source_names(m: &Manifest) -> Vec<&str> {
    let mut names: Vec<&str> = m.objects.iter().map(|o| o.source.as_str()).collect();
    names.dedup();
    names
}
