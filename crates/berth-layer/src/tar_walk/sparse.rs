//! The GNU old-style sparse map (type `S`): up to 4 segments in the header, 21 more per extended header.

use tar::GnuSparseHeader;

use super::{WalkError, numeric};

/// One run of data in a sparse file; what lies between runs is a hole (zeros).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SparseSegment {
    /// Where the run starts in the file.
    pub offset: u64,
    /// Its length; its bytes follow the previous segment's in the entry's data.
    pub len: u64,
}

/// A validated sparse map: segments in increasing order, not overlapping, all inside `real_size`, and together
/// exactly as long as the data stored for the entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SparseMap {
    /// The file's size.
    pub real_size: u64,
    /// The runs of data, in order.
    pub segments: Vec<SparseSegment>,
}

/// Collects segments header block by header block.
pub(super) struct Builder<'a> {
    path: &'a [u8],
    segments: Vec<SparseSegment>,
}

impl<'a> Builder<'a> {
    pub(super) fn new(path: &'a [u8]) -> Self {
        Builder {
            path,
            segments: Vec::new(),
        }
    }

    fn bad(&self, reason: impl Into<String>) -> WalkError {
        WalkError::malformed(self.path, reason)
    }

    /// Adds one block's segments; as GNU tar and Go do, an entry whose offset field starts with NUL ends the block.
    pub(super) fn add(&mut self, entries: &[GnuSparseHeader]) -> Result<(), WalkError> {
        for e in entries {
            if e.offset[0] == 0 {
                break;
            }
            let offset = numeric(&e.offset).map_err(|err| self.bad(format!("bad sparse offset: {err}")))?;
            let len = numeric(&e.numbytes).map_err(|err| self.bad(format!("bad sparse length: {err}")))?;
            self.segments.push(SparseSegment { offset, len });
        }
        Ok(())
    }

    /// Validates the map against the file's size and the data stored.
    pub(super) fn finish(self, real_size: u64, stored: u64) -> Result<SparseMap, WalkError> {
        let mut end = 0u64;
        let mut total = 0u64;
        for s in &self.segments {
            let s_end = s
                .offset
                .checked_add(s.len)
                .ok_or_else(|| self.bad("a sparse segment ends past 2^64"))?;
            if s.offset < end {
                return Err(self.bad(format!(
                    "sparse segment at {} overlaps or precedes the previous one (which ends at {end})",
                    s.offset
                )));
            }
            if s_end > real_size {
                return Err(self.bad(format!(
                    "sparse segment at {} of {} bytes ends past the file's size {real_size}",
                    s.offset, s.len
                )));
            }
            end = s_end;
            total += s.len; // cannot overflow: segments are disjoint and inside real_size
        }
        if total != stored {
            return Err(self.bad(format!(
                "its sparse segments hold {total} bytes but the entry stores {stored}"
            )));
        }
        Ok(SparseMap {
            real_size,
            segments: self.segments,
        })
    }
}
