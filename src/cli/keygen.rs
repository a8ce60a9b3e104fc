//! `sluice keygen`.

use std::{io::Write, path::PathBuf};

use sluice::keys;

/// Make a new X25519 key pair for encrypting backups.
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
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Write the identity to this new file (never overwritten)
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,

    /// Protect the identity file with a passphrase (needs -o)
    #[arg(long, requires = "output")]
    passphrase: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let key = keys::generate();
    match args.output {
        Some(path) => {
            keys::write_identity(&path, &key, args.passphrase).map_err(sluice::Error::from)?;
            writeln!(std::io::stdout(), "{}", key.recipient)?;
            tracing::info!(
                "wrote identity to {}; its public key is printed above",
                path.display()
            );
        }
        None => {
            let mut out = std::io::stdout().lock();
            restrict_if_file(&out);
            out.write_all(key.identity_file.as_bytes())?;
            eprintln!("Public key: {}", key.recipient);
        }
    }
    Ok(())
}

/// When stdout was redirected to a regular file, the shell created it with
/// the umask's mode; an identity must be 0600.
fn restrict_if_file(out: &std::io::StdoutLock<'_>) {
    use std::os::fd::AsFd;
    if let Ok(stat) = rustix::fs::fstat(out.as_fd())
        && rustix::fs::FileType::from_raw_mode(stat.st_mode) == rustix::fs::FileType::RegularFile
        && stat.st_mode & 0o077 != 0
    {
        let _ = rustix::fs::fchmod(out.as_fd(), rustix::fs::Mode::from_raw_mode(0o600));
    }
}
