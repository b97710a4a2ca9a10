//! The node table: the inode numbers the kernel sees, and where each node's
//! backing file or directory is now.
//!
//! A node is named by a [`NodeId`] (the FUSE inode number; the root is 1) and
//! identified in the backing tree by its backing (device, inode) pair, which
//! renames and moves to the graveyard keep. Its place is its parent node and
//! name, so renaming a directory moves everything below it. Nodes are kept
//! for the life of the daemon (undo records name them), except that a node
//! whose backing file is deleted for good loses its (device, inode) pair, so
//! a reused backing inode number gets a fresh node.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::entries::NodeId;

/// The node id of the mount's root.
pub const ROOT: NodeId = 1;

/// The graveyard: a hidden directory in the backing root that holds what was
/// removed or replaced until that is durable or power is lost.
pub const GRAVEYARD: &str = ".orrery-powerfs-graveyard";

/// A backing file's identity: (device, inode).
pub type Key = (u64, u64);

/// The identity of the file behind `meta`.
pub fn key_of(meta: &Metadata) -> Key {
    (meta.dev(), meta.ino())
}

/// What a node is; only files carry data undo, only directories entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symlink, FIFO, socket or device node.
    Other,
}

impl Kind {
    /// The kind of a backing file type.
    pub fn of(file_type: std::fs::FileType) -> Kind {
        if file_type.is_dir() {
            Kind::Dir
        } else if file_type.is_file() {
            Kind::File
        } else {
            Kind::Other
        }
    }
}

/// Where a node's backing file is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Loc {
    /// The backing root itself.
    Root,
    /// The entry `name` of directory `parent`.
    Child {
        /// The directory.
        parent: NodeId,
        /// The entry's name.
        name: OsString,
    },
    /// In the graveyard under this name.
    Grave(OsString),
    /// Deleted for good.
    Gone,
}

/// One node.
#[derive(Debug, Clone)]
pub struct Node {
    /// What it is.
    pub kind: Kind,
    /// Its backing identity, `None` once it is gone.
    pub key: Option<Key>,
    /// Where it is.
    pub loc: Loc,
    /// Open FUSE file handles on it.
    pub open: u32,
    /// It is in the graveyard by a durable operation: delete it for good when
    /// its last handle closes.
    pub doomed: bool,
}

/// Every node seen, by id and by backing identity.
#[derive(Debug)]
pub struct NodeTable {
    backing: PathBuf,
    nodes: HashMap<NodeId, Node>,
    by_key: HashMap<Key, NodeId>,
    next: NodeId,
}

impl NodeTable {
    /// A table with only the root, the backing directory whose identity is
    /// `root_key`.
    pub fn new(backing: &Path, root_key: Key) -> NodeTable {
        let mut nodes = HashMap::new();
        nodes.insert(
            ROOT,
            Node {
                kind: Kind::Dir,
                key: Some(root_key),
                loc: Loc::Root,
                open: 0,
                doomed: false,
            },
        );
        let mut by_key = HashMap::new();
        by_key.insert(root_key, ROOT);
        NodeTable {
            backing: backing.to_path_buf(),
            nodes,
            by_key,
            next: ROOT + 1,
        }
    }

    /// The backing root.
    pub fn backing(&self) -> &Path {
        &self.backing
    }

    /// The graveyard's path.
    pub fn graveyard(&self) -> PathBuf {
        self.backing.join(GRAVEYARD)
    }

    /// The path of `grave` in the graveyard.
    pub fn grave_path(&self, grave: &OsStr) -> PathBuf {
        self.graveyard().join(grave)
    }

    /// A node by id.
    pub fn get(&self, id: NodeId) -> Option<&Node> {
        self.nodes.get(&id)
    }

    /// A node by id, to change.
    pub fn get_mut(&mut self, id: NodeId) -> Option<&mut Node> {
        self.nodes.get_mut(&id)
    }

    /// Every node id, in no order.
    pub fn ids(&self) -> Vec<NodeId> {
        self.nodes.keys().copied().collect()
    }

    /// The node with backing identity `key`, if one is known.
    pub fn by_key(&self, key: Key) -> Option<NodeId> {
        self.by_key.get(&key).copied()
    }

