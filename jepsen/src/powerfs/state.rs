//! The power-loss file system itself, without FUSE: a passthrough to the
//! backing directory that records how to undo every change not yet made
//! durable, and the power loss that undoes them.
//!
//! Every operation goes straight to the backing tree, so reads always see the
//! latest writes. Alongside, file data changes are recorded per node in a
//! [`FileUndo`] (dropped by FSYNC, with or without the datasync flag, on any
//! handle of the node) and directory entry changes in the [`EntryLog`]
//! (made durable by FSYNCDIR of the directories involved). Removing or
//! replacing an entry moves its file into the graveyard (a hidden directory
//! in the backing root) rather than deleting it, so it can come back; once
//! the removal is durable and no handle is open it is deleted for good.
//! [`PowerState::lose_power`] rolls file data back, undoes the entry log
//! newest first and empties the graveyard, leaving the backing tree as it was
//! at the last syncs. The FUSE adapter (`fuse.rs`) only translates requests
//! into these calls, so the tests here drive it on a temporary directory.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::{self, File, Metadata, OpenOptions};
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use nix::errno::Errno;

use super::entries::{EntryLog, EntryOp, NodeId};
use super::nodes::{key_of, Kind, Loc, NodeTable, GRAVEYARD, ROOT};
use super::protocol::{PowerLossReport, Stats};
use super::undo::FileUndo;

/// The result of an operation: an `io::Error` carries the errno to reply.
pub type OpResult<T> = Result<T, io::Error>;

/// An errno as an error.
fn errno(e: Errno) -> io::Error {
    io::Error::from(e)
}

/// `rename(2)` flags.
const RENAME_NOREPLACE: u32 = 1;
/// `fallocate(2)` modes that change existing bytes (they are kept first).
const FALLOC_PUNCH_HOLE: i32 = 0x02;
const FALLOC_ZERO_RANGE: i32 = 0x10;
/// `fallocate(2)` modes that shift data, which the undo model cannot follow.
const FALLOC_COLLAPSE_RANGE: i32 = 0x08;
const FALLOC_INSERT_RANGE: i32 = 0x20;
/// The most a single COPY_FILE_RANGE request copies (a short copy is legal).
const COPY_CHUNK: u64 = 1 << 20;

/// A node and its backing attributes, as the kernel is told.
#[derive(Debug)]
pub struct Attr {
    /// The node (the FUSE inode number).
    pub node: NodeId,
    /// The backing file's metadata.
    pub meta: Metadata,
}

/// One entry of a directory listing.
#[derive(Debug, Clone)]
pub struct DirEntry {
    /// The entry's node.
    pub node: NodeId,
    /// Its type.
    pub file_type: fs::FileType,
    /// Its name.
    pub name: OsString,
}

/// Something the kernel may hold in its caches that a power loss changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalidation {
    /// The data (and attributes) of this node.
    Inode(NodeId),
    /// The entry `name` of directory node `parent`.
    Entry(NodeId, OsString),
}

/// An open file.
#[derive(Debug)]
struct OpenFile {
    node: NodeId,
    file: File,
    /// Opened O_SYNC/O_DSYNC: every write is durable.
    sync_writes: bool,
}

/// An open directory: its listing taken at OPENDIR.
#[derive(Debug)]
struct OpenDir {
    entries: Vec<DirEntry>,
}

/// An open handle.
#[derive(Debug)]
enum Handle {
    File(OpenFile),
    Dir(OpenDir),
}

/// Counters since start.
#[derive(Debug, Default)]
struct Counters {
    writes: u64,
    fsyncs: u64,
    fdatasyncs: u64,
    fsyncdirs: u64,
}

/// The whole state of the file system.
#[derive(Debug)]
pub struct PowerState {
    nodes: NodeTable,
    data: HashMap<NodeId, FileUndo>,
    entries: EntryLog,
    handles: HashMap<u64, Handle>,
    next_fh: u64,
    next_grave: u64,
    counters: Counters,
}

/// Whether `path` exists (without following a final symlink).
fn exists(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok()
}

/// Whether a directory has no entries.
fn is_empty_dir(path: &Path) -> OpResult<bool> {
    Ok(fs::read_dir(path)?.next().is_none())
}

/// Removes a file, or a directory with everything in it.
fn remove_any(path: &Path) -> OpResult<()> {
    if fs::symlink_metadata(path)?.is_dir() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    }
}

/// Creates the (empty) graveyard, for root only.
fn make_graveyard(path: &Path) -> OpResult<()> {
    fs::DirBuilder::new().mode(0o700).create(path)
}

/// Gives a new entry to its creator when that is not root.
fn chown_new(path: &Path, uid: u32, gid: u32) -> OpResult<()> {
    if uid != 0 || gid != 0 {
        std::os::unix::fs::lchown(path, Some(uid), Some(gid))?;
    }
    Ok(())
}

/// The permission bits of a new entry.
fn perm(mode: u32, umask: u32) -> u32 {
    mode & 0o7777 & !umask
}

impl PowerState {
    /// A state over `backing`, which must be a directory. Any graveyard left
    /// by an earlier run is deleted (what it held was removed, and without
    /// that run's log the removal counts as durable).
    pub fn new(backing: &Path) -> OpResult<PowerState> {
        let backing = backing.canonicalize()?;
        let meta = fs::metadata(&backing)?;
        if !meta.is_dir() {
            return Err(errno(Errno::ENOTDIR));
        }
        let nodes = NodeTable::new(&backing, key_of(&meta));
        let graveyard = nodes.graveyard();
        if exists(&graveyard) {
            remove_any(&graveyard)?;
        }
        make_graveyard(&graveyard)?;
        Ok(PowerState {
            nodes,
            data: HashMap::new(),
            entries: EntryLog::new(),
            handles: HashMap::new(),
            next_fh: 1,
            next_grave: 1,
            counters: Counters::default(),
        })
    }

