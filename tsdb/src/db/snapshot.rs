//! [`Db::snapshot`]: a copy of the database that opens as a database of its
//! own (the admin API's `snapshot`, as Prometheus's). Blocks are immutable,
//! so their files are hard-linked (copied where links cannot be made, such as
//! across filesystems); the head, when asked for, is written as one more
//! block. No WAL is copied: everything the head held is in that block.

use std::path::Path;

use super::Db;
use crate::error::{Error, Result};

impl Db {
    /// Writes a snapshot into `dir` (created; it must not hold blocks
    /// already). `with_head: false` leaves out samples not yet in a block.
    ///
    /// # Errors
    /// IO errors; what was written stays for the caller to remove.
    pub fn snapshot(&self, dir: &Path, with_head: bool) -> Result<()> {
        // Compaction deletes input blocks: hold it off while linking.
        let _maintenance = self.maintenance.lock();
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        for block in self.blocks() {
            let Some(name) = block.dir().file_name() else {
                continue;
            };
            link_tree(block.dir(), &dir.join(name))?;
        }
        if with_head
            && let (Some(min_t), Some(max_t)) = (self.head.min_time(), self.head.max_time())
        {
            self.write_head_range(dir, min_t, max_t.saturating_add(1))?;
        }
        Ok(())
    }
}

/// Recreates `from`'s tree at `to` with hard links to its files.
fn link_tree(from: &Path, to: &Path) -> Result<()> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    std::fs::create_dir_all(to).map_err(io(to))?;
    for entry in std::fs::read_dir(from).map_err(io(from))? {
        let entry = entry.map_err(io(from))?;
        let source = entry.path();
        let target = to.join(entry.file_name());
        if entry.file_type().map_err(io(&source))?.is_dir() {
            link_tree(&source, &target)?;
        } else if std::fs::hard_link(&source, &target).is_err() {
            std::fs::copy(&source, &target).map_err(io(&target))?;
        }
    }
    Ok(())
}
