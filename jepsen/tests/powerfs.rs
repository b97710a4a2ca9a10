//! `orrery-powerfs` mounted for real: each test starts the built binary on a
//! fresh temporary backing directory and mount point (through
//! [`PowerFs::start`]), works through the mount point with ordinary file
//! calls, loses power, and checks what the mount (and so the backing
//! directory) shows afterwards. Needs root and /dev/fuse; without them each
//! test says so and passes without running.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use orrery_jepsen::powerfs::PowerFs;

/// A mounted instance and the directories behind it.
struct Mounted {
    fs: Option<PowerFs>,
    mount: PathBuf,
    backing: PathBuf,
    // Dropped last: the mount is gone by then.
    _dir: tempfile::TempDir,
}

impl Mounted {
    /// Starts `orrery-powerfs`. Mounting needs root and `/dev/fuse` (CI has
    /// both); without them the test fails rather than pass unchecked.
    async fn start() -> Mounted {
        assert!(
            nix::unistd::geteuid().is_root() && Path::new("/dev/fuse").exists(),
            "mounting FUSE needs root and /dev/fuse"
        );
        let dir = tempfile::tempdir().unwrap();
        let backing = dir.path().join("backing");
        let mount = dir.path().join("mnt");
        let fs = PowerFs::start(
            Path::new(env!("CARGO_BIN_EXE_orrery-powerfs")),
            &backing,
            &mount,
            &dir.path().join("control.sock"),
        )
        .await
        .unwrap();
        Mounted {
            fs: Some(fs),
            mount,
            backing,
            _dir: dir,
        }
    }

    /// A path under the mount point.
    fn path(&self, rel: &str) -> PathBuf {
        self.mount.join(rel)
    }

    /// The handle.
    fn fs(&self) -> &PowerFs {
        self.fs.as_ref().unwrap()
    }

    /// Loses power and returns the report.
    async fn lose_power(&self) -> orrery_jepsen::powerfs::PowerLossReport {
        self.fs().lose_power().await.unwrap()
    }

    /// Unmounts and checks the process ended cleanly.
    async fn stop(mut self) {
        self.fs.take().unwrap().stop().await.unwrap();
    }
}

/// fsync of a directory.
fn sync_dir(path: &Path) {
    File::open(path).unwrap().sync_all().unwrap();
}

/// Creates `path` with `content`, fsyncs it, and fsyncs its directory.
fn durable_file(path: &Path, content: &[u8]) {
    let mut f = File::create(path).unwrap();
    f.write_all(content).unwrap();
    f.sync_all().unwrap();
    sync_dir(path.parent().unwrap());
}

/// Writes at `offset` (opening without truncation) and closes, no sync.
fn write_at(path: &Path, offset: u64, data: &[u8]) {
    let f = OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(data, offset).unwrap();
}

/// Reads a whole file through a fresh open.
fn read(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap()
}

/// Steps: create `f` and fsync it and the directory with "durable"; append
/// " lost" and close without a sync; lose power.
/// Checks: the content and the size are back to "durable" (the report counts
/// one file and 5 bytes); the backing file agrees.
#[tokio::test]
async fn written_but_not_synced_data_is_gone() {
    let m = Mounted::start().await;
    let f = m.path("f");
    durable_file(&f, b"durable");
    write_at(&f, 7, b" lost");
    assert_eq!(read(&f), b"durable lost");
    let report = m.lose_power().await;
    assert_eq!((report.files, report.bytes, report.entries), (1, 5, 0));
    assert_eq!(read(&f), b"durable");
    assert_eq!(fs::metadata(&f).unwrap().len(), 7);
    assert_eq!(read(&m.backing.join("f")), b"durable");
    m.stop().await;
}

/// Steps: a durable empty `f`; write "kept" and fsync (sync_all); lose
/// power.
/// Checks: "kept" stays; the stats counted the fsync and nothing is pending.
#[tokio::test]
async fn fsynced_data_stays() {
    let m = Mounted::start().await;
    let f = m.path("f");
    durable_file(&f, b"");
    let mut file = OpenOptions::new().write(true).open(&f).unwrap();
    file.write_all(b"kept").unwrap();
    file.sync_all().unwrap();
    drop(file);
    let stats = m.fs().stats().await.unwrap();
    assert!(stats.fsyncs >= 2, "{stats:?}");
    assert_eq!(stats.pending_files, 0, "{stats:?}");
    let report = m.lose_power().await;
    assert_eq!(report.files, 0);
    assert_eq!(read(&f), b"kept");
    m.stop().await;
}

