//! Test hook: a storage device whose writes and syncs fail while armed, like a disk that
//! errors, for [`crate::RedbStore::open_with_backend`].

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use redb::StorageBackend;
use redb::backends::InMemoryBackend;

/// In-memory bytes whose writes, syncs and resizes fail while [`FlakyDevice::fail`] is on.
#[derive(Debug, Clone, Default)]
pub struct FlakyDevice {
    bytes: Arc<InMemoryBackend>,
    failing: Arc<AtomicBool>,
}

impl FlakyDevice {
    /// A working device with no bytes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Turns the failures on or off.
    pub fn fail(&self, on: bool) {
        self.failing.store(on, Ordering::SeqCst);
    }

    fn check(&self) -> io::Result<()> {
        if self.failing.load(Ordering::SeqCst) {
            Err(io::Error::other("injected I/O failure"))
        } else {
            Ok(())
        }
    }
}

impl StorageBackend for FlakyDevice {
    fn len(&self) -> io::Result<u64> {
        self.bytes.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.bytes.read(offset, out)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.check()?;
        self.bytes.set_len(len)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.check()?;
        self.bytes.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.check()?;
        self.bytes.write(offset, data)
    }
}
