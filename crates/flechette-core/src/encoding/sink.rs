//! Byte sinks the canonical encoder writes into: a growable buffer or a hasher.

use sha2::{Digest as _, Sha256};

/// Where canonical bytes go: implement it for a buffer of your own to encode
/// into it with [`write_to`](super::write_to).
pub trait Sink {
    /// Appends `bytes`.
    fn put(&mut self, bytes: &[u8]);

    /// Appends one byte.
    #[inline]
    fn put_u8(&mut self, byte: u8) {
        self.put(&[byte]);
    }
}

impl Sink for Vec<u8> {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }

    #[inline]
    fn put_u8(&mut self, byte: u8) {
        self.push(byte);
    }
}

const STAGE: usize = 64;

/// A SHA-256 hasher fed through a small staging buffer, so that the many tiny
/// writes of an encoder reach the hasher in few calls; writes larger than
/// the buffer go straight through.
pub(crate) struct HashSink {
    hasher: Sha256,
    stage: [u8; STAGE],
    used: usize,
}

impl HashSink {
    /// A hasher that has already absorbed `domain`.
    #[inline(always)]
    pub(crate) fn new(domain: &[u8]) -> Self {
        let mut sink = Self {
            hasher: Sha256::new(),
            stage: [0; STAGE],
            used: 0,
        };
        sink.put(domain);
        sink
    }

    #[inline(always)]
    fn flush(&mut self) {
        self.hasher.update(&self.stage[..self.used]);
        self.used = 0;
    }

    /// The SHA-256 of everything written.
    #[inline(always)]
    pub(crate) fn finish(mut self) -> [u8; 32] {
        self.flush();
        self.hasher.finalize().into()
    }
}

impl Sink for HashSink {
    #[inline(always)]
    fn put(&mut self, bytes: &[u8]) {
        if bytes.len() > STAGE - self.used {
            self.flush();
            if bytes.len() >= STAGE {
                self.hasher.update(bytes);
                return;
            }
        }
        self.stage[self.used..self.used + bytes.len()].copy_from_slice(bytes);
        self.used += bytes.len();
    }

    #[inline]
    fn put_u8(&mut self, byte: u8) {
        if self.used == STAGE {
            self.flush();
        }
        self.stage[self.used] = byte;
        self.used += 1;
    }
}
