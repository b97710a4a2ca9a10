//! The data undo model: for one file, how to take its bytes back to what they
//! were at its last fsync/fdatasync.
//!
//! Writes go through to the backing file at once; before a write, truncation,
//! hole punch or copy touches bytes below the size the file had at its last
//! sync, a [`FileUndo`] keeps the original bytes of that range (the first
//! change of a byte wins, later changes of it save nothing). Rolling back
//! cuts or extends the file to that size and writes the saved bytes back.
//! A sync simply drops the record. The model works on any [`Blob`], so it is
//! tested here on memory without FUSE.

use std::collections::BTreeMap;
use std::io;
use std::os::unix::fs::FileExt;

/// Saved ranges that end where a new range starts are merged into it; a range
/// right after a new one is merged too when it is at most this long (merging
/// copies it, and a long one would make writes running backwards quadratic).
const MERGE_RIGHT_MAX: usize = 64 * 1024;

/// What the undo model needs of a file: positioned reads and writes and its
/// size. The daemon uses the backing [`std::fs::File`].
pub trait Blob {
    /// The current size in bytes.
    fn size(&self) -> io::Result<u64>;
    /// Reads at `offset` into `buf`; fewer bytes than asked only at the end.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// Writes all of `buf` at `offset`, growing the blob if needed.
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Cuts or extends (with zeros) the blob to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;
}

impl Blob for std::fs::File {
    fn size(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        FileExt::read_at(self, buf, offset)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        FileExt::write_all_at(self, buf, offset)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        std::fs::File::set_len(self, len)
    }
}

/// Fills `buf` from `offset`, with zeros past the end of the blob.
fn read_full<B: Blob + ?Sized>(blob: &B, buf: &mut [u8], offset: u64) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        match blob.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => {
                buf[done..].fill(0);
                return Ok(());
            }
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// How to take one file back to its last sync: its size then and the
/// original bytes of every range changed since, below that size.
///
/// Invariant: every byte below `synced_size` that may differ from its synced
/// value lies in a saved range, so unsaved bytes there are still the synced
/// ones (and lie below the current size: a cut saves what it removes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileUndo {
    synced_size: u64,
    /// Start offset -> original bytes; the ranges do not overlap.
    saved: BTreeMap<u64, Vec<u8>>,
}

/// What one rollback changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Restored {
    /// Bytes written back plus bytes cut or re-added to reach the synced size.
    pub bytes: u64,
}

impl FileUndo {
    /// A record for a file whose size at its last sync was `synced_size`
    /// (that is its size now, before the first change since that sync).
    pub fn new(synced_size: u64) -> FileUndo {
        FileUndo {
            synced_size,
            saved: BTreeMap::new(),
        }
    }

    /// The file's size at its last sync.
    pub fn synced_size(&self) -> u64 {
        self.synced_size
    }

    /// How many original bytes are kept.
    pub fn saved_bytes(&self) -> u64 {
        self.saved.values().map(|v| v.len() as u64).sum()
    }

    /// The kept ranges as (start, length), in order.
    pub fn saved_ranges(&self) -> Vec<(u64, u64)> {
        self.saved
            .iter()
            .map(|(s, v)| (*s, v.len() as u64))
            .collect()
    }

    /// Before bytes `[start, end)` of `blob` change: keeps the original bytes
    /// of the part below the synced size that no earlier change has kept.
    pub fn preserve<B: Blob + ?Sized>(&mut self, blob: &B, start: u64, end: u64) -> io::Result<()> {
        let end = end.min(self.synced_size);
        if start >= end {
            return Ok(());
        }
        // The gaps in [start, end) between ranges already kept.
        let mut gaps = Vec::new();
        let mut at = start;
        // A range starting before `start` may cover its beginning.
        if let Some((s, v)) = self.saved.range(..start).next_back() {
            at = at.max(s + v.len() as u64);
        }
        for (s, v) in self.saved.range(start..end) {
            if *s > at {
                gaps.push((at, *s));
            }
            at = at.max(s + v.len() as u64);
        }
        if at < end {
            gaps.push((at, end));
        }
        for (gs, ge) in gaps {
            let mut bytes = vec![0; (ge - gs) as usize];
            read_full(blob, &mut bytes, gs)?;
            self.insert(gs, bytes);
        }
        Ok(())
    }

