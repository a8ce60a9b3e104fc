//! Restore direction, second half: verified ciphertext through age and zstd,
//! as a [`Read`] for the target. It reports the end of the plaintext only
//! after age's final chunk and zstd's content checksum verified and the size
//! matched the manifest; any other end is an error.

use std::io::{self, BufReader, Read};

use super::{PipelineError, channel::PipeReader, channel::is_secondary};
use crate::{catalog::ObjectRecord, keys::Identities};

type Inner = zstd::stream::read::Decoder<'static, BufReader<age::stream::StreamReader<PipeReader>>>;

/// The plaintext of one object.
pub(crate) struct Decoded {
    inner: Inner,
    object: String,
    read: u64,
    expected: u64,
}

/// Opens the age header with `identities` (reading the first part) and sets
/// up decompression.
pub(crate) fn open_decoder(
    input: PipeReader,
    identities: &Identities,
    record: &ObjectRecord,
) -> Result<Decoded, io::Error> {
    let object = record.name.clone();
    let decode_err = |reason: String| {
        io::Error::other(PipelineError::Decode {
            object: object.clone(),
            reason,
        })
    };
    let decryptor = age::Decryptor::new(input).map_err(|e| match e {
        age::DecryptError::Io(io) if is_secondary(&io) => io,
        other => decode_err(format!("not an age file ({other})")),
    })?;
    let reader = decryptor
        .decrypt(identities.as_age())
        .map_err(|e| match e {
            age::DecryptError::NoMatchingKeys => io::Error::other(PipelineError::WrongIdentity {
                object: object.clone(),
                recipients: record.recipients.join(", "),
                identities: identities.fingerprints().join(", "),
            }),
            age::DecryptError::Io(io) if is_secondary(&io) => io,
            other => decode_err(other.to_string()),
        })?;
    let inner = zstd::stream::read::Decoder::new(reader).map_err(|e| decode_err(e.to_string()))?;
    Ok(Decoded {
        inner,
        object,
        read: 0,
        expected: record.plaintext_size,
    })
}

impl Read for Decoded {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(0) if !buf.is_empty() => {
                if self.read != self.expected {
                    return Err(io::Error::other(PipelineError::PlaintextSize {
                        object: self.object.clone(),
                        actual: self.read,
                        expected: self.expected,
                    }));
                }
                Ok(0)
            }
            Ok(n) => {
                self.read += n as u64;
                if self.read > self.expected {
                    return Err(io::Error::other(PipelineError::PlaintextSize {
                        object: self.object.clone(),
                        actual: self.read,
                        expected: self.expected,
                    }));
                }
                Ok(n)
            }
            Err(e) if is_secondary(&e) => Err(e),
            Err(e) => Err(io::Error::other(PipelineError::Decode {
                object: self.object.clone(),
                reason: e.to_string(),
            })),
        }
    }
}

/// Takes a [`PipelineError`] back out of an I/O error made by this module,
/// or `None` when the error is something else.
pub(crate) fn pipeline_error(e: io::Error) -> Result<PipelineError, io::Error> {
    if e.get_ref().is_some_and(|inner| inner.is::<PipelineError>()) {
        let inner = e.into_inner().expect("checked above");
        Ok(*inner.downcast::<PipelineError>().expect("checked above"))
    } else {
        Err(e)
    }
}