    /// The backing root.
    pub fn backing(&self) -> &Path {
        self.nodes.backing()
    }

    /// Whether `parent/name` is the graveyard, which the mount does not show.
    fn hidden(parent: NodeId, name: &OsStr) -> bool {
        parent == ROOT && name == OsStr::new(GRAVEYARD)
    }

    /// The path of a node, or ENOENT if it is gone.
    fn path(&self, node: NodeId) -> OpResult<PathBuf> {
        self.nodes.path(node).ok_or_else(|| errno(Errno::ENOENT))
    }

    /// The path of `parent/name`, which must be a directory entry name.
    fn child_path(&self, parent: NodeId, name: &OsStr) -> OpResult<PathBuf> {
        if name.is_empty() || name == "." || name == ".." || name.as_bytes().contains(&b'/') {
            return Err(errno(Errno::EINVAL));
        }
        self.nodes
            .child_path(parent, name)
            .ok_or_else(|| errno(Errno::ENOENT))
    }

    /// Whether the backing file at `path` is `node`.
    fn is_at(&self, path: &Path, node: NodeId) -> bool {
        let key = self.nodes.get(node).and_then(|n| n.key);
        key.is_some() && fs::symlink_metadata(path).ok().map(|m| key_of(&m)) == key
    }

    /// A new graveyard name.
    fn new_grave(&mut self) -> OsString {
        let grave = OsString::from(format!("g{}", self.next_grave));
        self.next_grave += 1;
        grave
    }

    /// The open file behind a handle.
    fn open_file(&self, fh: u64) -> OpResult<&OpenFile> {
        file_of(&self.handles, fh)
    }

    /// A new handle.
    fn add_handle(&mut self, handle: Handle) -> u64 {
        let fh = self.next_fh;
        self.next_fh += 1;
        self.handles.insert(fh, handle);
        fh
    }

    /// LOOKUP: the node of `parent/name`.
    pub fn lookup(&mut self, parent: NodeId, name: &OsStr) -> OpResult<Attr> {
        if name == "." {
            return self.getattr(parent, None);
        }
        if name == ".." {
            let up = match self.nodes.get(parent).map(|n| &n.loc) {
                Some(Loc::Child { parent, .. }) => *parent,
                _ => ROOT,
            };
            return self.getattr(up, None);
        }
        if Self::hidden(parent, name) {
            return Err(errno(Errno::ENOENT));
        }
        let path = self.child_path(parent, name)?;
        let meta = fs::symlink_metadata(&path)?;
        let node = self.nodes.intern(
            key_of(&meta),
            Kind::of(meta.file_type()),
            Loc::Child {
                parent,
                name: name.to_os_string(),
            },
        );
        Ok(Attr { node, meta })
    }

    /// GETATTR, through the open handle if there is one.
    pub fn getattr(&self, node: NodeId, fh: Option<u64>) -> OpResult<Attr> {
        if let Some(Ok(f)) = fh.map(|fh| self.open_file(fh)) {
            return Ok(Attr {
                node,
                meta: f.file.metadata()?,
            });
        }
        let meta = fs::symlink_metadata(self.path(node)?)?;
        Ok(Attr { node, meta })
    }

    /// SETATTR: mode, owner, size (through the undo model) and times.
    #[allow(clippy::too_many_arguments)]
    pub fn setattr(
        &mut self,
        node: NodeId,
        fh: Option<u64>,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<SystemTime>,
        mtime: Option<SystemTime>,
    ) -> OpResult<Attr> {
        if let Some(mode) = mode {
            fs::set_permissions(self.path(node)?, fs::Permissions::from_mode(mode & 0o7777))?;
        }
        if uid.is_some() || gid.is_some() {
            std::os::unix::fs::lchown(self.path(node)?, uid, gid)?;
        }
        if let Some(size) = size {
            self.truncate(node, fh, size)?;
        }
        if atime.is_some() || mtime.is_some() {
            let mut times = fs::FileTimes::new();
            if let Some(t) = atime {
                times = times.set_accessed(t);
            }
            if let Some(t) = mtime {
                times = times.set_modified(t);
            }
            match fh.map(|fh| self.open_file(fh)) {
                Some(Ok(f)) => f.file.set_times(times)?,
                _ => {
                    let path = self.path(node)?;
                    if !fs::symlink_metadata(&path)?.file_type().is_symlink() {
                        File::open(&path)?.set_times(times)?;
                    }
                }
            }
        }
        self.getattr(node, fh)
    }

    /// Cuts or extends a file, keeping what a cut removes below its synced size.
    fn truncate(&mut self, node: NodeId, fh: Option<u64>, size: u64) -> OpResult<()> {
        let owned;
        let file = match fh.map(|fh| file_of(&self.handles, fh)) {
            Some(Ok(f)) => &f.file,
            _ => {
                owned = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(self.path(node)?)?;
                &owned
            }
        };
        let current = file.metadata()?.len();
        let record = self
            .data
            .entry(node)
            .or_insert_with(|| FileUndo::new(current));
        if size < current {
            record.preserve(file, size, current)?;
        }
        file.set_len(size)
    }

