use crate::harness;

#[test]
fn registry_harness_serves_the_distribution_api() {
    let reg = harness::Registry::start();
    let out = std::process::Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!("{}/v2/", reg.url()))
        .output()
        .expect("curl");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200");
}

#[test]
fn help_lists_every_command() {
    let out = harness::bin().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for cmd in [
        "push",
        "pull",
        "copy",
        "inspect",
        "sign",
        "attest",
        "verify",
        "discover",
        "generate-key-pair",
        "login",
        "logout",
        "sign-local",
        "verify-local",
        "verify-bundle",
        "trusted-root",
        "completion",
    ] {
        assert!(text.contains(cmd), "--help lacks {cmd}: {text}");
    }
}

#[test]
fn malformed_reference_is_a_usage_error() {
    harness::bin()
        .args(["inspect", "http://localhost:5000/x"])
        .assert()
        .code(2);
}