/// Steps: a durable empty `f`; write "kept" and fdatasync (sync_data); lose
/// power.
/// Checks: "kept" stays; the stats counted an fdatasync.
#[tokio::test]
async fn fdatasynced_data_stays() {
    let m = Mounted::start().await;
    let f = m.path("f");
    durable_file(&f, b"");
    let mut file = OpenOptions::new().write(true).open(&f).unwrap();
    file.write_all(b"kept").unwrap();
    file.sync_data().unwrap();
    drop(file);
    assert_eq!(m.fs().stats().await.unwrap().fdatasyncs, 1);
    m.lose_power().await;
    assert_eq!(read(&f), b"kept");
    m.stop().await;
}

/// Steps: a durable 64 KiB file of a pattern; overwrite 1000 bytes in the
/// middle and a 10-byte range at the start, without a sync; lose power.
/// Checks: the old bytes are back everywhere, size unchanged.
#[tokio::test]
async fn an_overwrite_inside_the_synced_size_reverts() {
    let m = Mounted::start().await;
    let f = m.path("f");
    let original: Vec<u8> = (0..65536u32).map(|i| (i % 251) as u8).collect();
    durable_file(&f, &original);
    write_at(&f, 30000, &[0xEE; 1000]);
    write_at(&f, 0, b"0123456789");
    assert_ne!(read(&f), original);
    let report = m.lose_power().await;
    assert_eq!((report.files, report.bytes), (1, 1010));
    assert_eq!(read(&f), original);
    m.stop().await;
}

/// Steps: a durable 10-byte file `t` cut to 3 bytes (set_len) and then
/// extended to 20 with a write at 18; a durable 10-byte file `e` extended
/// to 1 MiB (set_len); a durable file `p` with a hole punched in it
/// (fallocate); lose power.
/// Checks: all three are back to their synced sizes and bytes.
#[tokio::test]
async fn truncation_extension_and_hole_punching_revert() {
    let m = Mounted::start().await;
    let (t, e, p) = (m.path("t"), m.path("e"), m.path("p"));
    durable_file(&t, b"0123456789");
    durable_file(&e, b"0123456789");
    durable_file(&p, &[7u8; 8192]);
    let file = OpenOptions::new().write(true).open(&t).unwrap();
    file.set_len(3).unwrap();
    file.write_all_at(b"zz", 18).unwrap();
    drop(file);
    assert_eq!(read(&t), b"012\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0zz");
    OpenOptions::new()
        .write(true)
        .open(&e)
        .unwrap()
        .set_len(1 << 20)
        .unwrap();
    let file = OpenOptions::new().write(true).open(&p).unwrap();
    let punch = nix::fcntl::FallocateFlags::FALLOC_FL_PUNCH_HOLE
        | nix::fcntl::FallocateFlags::FALLOC_FL_KEEP_SIZE;
    nix::fcntl::fallocate(&file, punch, 100, 4000).unwrap();
    drop(file);
    assert_eq!(read(&p)[200], 0);
    let report = m.lose_power().await;
    assert_eq!(report.files, 3);
    assert_eq!(read(&t), b"0123456789");
    assert_eq!(read(&e), b"0123456789");
    assert_eq!(read(&p), vec![7u8; 8192]);
    m.stop().await;
}

/// Steps: create `new`, write and fsync it, but do not fsync the directory;
/// lose power.
/// Checks: `new` no longer exists (its entry was never durable), in the
/// mount and in the backing directory.
#[tokio::test]
async fn a_created_and_fsynced_file_without_a_dir_fsync_vanishes() {
    let m = Mounted::start().await;
    let f = m.path("new");
    let mut file = File::create(&f).unwrap();
    file.write_all(b"data").unwrap();
    file.sync_all().unwrap();
    drop(file);
    let report = m.lose_power().await;
    assert_eq!(report.entries, 1);
    assert!(!f.exists());
    assert!(!m.backing.join("new").exists());
    assert_eq!(fs::read_dir(&m.mount).unwrap().count(), 0);
    m.stop().await;
}

/// Steps: create `new` in a durable subdirectory `d`, write and fsync it,
/// then fsync `d`; lose power.
/// Checks: `d/new` stays with its data.
#[tokio::test]
async fn a_created_and_fsynced_file_with_a_dir_fsync_stays() {
    let m = Mounted::start().await;
    fs::create_dir(m.path("d")).unwrap();
    sync_dir(&m.mount);
    let f = m.path("d/new");
    let mut file = File::create(&f).unwrap();
    file.write_all(b"data").unwrap();
    file.sync_all().unwrap();
    drop(file);
    sync_dir(&m.path("d"));
    let report = m.lose_power().await;
    assert_eq!((report.files, report.entries), (0, 0));
    assert_eq!(read(&f), b"data");
    m.stop().await;
}

