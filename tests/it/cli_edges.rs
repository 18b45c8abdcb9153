//! The CLI at its edges: output to a closed pipe ends the command cleanly (no panic, exit
//! 101; the exit code is the command's own), no colour off a terminal, and argument errors
//! in JSON mode.

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
    // A server that closes every connection without answering: the first attempt fails
    // (transiently) and is logged as a WARN line. (Nothing listening at all now fails at once,
    // without a retry.)
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            drop(conn);
        }
    });
    let model = tempfile::tempdir().unwrap();
    std::fs::write(model.path().join("a.txt"), b"a").unwrap();
    let out = Command::new(bin())
        .arg("push")
        .arg(model.path())
        .args([&format!("{addr}/x:v1"), "--retries", "2"])
        .env_remove("NO_COLOR")
        .output()
        .expect("run oci-model");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("WARN"), "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "ANSI escape in {stderr:?}");
    assert_eq!(out.status.code(), Some(3), "{stderr}");
}

#[test]
fn an_argument_error_in_json_mode_is_one_json_document() {
    for args in [
        &["-o", "json", "inspect", "localhost:5000/m:v1", "--bogus"][..],
        &["inspect", "--output=json", "--bogus"][..],
        &["--output", "json", "no-such-command"][..],
    ] {
        let out = Command::new(bin())
            .args(args)
            .output()
            .expect("run oci-model");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: stdout is not one JSON document ({e}): {out:?}"));
        assert_eq!(doc["ok"], false, "{doc}");
        assert_eq!(doc["exitCode"], 2, "{doc}");
        assert!(
            doc["error"]
                .as_str()
                .is_some_and(|e| !e.is_empty() && !e.starts_with("error:")),
            "{doc}"
        );
        // The person still gets clap's message with its usage on stderr.
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("Usage"),
            "{out:?}"
        );
    }
    // Text mode and --help print no JSON.
    let out = Command::new(bin())
        .args(["inspect", "--bogus"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let out = Command::new(bin())
        .args(["-o", "json", "inspect", "--help"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Usage"));
}

#[test]
fn an_os_error_is_printed_once() {
    let dir = tempfile::tempdir().unwrap();
    let layout = format!("oci:{}", dir.path().join("l").display());
    let missing = dir.path().join("nonexistent");
    for args in [
        vec![
            "push".to_string(),
            missing.display().to_string(),
            layout.clone(),
        ],
        vec![
            "sign".to_string(),
            format!("{layout}:v1"),
            "--keyless".to_string(),
            "--identity-token".to_string(),
            format!("@{}", missing.display()),
        ],
    ] {
        let out = Command::new(bin())
            .args(&args)
            .output()
            .expect("run oci-model");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            stderr.matches("os error 2").count(),
            1,
            "{args:?}: {stderr}"
        );
        assert!(stderr.contains("nonexistent"), "{stderr}");
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    }
}