    /// Records a new entry `parent/name` just made at `path`.
    fn created(&mut self, parent: NodeId, name: &OsStr, path: &Path) -> OpResult<Attr> {
        let meta = fs::symlink_metadata(path)?;
        let node = self.nodes.intern(
            key_of(&meta),
            Kind::of(meta.file_type()),
            Loc::Child {
                parent,
                name: name.to_os_string(),
            },
        );
        self.entries.record(EntryOp::Created {
            parent,
            name: name.to_os_string(),
            node,
        });
        Ok(Attr { node, meta })
    }

    /// The path for a new entry `parent/name`, refused for the graveyard.
    fn new_entry_path(&self, parent: NodeId, name: &OsStr) -> OpResult<PathBuf> {
        if Self::hidden(parent, name) {
            return Err(errno(Errno::EPERM));
        }
        self.child_path(parent, name)
    }

    /// MKNOD: a regular file, FIFO, socket or device node.
    #[allow(clippy::too_many_arguments)]
    pub fn mknod(
        &mut self,
        parent: NodeId,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        uid: u32,
        gid: u32,
    ) -> OpResult<Attr> {
        use nix::sys::stat::{Mode, SFlag};
        let path = self.new_entry_path(parent, name)?;
        let bits = perm(mode, umask);
        let format = mode & SFlag::S_IFMT.bits();
        if format == 0 || format == SFlag::S_IFREG.bits() {
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(bits)
                .open(&path)?;
        } else if format == SFlag::S_IFDIR.bits() {
            return Err(errno(Errno::EINVAL));
        } else {
            nix::sys::stat::mknod(
                &path,
                SFlag::from_bits_truncate(format),
                Mode::from_bits_truncate(bits),
                u64::from(rdev),
            )
            .map_err(errno)?;
        }
        chown_new(&path, uid, gid)?;
        self.created(parent, name, &path)
    }

    /// MKDIR.
    pub fn mkdir(
        &mut self,
        parent: NodeId,
        name: &OsStr,
        mode: u32,
        umask: u32,
        uid: u32,
        gid: u32,
    ) -> OpResult<Attr> {
        let path = self.new_entry_path(parent, name)?;
        fs::DirBuilder::new()
            .mode(perm(mode, umask))
            .create(&path)?;
        chown_new(&path, uid, gid)?;
        self.created(parent, name, &path)
    }

    /// SYMLINK: `parent/name` pointing at `target`.
    pub fn symlink(
        &mut self,
        parent: NodeId,
        name: &OsStr,
        target: &Path,
        uid: u32,
        gid: u32,
    ) -> OpResult<Attr> {
        let path = self.new_entry_path(parent, name)?;
        std::os::unix::fs::symlink(target, &path)?;
        chown_new(&path, uid, gid)?;
        self.created(parent, name, &path)
    }

    /// READLINK.
    pub fn readlink(&self, node: NodeId) -> OpResult<Vec<u8>> {
        Ok(fs::read_link(self.path(node)?)?.into_os_string().into_vec())
    }

    /// Opens the backing file read-write when it can (the undo model reads
    /// original bytes through the same descriptor), else as asked. Access
    /// mode checks stay with the kernel, which sends no write on a
    /// read-only handle. O_APPEND is left out: writes come with offsets.
    fn open_backing(path: &Path, flags: i32) -> OpResult<File> {
        match OpenOptions::new().read(true).write(true).open(path) {
            Ok(f) => Ok(f),
            Err(_) => {
                let acc = flags & nix::fcntl::OFlag::O_ACCMODE.bits();
                let mut o = OpenOptions::new();
                if acc == nix::fcntl::OFlag::O_WRONLY.bits() {
                    o.write(true);
                } else if acc == nix::fcntl::OFlag::O_RDWR.bits() {
                    o.read(true).write(true);
                } else {
                    o.read(true);
                }
                o.open(path)
            }
        }
    }

    /// Whether open flags ask for every write to be durable.
    fn sync_flags(flags: i32) -> bool {
        flags & nix::fcntl::OFlag::O_DSYNC.bits() != 0
    }

    /// Registers an open file handle on `node`.
    fn add_open_file(&mut self, node: NodeId, file: File, flags: i32) -> u64 {
        if let Some(n) = self.nodes.get_mut(node) {
            n.open += 1;
        }
        self.add_handle(Handle::File(OpenFile {
            node,
            file,
            sync_writes: Self::sync_flags(flags),
        }))
    }

    /// OPEN of a file; returns the handle.
    pub fn open(&mut self, node: NodeId, flags: i32) -> OpResult<u64> {
        if self.nodes.get(node).map(|n| n.kind) == Some(Kind::Dir) {
            return Err(errno(Errno::EISDIR));
        }
        let file = Self::open_backing(&self.path(node)?, flags)?;
        let fh = self.add_open_file(node, file, flags);
        if flags & nix::fcntl::OFlag::O_TRUNC.bits() != 0 {
            if let Err(e) = self.truncate(node, Some(fh), 0) {
                self.release(fh);
                return Err(e);
            }
        }
        Ok(fh)
    }

