//! Output to a closed pipe (`oci-model … | head -c1`) ends the command cleanly: no panic
//! (exit 101), and the exit code is the command's own.

use std::process::{Command, Stdio};

fn bin() -> std::path::PathBuf {
    assert_cmd::cargo::cargo_bin("oci-model")
}

/// A pipe whose read end is already closed: every write to it fails with EPIPE.
fn closed_pipe() -> std::io::PipeWriter {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    writer
}

#[test]
fn a_closed_stdout_does_not_panic() {
    // `trusted-root show` prints several lines on success.
    let out = Command::new(bin())
        .args(["trusted-root", "show"])
        .stdout(closed_pipe())
        .stderr(Stdio::piped())
        .output()
        .expect("run oci-model");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}

#[test]
fn a_closed_stderr_keeps_the_commands_exit_code() {
    // A usage error (exit 2) whose message cannot be written is still exit 2, not a panic.
    let out = Command::new(bin())
        .args(["inspect", "not a reference"])
        .stdout(Stdio::piped())
        .stderr(closed_pipe())
        .output()
        .expect("run oci-model");
    assert_eq!(out.status.code(), Some(2));
    // Both closed, as in `oci-model … 2>&1 | head -c1`.
    let both = closed_pipe();
    let out = Command::new(bin())
        .args(["inspect", "not a reference"])
        .stdout(both.try_clone().unwrap())
        .stderr(both)
        .output()
        .expect("run oci-model");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn warnings_are_not_coloured_when_stderr_is_not_a_terminal() {
    // Nothing listens on port 1: the first attempt fails and is logged as a WARN line.
    let model = tempfile::tempdir().unwrap();
    std::fs::write(model.path().join("a.txt"), b"a").unwrap();
    let out = Command::new(bin())
        .arg("push")
        .arg(model.path())
        .args(["127.0.0.1:1/x:v1", "--retries", "2"])
        .env_remove("NO_COLOR")
        .output()
        .expect("run oci-model");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("WARN"), "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "ANSI escape in {stderr:?}");
    assert_eq!(out.status.code(), Some(3), "{stderr}");
}
