//! Passphrase-protected identity files: an identity file encrypted with
//! age's scrypt recipient (`age -p`, or `sluice keygen --passphrase`), opened
//! with a passphrase typed at the terminal or, for unattended runs such as
//! drills, taken from `SLUICE_IDENTITY_PASSPHRASE`.

use std::{
    fs::{File, OpenOptions},
    io::{self, BufRead, BufReader, Read, Write},
    path::Path,
};

use age::{
    armor::{ArmoredReader, ArmoredWriter, Format},
    secrecy::SecretString,
};
use rustix::termios::{self, LocalModes, OptionalActions};

use super::KeyError;

/// The environment variable that holds the passphrase for unattended runs.
pub const PASSPHRASE_ENV: &str = "SLUICE_IDENTITY_PASSPHRASE";

/// Whether `bytes` is an age file (binary or armored) rather than a plain
/// identity file.
pub(super) fn is_encrypted(bytes: &[u8]) -> bool {
    bytes.starts_with(b"age-encryption.org/")
        || bytes.starts_with(b"-----BEGIN AGE ENCRYPTED FILE-----")
}

/// Opens the passphrase-protected identity file at `path`, whose bytes are
/// `bytes`, and returns the identity file inside.
pub(super) fn open(path: &Path, bytes: &[u8]) -> Result<String, KeyError> {
    let fail = |reason: String| KeyError::Passphrase {
        path: path.to_owned(),
        reason,
    };
    let decryptor = age::Decryptor::new(ArmoredReader::new(bytes))
        .map_err(|e| fail(format!("it is not a readable age file ({e})")))?;
    if !decryptor.is_scrypt() {
        return Err(fail(
            "it is encrypted to a key, not with a passphrase; decrypt it with that key first"
                .to_owned(),
        ));
    }
    let passphrase = passphrase(&format!(
        "Passphrase for identity file {}: ",
        path.display()
    ))
    .map_err(|e| fail(e.to_string()))?;
    let identity = age::scrypt::Identity::new(passphrase);
    let mut reader = decryptor
        .decrypt(std::iter::once(&identity as &dyn age::Identity))
        .map_err(|e| match e {
            age::DecryptError::DecryptionFailed | age::DecryptError::NoMatchingKeys => {
                fail(format!("the passphrase is wrong (from {})", source_name()))
            }
            e => fail(e.to_string()),
        })?;
    let mut text = String::new();
    reader
        .read_to_string(&mut text)
        .map_err(|e| fail(format!("it does not hold text ({e})")))?;
    Ok(text)
}

/// Encrypts `identity_file` with a passphrase (asked twice at the terminal,
/// or taken from the environment), armored so that it stays text.
pub(super) fn protect(identity_file: &str) -> Result<Vec<u8>, io::Error> {
    let passphrase = match std::env::var(PASSPHRASE_ENV) {
        Ok(p) => SecretString::from(p),
        Err(_) => {
            let first = ask("Passphrase for the new identity: ")?;
            let again = ask("The same passphrase again: ")?;
            use age::secrecy::ExposeSecret;
            if first.expose_secret() != again.expose_secret() {
                return Err(io::Error::other(
                    "the two passphrases differ; nothing was written",
                ));
            }
            first
        }
    };
    use age::secrecy::ExposeSecret;
    if passphrase.expose_secret().is_empty() {
        return Err(io::Error::other(
            "the passphrase is empty; nothing was written",
        ));
    }
    let encryptor = age::Encryptor::with_user_passphrase(passphrase);
    let mut out = Vec::new();
    let armored = ArmoredWriter::wrap_output(&mut out, Format::AsciiArmor)?;
    let mut writer = encryptor.wrap_output(armored)?;
    writer.write_all(identity_file.as_bytes())?;
    writer.finish()?.finish()?;
    Ok(out)
}

fn source_name() -> &'static str {
    if std::env::var_os(PASSPHRASE_ENV).is_some() {
        PASSPHRASE_ENV
    } else {
        "the terminal"
    }
}

fn passphrase(prompt: &str) -> io::Result<SecretString> {
    match std::env::var(PASSPHRASE_ENV) {
        Ok(p) => Ok(SecretString::from(p)),
        Err(_) => ask(prompt),
    }
}

/// Asks at the controlling terminal, without echo.
fn ask(prompt: &str) -> io::Result<SecretString> {
    let mut tty = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .map_err(|_| {
            io::Error::other(format!(
                "there is no terminal to ask for the passphrase: run at a terminal, or set {PASSPHRASE_ENV}"
            ))
        })?;
    let saved = termios::tcgetattr(&tty)?;
    let mut quiet = saved.clone();
    quiet.local_modes.remove(LocalModes::ECHO);
    termios::tcsetattr(&tty, OptionalActions::Now, &quiet)?;
    let line = prompt_line(&mut tty, prompt);
    termios::tcsetattr(&tty, OptionalActions::Now, &saved)?;
    let _ = writeln!(tty);
    let line = line?;
    Ok(SecretString::from(
        line.trim_end_matches(['\n', '\r']).to_owned(),
    ))
}

fn prompt_line(tty: &mut File, prompt: &str) -> io::Result<String> {
    tty.write_all(prompt.as_bytes())?;
    tty.flush()?;
    let mut line = String::new();
    BufReader::new(tty).read_line(&mut line)?;
    Ok(line)
}