    /// CREATE: makes and opens `parent/name` (opens it if it exists and
    /// O_EXCL is not set).
    #[allow(clippy::too_many_arguments)]
    pub fn create(
        &mut self,
        parent: NodeId,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        uid: u32,
        gid: u32,
    ) -> OpResult<(Attr, u64)> {
        let path = self.new_entry_path(parent, name)?;
        let made = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(perm(mode, umask))
            .open(&path);
        match made {
            Ok(file) => {
                chown_new(&path, uid, gid)?;
                let attr = self.created(parent, name, &path)?;
                let fh = self.add_open_file(attr.node, file, flags);
                Ok((attr, fh))
            }
            Err(e)
                if e.kind() == io::ErrorKind::AlreadyExists
                    && flags & nix::fcntl::OFlag::O_EXCL.bits() == 0 =>
            {
                let attr = self.lookup(parent, name)?;
                let fh = self.open(attr.node, flags)?;
                let attr = self.getattr(attr.node, Some(fh))?;
                Ok((attr, fh))
            }
            Err(e) => Err(e),
        }
    }

    /// READ.
    pub fn read(&self, fh: u64, offset: u64, size: u32) -> OpResult<Vec<u8>> {
        let f = self.open_file(fh)?;
        let mut buf = vec![0; size as usize];
        let mut done = 0;
        while done < buf.len() {
            match f.file.read_at(&mut buf[done..], offset + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        buf.truncate(done);
        Ok(buf)
    }

    /// WRITE: keeps the original bytes below the synced size, then writes
    /// through.
    pub fn write(&mut self, fh: u64, offset: u64, data: &[u8]) -> OpResult<u32> {
        let f = file_of(&self.handles, fh)?;
        let record = match self.data.entry(f.node) {
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(FileUndo::new(f.file.metadata()?.len()))
            }
        };
        record.preserve(&f.file, offset, offset + data.len() as u64)?;
        f.file.write_all_at(data, offset)?;
        self.counters.writes += 1;
        if f.sync_writes {
            let node = f.node;
            self.data.remove(&node);
        }
        Ok(data.len() as u32)
    }

    /// FALLOCATE: hole punching and zeroing keep the original bytes first;
    /// modes that shift data are refused (EOPNOTSUPP).
    pub fn fallocate(&mut self, fh: u64, offset: u64, length: u64, mode: i32) -> OpResult<()> {
        if mode & (FALLOC_COLLAPSE_RANGE | FALLOC_INSERT_RANGE) != 0 {
            return Err(errno(Errno::EOPNOTSUPP));
        }
        let f = file_of(&self.handles, fh)?;
        let size = f.file.metadata()?.len();
        let record = self
            .data
            .entry(f.node)
            .or_insert_with(|| FileUndo::new(size));
        if mode & (FALLOC_PUNCH_HOLE | FALLOC_ZERO_RANGE) != 0 {
            record.preserve(&f.file, offset, offset.saturating_add(length))?;
        }
        let offset = i64::try_from(offset).map_err(|_| errno(Errno::EFBIG))?;
        let length = i64::try_from(length).map_err(|_| errno(Errno::EFBIG))?;
        nix::fcntl::fallocate(
            &f.file,
            nix::fcntl::FallocateFlags::from_bits_truncate(mode),
            offset,
            length,
        )
        .map_err(errno)
    }

    /// COPY_FILE_RANGE: a read and a write through the undo model, at most
    /// 1 MiB at a time (short copies are allowed).
    pub fn copy_file_range(
        &mut self,
        fh_in: u64,
        offset_in: u64,
        fh_out: u64,
        offset_out: u64,
        len: u64,
    ) -> OpResult<u32> {
        let data = self.read(fh_in, offset_in, len.min(COPY_CHUNK) as u32)?;
        if data.is_empty() {
            return Ok(0);
        }
        self.write(fh_out, offset_out, &data)
    }

    /// RELEASE of a file or directory handle.
    pub fn release(&mut self, fh: u64) {
        if let Some(Handle::File(f)) = self.handles.remove(&fh) {
            let node = f.node;
            drop(f);
            let last = match self.nodes.get_mut(node) {
                Some(n) => {
                    n.open = n.open.saturating_sub(1);
                    n.open == 0 && n.doomed
                }
                None => false,
            };
            if last {
                self.delete_grave(node);
            }
        }
    }

    /// FSYNC: on a file, its data is durable (the datasync flag does not
    /// matter); on a directory, as FSYNCDIR.
    pub fn fsync(&mut self, node: NodeId, datasync: bool) {
        if self.nodes.get(node).map(|n| n.kind) == Some(Kind::Dir) {
            self.fsyncdir(node);
            return;
        }
        if datasync {
            self.counters.fdatasyncs += 1;
        } else {
            self.counters.fsyncs += 1;
        }
        self.data.remove(&node);
    }

    /// OPENDIR: takes the listing.
    pub fn opendir(&mut self, node: NodeId) -> OpResult<u64> {
        let path = self.path(node)?;
        let meta = fs::metadata(&path)?;
        let dev = std::os::unix::fs::MetadataExt::dev(&meta);
        let dir_type = meta.file_type();
        let up = match self.nodes.get(node).map(|n| &n.loc) {
            Some(Loc::Child { parent, .. }) => *parent,
            _ => ROOT,
        };
        let mut entries = vec![
            DirEntry {
                node,
                file_type: dir_type,
                name: ".".into(),
            },
            DirEntry {
                node: up,
                file_type: dir_type,
                name: "..".into(),
            },
        ];
        for entry in fs::read_dir(&path)? {
            let entry = entry?;
            let name = entry.file_name();
            if Self::hidden(node, &name) {
                continue;
            }
            let file_type = entry.file_type()?;
            let child = self.nodes.intern(
                (dev, std::os::unix::fs::DirEntryExt::ino(&entry)),
                Kind::of(file_type),
                Loc::Child {
                    parent: node,
                    name: name.clone(),
                },
            );
            entries.push(DirEntry {
                node: child,
                file_type,
                name,
            });
        }
        Ok(self.add_handle(Handle::Dir(OpenDir { entries })))
    }

    /// READDIR: the listing from `offset` (entry `i` has offset `i + 1`).
    pub fn readdir(&self, fh: u64, offset: u64) -> OpResult<&[DirEntry]> {
        match self.handles.get(&fh) {
            Some(Handle::Dir(d)) => Ok(d.entries.get(offset as usize..).unwrap_or(&[])),
            _ => Err(errno(Errno::EBADF)),
        }
    }

    /// RELEASEDIR.
    pub fn releasedir(&mut self, fh: u64) {
        self.handles.remove(&fh);
    }

    /// FSYNCDIR: the directory's entry operations are durable; the
    /// graveyard files of those that are now durable are deleted (when no
    /// handle has them open, else at their last release).
    pub fn fsyncdir(&mut self, dir: NodeId) {
        self.counters.fsyncdirs += 1;
        for op in self.entries.fsync_dir(dir) {
            for (node, grave) in op.graves() {
                let Some(n) = self.nodes.get_mut(node) else {
                    continue;
                };
                if n.loc != Loc::Grave(grave) {
                    continue;
                }
                if n.open == 0 {
                    self.delete_grave(node);
                } else {
                    n.doomed = true;
                }
            }
        }
    }

    /// Deletes a node in the graveyard for good.
    fn delete_grave(&mut self, node: NodeId) {
        if let Some(path) = self.nodes.path(node) {
            if let Err(e) = remove_any(&path) {
                super::log(format_args!("deleting {}: {e}", path.display()));
            }
        }
        self.data.remove(&node);
        self.nodes.set_gone(node);
    }

    /// UNLINK: moves the file into the graveyard.
    pub fn unlink(&mut self, parent: NodeId, name: &OsStr) -> OpResult<()> {
        self.remove(parent, name, false)
    }

    /// RMDIR: moves the (empty) directory into the graveyard.
    pub fn rmdir(&mut self, parent: NodeId, name: &OsStr) -> OpResult<()> {
        self.remove(parent, name, true)
    }

    /// UNLINK or RMDIR.
    fn remove(&mut self, parent: NodeId, name: &OsStr, dir: bool) -> OpResult<()> {
        if Self::hidden(parent, name) {
            return Err(errno(Errno::ENOENT));
        }
        let path = self.child_path(parent, name)?;
        let meta = fs::symlink_metadata(&path)?;
        match (dir, meta.is_dir()) {
            (false, true) => return Err(errno(Errno::EISDIR)),
            (true, false) => return Err(errno(Errno::ENOTDIR)),
            (true, true) if !is_empty_dir(&path)? => return Err(errno(Errno::ENOTEMPTY)),
            _ => {}
        }
        let node = self.nodes.intern(
            key_of(&meta),
            Kind::of(meta.file_type()),
            Loc::Child {
                parent,
                name: name.to_os_string(),
            },
        );
        let grave = self.new_grave();
        fs::rename(&path, self.nodes.grave_path(&grave))?;
        self.nodes.set_loc(node, Loc::Grave(grave.clone()));
        self.entries.record(EntryOp::Removed {
            parent,
            name: name.to_os_string(),
            node,
            grave,
        });
        Ok(())
    }

    /// RENAME (flags: RENAME_NOREPLACE; RENAME_EXCHANGE is refused with
    /// EINVAL). A replaced target moves into the graveyard.
    pub fn rename(
        &mut self,
        parent: NodeId,
        name: &OsStr,
        new_parent: NodeId,
        new_name: &OsStr,
        flags: u32,
    ) -> OpResult<()> {
        if flags & !RENAME_NOREPLACE != 0 {
            return Err(errno(Errno::EINVAL));
        }
        if Self::hidden(parent, name) {
            return Err(errno(Errno::ENOENT));
        }
        let from = self.child_path(parent, name)?;
        let to = self.new_entry_path(new_parent, new_name)?;
        let src = fs::symlink_metadata(&from)?;
        let replaced = match fs::symlink_metadata(&to) {
            Ok(target) => {
                if key_of(&target) == key_of(&src) {
                    return Ok(());
                }
                if flags & RENAME_NOREPLACE != 0 {
                    return Err(errno(Errno::EEXIST));
                }
                match (src.is_dir(), target.is_dir()) {
                    (true, false) => return Err(errno(Errno::ENOTDIR)),
                    (false, true) => return Err(errno(Errno::EISDIR)),
                    (true, true) if !is_empty_dir(&to)? => {
                        return Err(errno(Errno::ENOTEMPTY));
                    }
                    _ => {}
                }
                let old = self.nodes.intern(
                    key_of(&target),
                    Kind::of(target.file_type()),
                    Loc::Child {
                        parent: new_parent,
                        name: new_name.to_os_string(),
                    },
                );
                let grave = self.new_grave();
                fs::rename(&to, self.nodes.grave_path(&grave))?;
                self.nodes.set_loc(old, Loc::Grave(grave.clone()));
                Some((old, grave))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let node = self.nodes.intern(
            key_of(&src),
            Kind::of(src.file_type()),
            Loc::Child {
                parent,
                name: name.to_os_string(),
            },
        );
        if let Err(e) = fs::rename(&from, &to) {
            if let Some((old, grave)) = &replaced {
                if fs::rename(self.nodes.grave_path(grave), &to).is_ok() {
                    self.nodes.set_loc(
                        *old,
                        Loc::Child {
                            parent: new_parent,
                            name: new_name.to_os_string(),
                        },
                    );
                }
            }
            return Err(e);
        }
        self.nodes.set_loc(
            node,
            Loc::Child {
                parent: new_parent,
                name: new_name.to_os_string(),
            },
        );
        self.entries.record(EntryOp::Renamed {
            from_parent: parent,
            from_name: name.to_os_string(),
            to_parent: new_parent,
            to_name: new_name.to_os_string(),
            node,
            replaced,
        });
        Ok(())
    }

    /// STATFS of the backing file system.
    pub fn statfs(&self) -> OpResult<nix::sys::statvfs::Statvfs> {
        nix::sys::statvfs::statvfs(self.backing()).map_err(errno)
    }

    /// The counters and what is pending.
    pub fn stats(&self) -> Stats {
        Stats {
            writes: self.counters.writes,
            fsyncs: self.counters.fsyncs,
            fdatasyncs: self.counters.fdatasyncs,
            fsyncdirs: self.counters.fsyncdirs,
            pending_files: self.data.len() as u64,
            pending_entries: self.entries.len() as u64,
        }
    }

    /// Power loss: rolls every file's data back to its last sync, undoes
    /// every entry operation not durable (newest first), empties the
    /// graveyard. Returns the counts and what kernel caches to drop. An
    /// operation whose undo no longer fits the tree (a later durable
    /// operation moved what it needs) is skipped and logged.
    pub fn lose_power(&mut self) -> (PowerLossReport, Vec<Invalidation>) {
        let mut report = PowerLossReport::default();
        let mut inval = Vec::new();
        let records: Vec<(NodeId, FileUndo)> = self.data.drain().collect();
        for (node, record) in records {
            match self.rollback_data(node, &record) {
                Ok(Some(bytes)) => {
                    report.files += 1;
                    report.bytes += bytes;
                    inval.push(Invalidation::Inode(node));
                }
                Ok(None) => {}
                Err(e) => super::log(format_args!("rolling back node {node}: {e}")),
            }
        }
        for op in self.entries.take_newest_first() {
            match self.undo(&op) {
                Ok(true) => {
                    report.entries += 1;
                    inval.extend(op_entries(&op));
                }
                Ok(false) => super::log(format_args!("cannot undo {op:?}: the tree moved on")),
                Err(e) => super::log(format_args!("undoing {op:?}: {e}")),
            }
        }
        for id in self.nodes.ids() {
            if matches!(self.nodes.get(id).map(|n| &n.loc), Some(Loc::Grave(_))) {
                self.nodes.set_gone(id);
            }
        }
        let graveyard = self.nodes.graveyard();
        if let Err(e) = remove_any(&graveyard).and_then(|()| make_graveyard(&graveyard)) {
            super::log(format_args!("emptying the graveyard: {e}"));
        }
        (report, inval)
    }

    /// Rolls one file's data back; `None` if the file is gone.
    fn rollback_data(&self, node: NodeId, record: &FileUndo) -> OpResult<Option<u64>> {
        let open = self.handles.values().find_map(|h| match h {
            Handle::File(f) if f.node == node => Some(&f.file),
            _ => None,
        });
        let owned;
        let file = match open {
            Some(f) => f,
            None => {
                let Some(path) = self.nodes.path(node) else {
                    return Ok(None);
                };
                if !self.is_at(&path, node) {
                    return Ok(None);
                }
                owned = OpenOptions::new().read(true).write(true).open(&path)?;
                &owned
            }
        };
        Ok(Some(record.rollback(file)?.bytes))
    }

    /// Undoes one entry operation; `false` if it no longer applies.
    fn undo(&mut self, op: &EntryOp) -> OpResult<bool> {
        match op {
            EntryOp::Created { parent, name, node } => {
                let Some(path) = self.nodes.child_path(*parent, name) else {
                    return Ok(false);
                };
                if !self.is_at(&path, *node) {
                    return Ok(false);
                }
                remove_any(&path)?;
                self.nodes.set_gone(*node);
                Ok(true)
            }
            EntryOp::Removed {
                parent,
                name,
                node,
                grave,
            } => {
                let from = self.nodes.grave_path(grave);
                let Some(to) = self.nodes.child_path(*parent, name) else {
                    return Ok(false);
                };
                if !self.is_at(&from, *node) || exists(&to) {
                    return Ok(false);
                }
                fs::rename(&from, &to)?;
                self.nodes.set_loc(
                    *node,
                    Loc::Child {
                        parent: *parent,
                        name: name.clone(),
                    },
                );
                Ok(true)
            }
            EntryOp::Renamed {
                from_parent,
                from_name,
                to_parent,
                to_name,
                node,
                replaced,
            } => {
                let (Some(from), Some(to)) = (
                    self.nodes.child_path(*from_parent, from_name),
                    self.nodes.child_path(*to_parent, to_name),
                ) else {
                    return Ok(false);
                };
                if !self.is_at(&to, *node) || exists(&from) {
                    return Ok(false);
                }
                fs::rename(&to, &from)?;
                self.nodes.set_loc(
                    *node,
                    Loc::Child {
                        parent: *from_parent,
                        name: from_name.clone(),
                    },
                );
                if let Some((old, grave)) = replaced {
                    let g = self.nodes.grave_path(grave);
                    if self.is_at(&g, *old) && !exists(&to) {
                        fs::rename(&g, &to)?;
                        self.nodes.set_loc(
                            *old,
                            Loc::Child {
                                parent: *to_parent,
                                name: to_name.clone(),
                            },
                        );
                    } else {
                        super::log(format_args!(
                            "cannot bring back the target replaced by {op:?}"
                        ));
                    }
                }
                Ok(true)
            }
        }
    }
}

/// The directory entries an operation changed.
fn op_entries(op: &EntryOp) -> Vec<Invalidation> {
    match op {
        EntryOp::Created { parent, name, .. } | EntryOp::Removed { parent, name, .. } => {
            vec![Invalidation::Entry(*parent, name.clone())]
        }
        EntryOp::Renamed {
            from_parent,
            from_name,
            to_parent,
            to_name,
            ..
        } => vec![
            Invalidation::Entry(*from_parent, from_name.clone()),
            Invalidation::Entry(*to_parent, to_name.clone()),
        ],
    }
}

/// The open file behind a handle (a function of the handle map alone, so
/// the other fields stay free to borrow).
fn file_of(handles: &HashMap<u64, Handle>, fh: u64) -> OpResult<&OpenFile> {
    match handles.get(&fh) {
        Some(Handle::File(f)) => Ok(f),
        _ => Err(errno(Errno::EBADF)),
    }
}

#[cfg(test)]
mod tests {
    //! The state driven directly on a temporary backing directory, as the
    //! FUSE adapter would drive it, without mounting anything.

    use super::*;

    const RW: i32 = 2; // O_RDWR

    fn setup() -> (tempfile::TempDir, PowerState) {
        let dir = tempfile::tempdir().unwrap();
        let state = PowerState::new(dir.path()).unwrap();
        (dir, state)
    }

    /// Creates `parent/name` with `content`, fsyncs it, and optionally its
    /// directory; returns the node.
    fn make(
        s: &mut PowerState,
        parent: NodeId,
        name: &str,
        content: &[u8],
        dir_sync: bool,
    ) -> NodeId {
        let (attr, fh) = s
            .create(parent, OsStr::new(name), 0o644, 0o022, RW, 0, 0)
            .unwrap();
        s.write(fh, 0, content).unwrap();
        s.fsync(attr.node, false);
        s.release(fh);
        if dir_sync {
            s.fsyncdir(parent);
        }
        attr.node
    }

    fn read(dir: &Path, rel: &str) -> Option<Vec<u8>> {
        fs::read(dir.join(rel)).ok()
    }

    /// The backing tree's entries, the graveyard left out.
    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != GRAVEYARD)
            .collect();
        names.sort();
        names
    }

    /// Steps: a synced file `a` and a synced file `b`; rename `a` over `b`
    /// without a directory fsync; lose power.
    /// Checks: `a` is back with its content, `b` is back with its own (it
    /// came out of the graveyard), and the graveyard is empty.
    #[test]
    fn a_rename_over_a_target_reverts_both() {
        let (dir, mut s) = setup();
        make(&mut s, ROOT, "a", b"AAA", true);
        make(&mut s, ROOT, "b", b"BBB", true);
        s.rename(ROOT, OsStr::new("a"), ROOT, OsStr::new("b"), 0)
            .unwrap();
        assert_eq!(listing(dir.path()), vec!["b"]);
        let (report, _) = s.lose_power();
        assert_eq!(report.entries, 1);
        assert_eq!(read(dir.path(), "a").unwrap(), b"AAA");
        assert_eq!(read(dir.path(), "b").unwrap(), b"BBB");
        assert_eq!(fs::read_dir(dir.path().join(GRAVEYARD)).unwrap().count(), 0);
    }

    /// Steps: mkdir `d` (root never fsynced), create `d/f`, fsync `f` and
    /// `d`; lose power.
    /// Checks: `d` vanishes with everything in it: its own entry was never
    /// durable.
    #[test]
    fn a_directory_whose_entry_is_not_durable_vanishes_whole() {
        let (dir, mut s) = setup();
        let d = s
            .mkdir(ROOT, OsStr::new("d"), 0o755, 0o022, 0, 0)
            .unwrap()
            .node;
        make(&mut s, d, "f", b"data", true);
        let (report, _) = s.lose_power();
        assert_eq!(report.entries, 1);
        assert!(listing(dir.path()).is_empty());
    }

    /// Steps: synced directories `x` and `y` and a synced file `x/f`; rename
    /// `x/f` to `y/g`; fsync only `y`; lose power. Then again, fsyncing both.
    /// Checks: with one directory synced the rename reverts; with both it
    /// stays.
    #[test]
    fn a_cross_directory_rename_needs_both_directories_synced() {
        let (dir, mut s) = setup();
        let x = s.mkdir(ROOT, OsStr::new("x"), 0o755, 0, 0, 0).unwrap().node;
        let y = s.mkdir(ROOT, OsStr::new("y"), 0o755, 0, 0, 0).unwrap().node;
        s.fsyncdir(ROOT);
        make(&mut s, x, "f", b"F", true);
        s.rename(x, OsStr::new("f"), y, OsStr::new("g"), 0).unwrap();
        s.fsyncdir(y);
        assert_eq!(s.stats().pending_entries, 1);
        s.lose_power();
        assert_eq!(read(dir.path(), "x/f").unwrap(), b"F");
        assert_eq!(read(dir.path(), "y/g"), None);

        s.rename(x, OsStr::new("f"), y, OsStr::new("g"), 0).unwrap();
        s.fsyncdir(y);
        s.fsyncdir(x);
        assert_eq!(s.stats().pending_entries, 0);
        s.lose_power();
        assert_eq!(read(dir.path(), "x/f"), None);
        assert_eq!(read(dir.path(), "y/g").unwrap(), b"F");
    }

    /// Steps: a synced file `f`; unlink it and fsync the directory (no
    /// handle open), then a synced file `h` held open while it is unlinked
    /// and the directory fsynced, then released.
    /// Checks: a durable unlink deletes the graveyard copy at once, or at the
    /// last release; a power loss brings neither back.
    #[test]
    fn a_durable_unlink_empties_the_graveyard() {
        let (dir, mut s) = setup();
        make(&mut s, ROOT, "f", b"F", true);
        s.unlink(ROOT, OsStr::new("f")).unwrap();
        assert_eq!(fs::read_dir(dir.path().join(GRAVEYARD)).unwrap().count(), 1);
        s.fsyncdir(ROOT);
        assert_eq!(fs::read_dir(dir.path().join(GRAVEYARD)).unwrap().count(), 0);

        let h = make(&mut s, ROOT, "h", b"H", true);
        let fh = s.open(h, RW).unwrap();
        s.unlink(ROOT, OsStr::new("h")).unwrap();
        s.fsyncdir(ROOT);
        assert_eq!(s.read(fh, 0, 10).unwrap(), b"H");
        assert_eq!(fs::read_dir(dir.path().join(GRAVEYARD)).unwrap().count(), 1);
        s.release(fh);
        assert_eq!(fs::read_dir(dir.path().join(GRAVEYARD)).unwrap().count(), 0);
        let (report, _) = s.lose_power();
        assert_eq!(report.entries, 0);
        assert!(listing(dir.path()).is_empty());
    }

    /// Steps: synced `x`, `y`, `x/a`; rename `x/a` to `y/b` and fsync only
    /// `y` (the rename stays pending), then unlink `y/b` and fsync `y` (the
    /// unlink is durable); lose power.
    /// Checks: the rename cannot be undone (its file is durably gone); it is
    /// skipped, not counted, and nothing is left behind.
    #[test]
    fn an_undo_that_no_longer_applies_is_skipped() {
        let (dir, mut s) = setup();
        let x = s.mkdir(ROOT, OsStr::new("x"), 0o755, 0, 0, 0).unwrap().node;
        let y = s.mkdir(ROOT, OsStr::new("y"), 0o755, 0, 0, 0).unwrap().node;
        s.fsyncdir(ROOT);
        make(&mut s, x, "a", b"A", true);
        s.rename(x, OsStr::new("a"), y, OsStr::new("b"), 0).unwrap();
        s.fsyncdir(y);
        s.unlink(y, OsStr::new("b")).unwrap();
        s.fsyncdir(y);
        let (report, _) = s.lose_power();
        assert_eq!(report.entries, 0);
        assert_eq!(listing(&dir.path().join("x")), Vec::<String>::new());
        assert_eq!(listing(&dir.path().join("y")), Vec::<String>::new());
    }

    /// Steps: a synced 8-byte file; through one handle overwrite and extend
    /// it; fdatasync through a second, read-only handle; write again; lose
    /// power.
    /// Checks: the fdatasync on the other handle made the first changes
    /// durable; only the last write is undone.
    #[test]
    fn a_sync_on_any_handle_makes_the_data_durable() {
        let (dir, mut s) = setup();
        let f = make(&mut s, ROOT, "f", b"01234567", true);
        let w = s.open(f, RW).unwrap();
        let r = s.open(f, 0).unwrap();
        s.write(w, 4, b"abcdef").unwrap();
        s.fsync(f, true);
        s.write(w, 0, b"ZZ").unwrap();
        s.release(r);
        s.release(w);
        let stats = s.stats();
        assert_eq!((stats.fdatasyncs, stats.pending_files), (1, 1));
        let (report, _) = s.lose_power();
        assert_eq!((report.files, report.bytes), (1, 2));
        assert_eq!(read(dir.path(), "f").unwrap(), b"0123abcdef");
    }

    /// Steps: a synced 8-byte file; cut it to 2 bytes through SETATTR, then
    /// extend it to 100; lose power.
    /// Checks: the synced bytes and size are back.
    #[test]
    fn setattr_size_reverts() {
        let (dir, mut s) = setup();
        let f = make(&mut s, ROOT, "f", b"abcdefgh", true);
        s.setattr(f, None, None, None, None, Some(2), None, None)
            .unwrap();
        s.setattr(f, None, None, None, None, Some(100), None, None)
            .unwrap();
        assert_eq!(fs::metadata(dir.path().join("f")).unwrap().len(), 100);
        s.lose_power();
        assert_eq!(read(dir.path(), "f").unwrap(), b"abcdefgh");
    }

    /// Steps: try to look up, create or rename onto the graveyard's name.
    /// Checks: the mount never shows or touches it.
    #[test]
    fn the_graveyard_is_hidden() {
        let (_dir, mut s) = setup();
        let name = OsStr::new(GRAVEYARD);
        assert!(s.lookup(ROOT, name).is_err());
        assert!(s.mkdir(ROOT, name, 0o755, 0, 0, 0).is_err());
        make(&mut s, ROOT, "f", b"", true);
        assert!(s.rename(ROOT, OsStr::new("f"), ROOT, name, 0).is_err());
        let fh = s.opendir(ROOT).unwrap();
        let names: Vec<_> = s
            .readdir(fh, 0)
            .unwrap()
            .iter()
            .map(|e| e.name.clone())
            .collect();
        assert_eq!(names, vec![".", "..", "f"]);
    }
}