/// Steps: a durable `f` with "synced"; append to it without a sync; unlink
/// it without a directory fsync; lose power.
/// Checks: `f` is back under its name with its synced content only.
#[tokio::test]
async fn an_unlink_without_a_dir_fsync_comes_back() {
    let m = Mounted::start().await;
    let f = m.path("f");
    durable_file(&f, b"synced");
    write_at(&f, 6, b" unsynced");
    fs::remove_file(&f).unwrap();
    assert!(!f.exists());
    let report = m.lose_power().await;
    assert_eq!((report.files, report.entries), (1, 1));
    assert_eq!(read(&f), b"synced");
    m.stop().await;
}

/// Steps: durable `snap.tmp` ("new") and `snap` ("old"); rename `snap.tmp`
/// over `snap` (as sled does with its snapshots), and `x` to `y`, without a
/// directory fsync; lose power.
/// Checks: `snap.tmp` is back with "new", `snap` is back with "old" (the
/// replaced target was restored), `x` is back and `y` is gone.
#[tokio::test]
async fn a_rename_without_a_dir_fsync_reverts() {
    let m = Mounted::start().await;
    durable_file(&m.path("snap.tmp"), b"new");
    durable_file(&m.path("snap"), b"old");
    durable_file(&m.path("x"), b"x");
    fs::rename(m.path("snap.tmp"), m.path("snap")).unwrap();
    fs::rename(m.path("x"), m.path("y")).unwrap();
    assert_eq!(read(&m.path("snap")), b"new");
    let report = m.lose_power().await;
    assert_eq!(report.entries, 2);
    assert_eq!(read(&m.path("snap.tmp")), b"new");
    assert_eq!(read(&m.path("snap")), b"old");
    assert_eq!(read(&m.path("x")), b"x");
    assert!(!m.path("y").exists());
    m.stop().await;
}

/// Steps: a durable `f` with "AAAA"; read it (the kernel caches its pages);
/// overwrite with "BBBBBB" and read that too; close; lose power; reopen and
/// read, and stat.
/// Checks: the reopened file reads "AAAA" and has size 4: no stale page or
/// attribute from the kernel's caches.
#[tokio::test]
async fn a_file_reopened_after_power_loss_reads_the_rolled_back_bytes() {
    let m = Mounted::start().await;
    let f = m.path("f");
    durable_file(&f, b"AAAA");
    assert_eq!(read(&f), b"AAAA");
    write_at(&f, 0, b"BBBBBB");
    let mut file = File::open(&f).unwrap();
    let mut seen = Vec::new();
    file.read_to_end(&mut seen).unwrap();
    assert_eq!(seen, b"BBBBBB");
    drop(file);
    m.lose_power().await;
    assert_eq!(fs::metadata(&f).unwrap().len(), 4);
    let mut file = File::open(&f).unwrap();
    let mut seen = Vec::new();
    file.read_to_end(&mut seen).unwrap();
    assert_eq!(seen, b"AAAA");
    m.stop().await;
}

/// Steps: a durable `src` and `dst`; copy `src` into `dst` with
/// `copy_file_range` (std::io::copy between files uses it); lose power.
/// Checks: `dst` is back to its synced content.
#[tokio::test]
async fn a_copy_file_range_reverts() {
    let m = Mounted::start().await;
    durable_file(&m.path("src"), b"source bytes");
    durable_file(&m.path("dst"), b"dst");
    let mut from = File::open(m.path("src")).unwrap();
    let mut to = OpenOptions::new().write(true).open(m.path("dst")).unwrap();
    std::io::copy(&mut from, &mut to).unwrap();
    drop((from, to));
    assert_eq!(read(&m.path("dst")), b"source bytes");
    m.lose_power().await;
    assert_eq!(read(&m.path("dst")), b"dst");
    m.stop().await;
}