    /// Adds a range that overlaps no kept one, merged with its neighbours.
    fn insert(&mut self, start: u64, mut bytes: Vec<u8>) {
        let end = start + bytes.len() as u64;
        let right_len = self
            .saved
            .get(&end)
            .map(|v| v.len())
            .filter(|len| *len <= MERGE_RIGHT_MAX);
        if right_len.is_some() {
            if let Some(right) = self.saved.remove(&end) {
                bytes.extend_from_slice(&right);
            }
        }
        if let Some((ls, left)) = self.saved.range_mut(..start).next_back() {
            if ls + left.len() as u64 == start {
                left.extend_from_slice(&bytes);
                return;
            }
        }
        self.saved.insert(start, bytes);
    }

    /// Takes `blob` back to its last sync: the synced size, then the kept
    /// bytes written back.
    pub fn rollback<B: Blob + ?Sized>(&self, blob: &B) -> io::Result<Restored> {
        let size = blob.size()?;
        blob.set_len(self.synced_size)?;
        let mut bytes = size.abs_diff(self.synced_size);
        for (start, original) in &self.saved {
            blob.write_all_at(original, *start)?;
            bytes += original.len() as u64;
        }
        Ok(Restored { bytes })
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;

    /// A file in memory.
    struct Mem(RefCell<Vec<u8>>);

    impl Mem {
        fn new(bytes: &[u8]) -> Mem {
            Mem(RefCell::new(bytes.to_vec()))
        }
        fn bytes(&self) -> Vec<u8> {
            self.0.borrow().clone()
        }
    }

    impl Blob for Mem {
        fn size(&self) -> io::Result<u64> {
            Ok(self.0.borrow().len() as u64)
        }
        fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
            let v = self.0.borrow();
            let offset = offset as usize;
            if offset >= v.len() {
                return Ok(0);
            }
            let n = buf.len().min(v.len() - offset);
            buf[..n].copy_from_slice(&v[offset..offset + n]);
            Ok(n)
        }
        fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
            let mut v = self.0.borrow_mut();
            let end = offset as usize + buf.len();
            if v.len() < end {
                v.resize(end, 0);
            }
            v[offset as usize..end].copy_from_slice(buf);
            Ok(())
        }
        fn set_len(&self, len: u64) -> io::Result<()> {
            self.0.borrow_mut().resize(len as usize, 0);
            Ok(())
        }
    }

    /// A write through the model, as the daemon does it: keep, then write.
    fn write(undo: &mut FileUndo, blob: &Mem, offset: u64, data: &[u8]) {
        undo.preserve(blob, offset, offset + data.len() as u64)
            .unwrap();
        blob.write_all_at(data, offset).unwrap();
    }

    /// A truncation through the model.
    fn truncate(undo: &mut FileUndo, blob: &Mem, len: u64) {
        let size = blob.size().unwrap();
        undo.preserve(blob, len, size).unwrap();
        blob.set_len(len).unwrap();
    }

    /// Steps: a synced 10-byte file; append 5 bytes past its end.
    /// Checks: nothing is kept (appends only need the size); the rollback cuts
    /// the 5 bytes.
    #[test]
    fn appends_keep_nothing_and_are_cut() {
        let blob = Mem::new(b"0123456789");
        let mut undo = FileUndo::new(10);
        write(&mut undo, &blob, 10, b"abcde");
        assert_eq!(undo.saved_bytes(), 0);
        assert_eq!(undo.rollback(&blob).unwrap(), Restored { bytes: 5 });
        assert_eq!(blob.bytes(), b"0123456789");
    }

    /// Steps: overwrite bytes 2..6, then 4..8 (overlapping), then 3..5 again.
    /// Checks: the first write of a byte wins (the originals are kept once,
    /// merged into one range 2..8); the rollback restores "0123456789".
    #[test]
    fn overlapping_overwrites_keep_the_first_originals() {
        let blob = Mem::new(b"0123456789");
        let mut undo = FileUndo::new(10);
        write(&mut undo, &blob, 2, b"AAAA");
        write(&mut undo, &blob, 4, b"BBBB");
        write(&mut undo, &blob, 3, b"CC");
        assert_eq!(blob.bytes(), b"01ACCBBB89");
        assert_eq!(undo.saved_ranges(), vec![(2, 6)]);
        let restored = undo.rollback(&blob).unwrap();
        assert_eq!(restored.bytes, 6);
        assert_eq!(blob.bytes(), b"0123456789");
    }

    /// Steps: overwrite 6..8, then 1..3 (a separate range), then 3..6 (the
    /// gap between them).
    /// Checks: the gap's originals are read from the file, all three merge
    /// into one range 1..8, and the rollback is exact.
    #[test]
    fn gaps_between_kept_ranges_are_filled_and_merged() {
        let blob = Mem::new(b"0123456789");
        let mut undo = FileUndo::new(10);
        write(&mut undo, &blob, 6, b"xx");
        write(&mut undo, &blob, 1, b"yy");
        assert_eq!(undo.saved_ranges(), vec![(1, 2), (6, 2)]);
        write(&mut undo, &blob, 0, b"zzzzzzzzz");
        assert_eq!(undo.saved_ranges(), vec![(0, 9)]);
        undo.rollback(&blob).unwrap();
        assert_eq!(blob.bytes(), b"0123456789");
    }

    /// Steps: a write that starts inside the synced size and runs past it.
    /// Checks: only the part below the synced size is kept; the rollback
    /// restores it and cuts the rest.
    #[test]
    fn a_write_across_the_synced_size_keeps_only_the_synced_part() {
        let blob = Mem::new(b"0123456789");
        let mut undo = FileUndo::new(10);
        write(&mut undo, &blob, 8, b"abcdef");
        assert_eq!(undo.saved_ranges(), vec![(8, 2)]);
        undo.rollback(&blob).unwrap();
        assert_eq!(blob.bytes(), b"0123456789");
    }

    /// Steps: cut the file to 4 bytes, grow it to 12 by writing at 10, write
    /// into the zeros at 5, then cut it to 6.
    /// Checks: the cut kept bytes 4..10 once; the rollback gives back exactly
    /// the synced 10 bytes.
    #[test]
    fn truncation_then_extension_reverts_to_the_synced_bytes() {
        let blob = Mem::new(b"0123456789");
        let mut undo = FileUndo::new(10);
        truncate(&mut undo, &blob, 4);
        write(&mut undo, &blob, 10, b"XY");
        assert_eq!(blob.bytes(), b"0123\0\0\0\0\0\0XY");
        write(&mut undo, &blob, 5, b"Q");
        truncate(&mut undo, &blob, 6);
        assert_eq!(undo.saved_ranges(), vec![(4, 6)]);
        undo.rollback(&blob).unwrap();
        assert_eq!(blob.bytes(), b"0123456789");
    }

    /// Steps: a new (synced size 0) file gets 3 writes.
    /// Checks: nothing is kept; the rollback empties it.
    #[test]
    fn a_never_synced_file_rolls_back_to_empty() {
        let blob = Mem::new(b"");
        let mut undo = FileUndo::new(0);
        write(&mut undo, &blob, 0, b"hello");
        write(&mut undo, &blob, 100, b"world");
        write(&mut undo, &blob, 2, b"LL");
        assert_eq!(undo.saved_bytes(), 0);
        assert_eq!(undo.rollback(&blob).unwrap().bytes, 105);
        assert!(blob.bytes().is_empty());
    }

    /// Steps: 1000 sequential 4-byte overwrites of a synced 4000-byte file.
    /// Checks: they merge into a single kept range (no per-write entries),
    /// and the rollback restores every byte.
    #[test]
    fn sequential_overwrites_merge_into_one_range() {
        let original: Vec<u8> = (0..4000u32).map(|i| (i % 251) as u8).collect();
        let blob = Mem::new(&original);
        let mut undo = FileUndo::new(4000);
        for i in 0..1000u64 {
            write(&mut undo, &blob, i * 4, b"wxyz");
        }
        assert_eq!(undo.saved_ranges(), vec![(0, 4000)]);
        undo.rollback(&blob).unwrap();
        assert_eq!(blob.bytes(), original);
    }

    /// Steps: overwrites running backwards (each ends where the previous one
    /// started).
    /// Checks: they merge too, and the rollback is exact.
    #[test]
    fn backward_overwrites_merge_too() {
        let original: Vec<u8> = (0..64u8).collect();
        let blob = Mem::new(&original);
        let mut undo = FileUndo::new(64);
        for i in (0..16u64).rev() {
            write(&mut undo, &blob, i * 4, b"----");
        }
        assert_eq!(undo.saved_ranges(), vec![(0, 64)]);
        undo.rollback(&blob).unwrap();
        assert_eq!(blob.bytes(), original);
    }
}
