//! `sluice keygen [--signing]`.

use std::{io::Write, path::PathBuf};

use sluice::{keys, signing};

/// Make a new X25519 key pair for encrypting backups, or with --signing an
/// ed25519 key for signing them.
///
/// The identity (private key) goes to FILE with mode 0600, and the public key
/// (age1…) is printed: put that in `recipients` on the backup host, and keep
/// the identity where restores run. Without -o, the identity is printed to
/// stdout and the public key to stderr, as age-keygen does.
///
/// With --passphrase the identity file is encrypted with a passphrase
/// (age's scrypt, as `age -p` does; stock `age -d -i FILE` opens it too),
/// asked twice at the terminal or taken from SLUICE_IDENTITY_PASSPHRASE.
/// Commands that decrypt then ask for it, or read that variable.
///
/// --signing makes the backup host's signing key instead: keep the file on
/// the backup host (`signing-key` under [keys], or SLUICE_SIGNING_KEY_FILE),
/// and put its public key (sluicesign1…) in `trusted-signers` where
/// restores run.
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Write the key to this new file (never overwritten)
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,

    /// Protect the identity file with a passphrase (needs -o)
    #[arg(long, requires = "output", conflicts_with = "signing")]
    passphrase: bool,

    /// Make a signing key (SLUICE-SIGNING-KEY-1…, public key sluicesign1…) instead of an age identity
    #[arg(long)]
    signing: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let (secret, public, kind) = if args.signing {
        let key = signing::generate();
        let public = key.signer.to_string();
        if let Some(path) = &args.output {
            signing::write_key(path, &key).map_err(sluice::Error::from)?;
        }
        (key.key_file, public, "signing key")
    } else {
        let key = keys::generate();
        if let Some(path) = &args.output {
            keys::write_identity(path, &key, args.passphrase).map_err(sluice::Error::from)?;
        }
        (key.identity_file, key.recipient, "identity")
    };
    match args.output {
        Some(path) => {
            writeln!(std::io::stdout(), "{public}")?;
            tracing::info!(
                "wrote {kind} to {}; its public key is printed above",
                path.display()
            );
        }
        None => {
            let mut out = std::io::stdout().lock();
            restrict_if_file(&out);
            out.write_all(secret.as_bytes())?;
            eprintln!("Public key: {public}");
        }
    }
    Ok(())
}

/// When stdout was redirected to a regular file, the shell created it with
/// the umask's mode; a secret key must be 0600.
fn restrict_if_file(out: &std::io::StdoutLock<'_>) {
    use std::os::fd::AsFd;
    if let Ok(stat) = rustix::fs::fstat(out.as_fd())
        && rustix::fs::FileType::from_raw_mode(stat.st_mode) == rustix::fs::FileType::RegularFile
        && stat.st_mode & 0o077 != 0
    {
        let _ = rustix::fs::fchmod(out.as_fd(), rustix::fs::Mode::from_raw_mode(0o600));
    }
}
