//! Pull is a transaction: a pull that fails — a disk that fills up halfway, a declared size no
//! disk can hold — leaves the target directory exactly as it was, the user's files included.

use crate::signals::{partial_written, spawn, wait_until, Serve, SlowRegistry};
use crate::support;
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A tmpfs of `size` mounted on a new directory, unmounted on drop.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    /// Needs root (mount(2)); `None` (and why) where mounting is not allowed.
    fn mount(size: &str) -> Result<SmallDisk, String> {
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(SmallDisk { dir })
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        // Lazy: detached even while a failed test's process still has a file open there.
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// A 2 MiB filesystem holding the user's files; a pull with --overwrite of a model that fits
/// when it starts, but the disk fills up (another writer) before its second file arrives.
#[test]
fn a_disk_that_fills_up_mid_pull_leaves_the_users_files_intact() {
    let disk = match SmallDisk::mount("2m") {
        Ok(d) => d,
        // Mounting needs root: say so rather than pass quietly.
        Err(e) => panic!("cannot mount a 2 MiB tmpfs for this test (run the tests as root): {e}"),
    };
    let dir = disk.path().join("model");
    support::write(&dir, "a.bin", &crate::harness::pseudo_random(300 << 10, 1));
    support::write(&dir, "sub/b.bin", b"my b");
    support::write(&dir, "keep.txt", b"mine");
    let before = support::tree(disk.path());
    let go = Arc::new(AtomicBool::new(false));
    let registry = SlowRegistry::start(vec![
        (
            "a.bin",
            crate::harness::pseudo_random(400 << 10, 2),
            None,
            Serve::Whole,
        ),
        ("sub/b.bin", b"new b".to_vec(), None, Serve::Whole),
        (
            "new/dir/c.bin",
            crate::harness::pseudo_random(600 << 10, 3),
            None,
            Serve::WaitFor(go.clone()),
        ),
    ]);
    // Over the user's files with --overwrite, then into directories the pull creates.
    let fresh = disk.path().join("fresh/deeper/out");
    for (target, extra) in [(&dir, "--overwrite"), (&fresh, "-v")] {
        go.store(false, Ordering::SeqCst);
        let mut child = spawn(&[
            "pull",
            "--plain-http",
            &registry.target(),
            target.to_str().unwrap(),
            extra,
        ]);
        // The first files are staged; then someone else takes every free byte.
        wait_until("the first files staged", || {
            partial_written(disk.path(), 400 << 10)
        });
        let filler = disk.path().join("filler");
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 4096];
        while std::io::Write::write_all(&mut f, &chunk).is_ok() {}
        drop(f);
        go.store(true, Ordering::SeqCst);
        let status = child.wait().unwrap();
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        assert_eq!(status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("No space left on device"), "{stderr}");
        std::fs::remove_file(&filler).unwrap();
        assert_eq!(support::tree(disk.path()), before, "{stderr}");
        assert!(!disk.path().join("fresh").exists(), "{stderr}");
    }
    let mut names = support::entries(&dir);
    names.sort();
    assert_eq!(names, ["a.bin", "keep.txt", "sub", "sub/b.bin"]);
}

/// A layer that declares 1 TiB (the file signature does not bind sizes) is refused before a
/// byte is fetched or written.
#[test]
fn a_declared_size_no_disk_holds_is_refused_before_anything_is_fetched() {
    let registry = SlowRegistry::start(vec![
        ("a.bin", b"a".to_vec(), None, Serve::Whole),
        ("huge.bin", vec![0u8; 1024], Some(1 << 40), Serve::Whole),
    ]);
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("out");
    let (code, _, stderr) = support::run(&[
        "pull",
        "--plain-http",
        &registry.target(),
        dir.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("not enough free space"), "{stderr}");
    assert!(stderr.contains("1.0 TiB"), "{stderr}");
    assert!(registry.requested.lock().unwrap().is_empty());
    assert!(support::entries(parent.path()).is_empty());
}