/// Steps, as sled and the store use the mount: flock the `db` file
/// exclusively; a second open file description tries the same lock; 2,000
/// small pwrites at growing offsets with an fdatasync every 100 (the last
/// 50 writes unsynced); a second, read-only open of the file fsyncs it
/// halfway through; `blobs/` created and fsynced with its parent; lose
/// power; stop.
/// Checks: the second lock fails with EWOULDBLOCK (the kernel's local flock
/// works); after the power loss
/// the file holds exactly the synced prefix; `blobs/` stays; the process
/// stops cleanly once unmounted.
#[tokio::test]
async fn a_sled_like_workload_runs() {
    use nix::fcntl::{Flock, FlockArg};
    let m = Mounted::start().await;
    fs::create_dir(m.path("blobs")).unwrap();
    sync_dir(&m.path("blobs"));
    sync_dir(&m.mount);
    let db = m.path("db");
    durable_file(&db, b"");
    let file = OpenOptions::new().read(true).write(true).open(&db).unwrap();
    let locked = Flock::lock(file, FlockArg::LockExclusiveNonblock).unwrap();
    let other = OpenOptions::new().read(true).write(true).open(&db).unwrap();
    match Flock::lock(other, FlockArg::LockExclusiveNonblock) {
        Err((_, errno)) => assert_eq!(errno, nix::errno::Errno::EWOULDBLOCK),
        Ok(_) => panic!("a second exclusive flock succeeded"),
    }
    let record = [0x5Au8; 64];
    for i in 0..2000u64 {
        locked.write_all_at(&record, i * 64).unwrap();
        if i == 1000 {
            // Another process's read-only handle, opened only to fsync.
            File::open(&db).unwrap().sync_all().unwrap();
        }
        if i % 100 == 99 && i < 1900 {
            locked.sync_data().unwrap();
        }
    }
    drop(locked);
    let report = m.lose_power().await;
    assert_eq!(report.files, 1);
    assert_eq!(fs::metadata(&db).unwrap().len(), 1900 * 64);
    assert!(read(&db).iter().all(|b| *b == 0x5A));
    assert!(m.path("blobs").is_dir());
    let stats = m.fs().stats().await.unwrap();
    assert_eq!((stats.pending_files, stats.pending_entries), (0, 0));
    m.stop().await;
}

/// Steps: keep a file open on the mount (busy) and stop.
/// Checks: stop detaches the mount and the process ends within a few
/// seconds; the mount point is no longer a mount; the open file then fails
/// rather than hangs.
#[tokio::test]
async fn stop_with_a_busy_mount_detaches_and_ends() {
    let m = Mounted::start().await;
    durable_file(&m.path("f"), b"f");
    let open = File::open(m.path("f")).unwrap();
    let mount = m.mount.clone();
    let started = Instant::now();
    m.stop().await;
    assert!(started.elapsed().as_secs() < 5, "{:?}", started.elapsed());
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(mount.to_str().unwrap()));
    assert!(open.read_at(&mut [0u8; 1], 0).is_err());
}

/// Steps: run `orrery-powerfs` directly on a mount point and SIGKILL it,
/// leaving a dead mount ("Transport endpoint is not connected"); start a
/// new instance on the same mount point through `PowerFs::start`; write,
/// lose power.
/// Checks: the new instance clears the dead mount, mounts, and works.
#[tokio::test]
async fn a_dead_mount_left_by_a_killed_process_is_cleared() {
    assert!(
        nix::unistd::geteuid().is_root() && Path::new("/dev/fuse").exists(),
        "mounting FUSE needs root and /dev/fuse"
    );
    let dir = tempfile::tempdir().unwrap();
    let (backing, mount) = (dir.path().join("backing"), dir.path().join("mnt"));
    let control = dir.path().join("control.sock");
    let binary = Path::new(env!("CARGO_BIN_EXE_orrery-powerfs"));
    let mut first = std::process::Command::new(binary)
        .arg("--backing")
        .arg(&backing)
        .arg("--mount")
        .arg(&mount)
        .arg("--control")
        .arg(&control)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + std::time::Duration::from_secs(20);
    while orrery_jepsen::powerfs::request_blocking(&control, orrery_jepsen::powerfs::Request::Ping)
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "the first instance did not mount"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    first.kill().unwrap();
    first.wait().unwrap();
    let dead = fs::metadata(&mount).unwrap_err();
    assert_eq!(
        dead.raw_os_error(),
        Some(nix::errno::Errno::ENOTCONN as i32)
    );

    let fs = PowerFs::start(binary, &backing, &mount, &control)
        .await
        .unwrap();
    let f = mount.join("f");
    durable_file(&f, b"ok");
    write_at(&f, 0, b"no");
    fs.lose_power().await.unwrap();
    assert_eq!(read(&f), b"ok");
    fs.stop().await.unwrap();
}