    /// The node for the backing file `key` of `kind` now at `loc`: the known
    /// one (its place updated), or a new one.
    pub fn intern(&mut self, key: Key, kind: Kind, loc: Loc) -> NodeId {
        if let Some(id) = self.by_key.get(&key).copied() {
            if let Some(node) = self.nodes.get_mut(&id) {
                if node.kind == kind && node.key == Some(key) {
                    node.loc = loc;
                    return id;
                }
            }
        }
        let id = self.next;
        self.next += 1;
        self.nodes.insert(
            id,
            Node {
                kind,
                key: Some(key),
                loc,
                open: 0,
                doomed: false,
            },
        );
        self.by_key.insert(key, id);
        id
    }

    /// Moves a node to a new place.
    pub fn set_loc(&mut self, id: NodeId, loc: Loc) {
        if let Some(node) = self.nodes.get_mut(&id) {
            node.loc = loc;
        }
    }

    /// Marks a node deleted for good: it loses its place and its identity.
    pub fn set_gone(&mut self, id: NodeId) {
        if let Some(node) = self.nodes.get_mut(&id) {
            node.loc = Loc::Gone;
            node.doomed = false;
            if let Some(key) = node.key.take() {
                if self.by_key.get(&key) == Some(&id) {
                    self.by_key.remove(&key);
                }
            }
        }
    }

    /// Where a node's backing file is now, if it still is anywhere.
    pub fn path(&self, id: NodeId) -> Option<PathBuf> {
        let mut names: Vec<&OsStr> = Vec::new();
        let mut at = id;
        // Deeper than this means a cycle, which the kernel's rename checks
        // rule out; stop rather than loop.
        for _ in 0..4096 {
            match &self.nodes.get(&at)?.loc {
                Loc::Root => {
                    let mut path = self.backing.clone();
                    path.extend(names.iter().rev());
                    return Some(path);
                }
                Loc::Child { parent, name } => {
                    names.push(name);
                    at = *parent;
                }
                Loc::Grave(grave) => {
                    let mut path = self.grave_path(grave);
                    path.extend(names.iter().rev());
                    return Some(path);
                }
                Loc::Gone => return None,
            }
        }
        None
    }

    /// The path of entry `name` in directory `parent`.
    pub fn child_path(&self, parent: NodeId, name: &OsStr) -> Option<PathBuf> {
        Some(self.path(parent)?.join(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Steps: a root, a directory `d` in it, a file `f` in `d`; rename `d` to
    /// `e`, then move `f` to the graveyard.
    /// Checks: paths follow the parent chain, a directory's rename moves its
    /// children, and a grave path is under the graveyard.
    #[test]
    fn paths_follow_renames_and_graves() {
        let mut t = NodeTable::new(Path::new("/b"), (1, 100));
        let d = t.intern(
            (1, 101),
            Kind::Dir,
            Loc::Child {
                parent: ROOT,
                name: "d".into(),
            },
        );
        let f = t.intern(
            (1, 102),
            Kind::File,
            Loc::Child {
                parent: d,
                name: "f".into(),
            },
        );
        assert_eq!(t.path(f).unwrap(), Path::new("/b/d/f"));
        t.set_loc(
            d,
            Loc::Child {
                parent: ROOT,
                name: "e".into(),
            },
        );
        assert_eq!(t.path(f).unwrap(), Path::new("/b/e/f"));
        t.set_loc(f, Loc::Grave("g7".into()));
        assert_eq!(
            t.path(f).unwrap(),
            Path::new("/b").join(GRAVEYARD).join("g7")
        );
    }

    /// Steps: intern a key twice, then mark it gone and intern the same key.
    /// Checks: the same id comes back while it exists; after it is gone the
    /// key (a reused backing inode) gets a fresh id, and the old one and its
    /// children have no path.
    #[test]
    fn a_gone_node_is_not_reused() {
        let mut t = NodeTable::new(Path::new("/b"), (1, 100));
        let at = |name: &str| Loc::Child {
            parent: ROOT,
            name: name.into(),
        };
        let a = t.intern((1, 5), Kind::Dir, at("a"));
        assert_eq!(t.intern((1, 5), Kind::Dir, at("a2")), a);
        let child = t.intern(
            (1, 6),
            Kind::File,
            Loc::Child {
                parent: a,
                name: "c".into(),
            },
        );
        t.set_gone(a);
        assert_eq!(t.path(a), None);
        assert_eq!(t.path(child), None);
        let b = t.intern((1, 5), Kind::File, at("b"));
        assert_ne!(a, b);
        // A different kind under a known key is a reused inode too.
        let c = t.intern((1, 5), Kind::Dir, at("c"));
        assert_ne!(b, c);
    }
}
