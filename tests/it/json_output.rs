//! `-o json` output scripts can trust: every command's document matches its JSON Schema under
//! `docs/schemas/`, starts with `ok`, and a field name means the same JSON type in every
//! document. The checker below covers the schema keywords those files use (`type`,
//! `properties`, `required`, `items` (a schema or a tuple), `enum`, `anyOf`, `$ref` to
//! `#/$defs/…`): the `jsonschema` crate would add a large dependency tree for that.

use crate::harness::{self, Registry};
use crate::support::{output, small_model};
use serde_json::Value;
use std::collections::BTreeMap;

pub(crate) fn schema(command: &str) -> Value {
    let path = harness::project_root()
        .join("docs/schemas")
        .join(format!("{command}.schema.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("schema {} missing: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Every way `value` breaks `schema` (empty: it matches).
pub(crate) fn check(
    root: &Value,
    schema: &Value,
    value: &Value,
    at: &str,
    errors: &mut Vec<String>,
) {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.strip_prefix("#/$defs/").expect("local $ref");
        return check(root, &root["$defs"][name], value, at, errors);
    }
    if let Some(any) = schema.get("anyOf").and_then(Value::as_array) {
        let fits = any.iter().any(|s| {
            let mut e = Vec::new();
            check(root, s, value, at, &mut e);
            e.is_empty()
        });
        if !fits {
            errors.push(format!("{at}: matches none of anyOf"));
        }
    }
    if let Some(t) = schema.get("type") {
        let allowed: Vec<&str> = match t {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => panic!("bad type in schema at {at}"),
        };
        let actual = type_name(value);
        let ok = allowed.contains(&actual) || (actual == "integer" && allowed.contains(&"number"));
        if !ok {
            errors.push(format!("{at}: {actual}, expected {allowed:?}"));
            return;
        }
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        if !values.contains(value) {
            errors.push(format!("{at}: {value} not in {values:?}"));
        }
    }
    if let Value::Object(fields) = value {
        for name in schema["required"].as_array().into_iter().flatten() {
            let name = name.as_str().unwrap();
            if !fields.contains_key(name) {
                errors.push(format!("{at}: missing {name}"));
            }
        }
        if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            for (name, sub) in props {
                if let Some(v) = fields.get(name) {
                    check(root, sub, v, &format!("{at}.{name}"), errors);
                }
            }
            // Every field a command prints is written down.
            for name in fields.keys() {
                if !props.contains_key(name) {
                    errors.push(format!("{at}: field {name} is not in the schema"));
                }
            }
        }
    }
    if let Value::Array(items) = value {
        match schema.get("items") {
            Some(Value::Array(tuple)) => {
                for (i, (s, v)) in tuple.iter().zip(items).enumerate() {
                    check(root, s, v, &format!("{at}[{i}]"), errors);
                }
            }
            Some(s) => {
                for (i, v) in items.iter().enumerate() {
                    check(root, s, v, &format!("{at}[{i}]"), errors);
                }
            }
            None => {}
        }
    }
}

/// Fields whose value is a document in another format (in-toto statements, annotations, the
/// ModelPack config, the Sigstore trusted root): their inner names follow that format.
const FOREIGN: &[&str] = &[
    "subjects",
    "annotations",
    "content",
    "certificateAuthorities",
    "tlogs",
    "ctlogs",
    "timestampAuthorities",
    "provenance",
];

/// Record the JSON type of every field name in `value` (outside foreign documents).
fn field_types(
    value: &Value,
    command: &str,
    seen: &mut BTreeMap<String, BTreeMap<&'static str, String>>,
) {
    match value {
        Value::Object(fields) => {
            for (name, v) in fields {
                if !v.is_null() {
                    seen.entry(name.clone())
                        .or_default()
                        .entry(match type_name(v) {
                            "integer" => "number",
                            t => t,
                        })
                        .or_insert_with(|| command.to_string());
                }
                if !FOREIGN.contains(&name.as_str()) {
                    field_types(v, command, seen);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| field_types(v, command, seen)),
        _ => {}
    }
}

#[test]
fn every_commands_json_matches_its_schema_and_names_mean_one_type() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = |name: &str| tmp.path().join(name).display().to_string();
    let reg = Registry::start_with_htpasswd("alice", "alice-pw-9");
    let docker = tmp.path().join("docker");
    let model = dir("m");
    small_model(std::path::Path::new(&model));
    let target = format!("{}/{}:v1", reg.host, harness::repo("json"));
    let (key, public) = (format!("{}.key", dir("k")), format!("{}.pub", dir("k")));
    let sig = dir("model.sig");
    let layout = format!("oci:{}:v1", dir("layout"));

    // (schema, arguments, exit code): in an order where each step has what it needs.
    let steps: Vec<(&str, Vec<String>, i32)> = vec![
        (
            "generate-key-pair",
            vec![
                "generate-key-pair".into(),
                "--no-password".into(),
                "--output-key-prefix".into(),
                dir("k"),
            ],
            0,
        ),
        (
            "generate-key-pair",
            vec![
                "generate-key-pair".into(),
                "--no-password".into(),
                "--output-key-prefix".into(),
                dir("other"),
            ],
            0,
        ),
        (
            "login",
            vec![
                "login".into(),
                reg.host.clone(),
                "-u".into(),
                "alice".into(),
                "--password-stdin".into(),
            ],
            0,
        ),
        (
            "push",
            vec!["push".into(), model.clone(), target.clone()],
            0,
        ),
        ("inspect", vec!["inspect".into(), target.clone()], 0),
        (
            "sign",
            vec!["sign".into(), target.clone(), "--key".into(), key.clone()],
            0,
        ),
        (
            "attest",
            vec![
                "attest".into(),
                target.clone(),
                "--provenance".into(),
                "--key".into(),
                key.clone(),
            ],
            0,
        ),
        (
            "verify",
            vec![
                "verify".into(),
                target.clone(),
                "--key".into(),
                public.clone(),
            ],
            0,
        ),
        (
            "verify",
            vec![
                "verify".into(),
                target.clone(),
                "--key".into(),
                public.clone(),
                "--provenance-builder-id".into(),
                "x".into(),
            ],
            1,
        ),
        ("discover", vec!["discover".into(), target.clone()], 0),
        (
            "pull",
            vec![
                "pull".into(),
                target.clone(),
                dir("pulled"),
                "--key".into(),
                public.clone(),
            ],
            0,
        ),
        (
            "pull",
            vec!["pull".into(), target.clone(), dir("pulled-plain")],
            0,
        ),
        (
            "error",
            vec![
                "pull".into(),
                target.clone(),
                dir("refused"),
                "--key".into(),
                format!("{}.pub", dir("other")),
            ],
            1,
        ),
        (
            "copy",
            vec!["copy".into(), target.clone(), layout.clone()],
            0,
        ),
        ("inspect", vec!["inspect".into(), layout.clone()], 0),
        (
            "sign-local",
            vec![
                "sign-local".into(),
                model.clone(),
                "--key".into(),
                key.clone(),
                "--signature".into(),
                sig.clone(),
            ],
            0,
        ),
        (
            "verify-local",
            vec![
                "verify-local".into(),
                model.clone(),
                "--key".into(),
                public.clone(),
                "--signature".into(),
                sig.clone(),
            ],
            0,
        ),
        (
            "trusted-root",
            vec!["trusted-root".into(), "show".into()],
            0,
        ),
        ("completion", vec!["completion".into(), "bash".into()], 0),
        (
            "error",
            vec!["inspect".into(), format!("{}/nothing:v1", reg.host)],
            4,
        ),
        ("logout", vec!["logout".into(), reg.host.clone()], 0),
        ("error", vec!["push".into(), model.clone()], 2),
    ];
    let mut seen = BTreeMap::new();
    let mut root_digest = String::new();
    for (name, args, code) in &steps {
        let mut cmd = harness::bin();
        cmd.env("DOCKER_CONFIG", &docker)
            .args(["-o", "json"])
            .args(args)
            .write_stdin("alice-pw-9\n");
        let (got, stdout, stderr) = output(&mut cmd);
        assert_eq!(got, *code, "{args:?}: {stderr}\n{stdout}");
        let doc: Value = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("{args:?}: not one JSON document ({e}): {stdout}"));
        let first = doc.as_object().and_then(|o| o.keys().next()).cloned();
        assert_eq!(first.as_deref(), Some("ok"), "{args:?}: {stdout}");
        assert_eq!(doc["ok"], *code == 0, "{args:?}: {stdout}");
        let schema = schema(name);
        let mut errors = Vec::new();
        check(&schema, &schema, &doc, name, &mut errors);
        assert!(
            errors.is_empty(),
            "{args:?} against docs/schemas/{name}.schema.json: {errors:#?}\n{stdout}"
        );
        if *name == "sign-local" {
            root_digest = doc["rootDigest"].as_str().unwrap().to_string();
        }
        field_types(&doc, &args[0], &mut seen);
    }
    // verify-bundle over the local signature (its subject is the files' root digest).
    let mut cmd = harness::bin();
    cmd.args([
        "-o",
        "json",
        "verify-bundle",
        "--bundle",
        &sig,
        "--digest",
        &root_digest,
        "--key",
        &public,
    ]);
    let (code, stdout, stderr) = output(&mut cmd);
    assert_eq!(code, 0, "{stderr}");
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    let schema = schema("verify-bundle");
    let mut errors = Vec::new();
    check(&schema, &schema, &doc, "verify-bundle", &mut errors);
    assert!(errors.is_empty(), "{errors:#?}\n{stdout}");
    field_types(&doc, "verify-bundle", &mut seen);

    // `pull --key` carries its verification report.
    let clash: Vec<String> = seen
        .iter()
        .filter(|(_, types)| types.len() > 1)
        .map(|(name, types)| format!("{name}: {types:?}"))
        .collect();
    assert!(clash.is_empty(), "one name, several types: {clash:#?}");
}

#[test]
fn pull_with_a_key_includes_the_verification_report() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::start();
    let model = tmp.path().join("m");
    small_model(&model);
    let target = format!("{}/{}:v1", reg.host, harness::repo("pullkey"));
    crate::support::push(&model, &target);
    let (key, public) = crate::support::keypair(tmp.path(), "k");
    crate::support::sign(&target, &key, &[]);
    let mut cmd = harness::bin();
    cmd.args(["pull", &target])
        .arg(tmp.path().join("out"))
        .arg("--key")
        .arg(&public)
        .args(["-o", "json"]);
    let (code, stdout, stderr) = output(&mut cmd);
    assert_eq!(code, 0, "{stderr}");
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(doc["verification"]["ok"], true, "{doc:#}");
    assert_eq!(doc["verification"]["policy"]["passed"], true, "{doc:#}");
    assert!(
        doc["verification"]["bundles"]
            .as_array()
            .is_some_and(|b| b.len() == 2),
        "{doc:#}"
    );
    // Refused: the error document carries the report that says why; nothing written.
    let (_, other) = crate::support::keypair(tmp.path(), "other");
    let mut cmd = harness::bin();
    cmd.args(["pull", &target])
        .arg(tmp.path().join("refused"))
        .arg("--key")
        .arg(&other)
        .args(["-o", "json"]);
    let (code, stdout, stderr) = output(&mut cmd);
    assert_eq!(code, 1, "{stderr}");
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(doc["ok"], false, "{doc:#}");
    assert_eq!(doc["exitCode"], 1, "{doc:#}");
    assert!(
        doc["error"]
            .as_str()
            .is_some_and(|e| e.contains("nothing was written")),
        "{doc:#}"
    );
    assert_eq!(doc["verification"]["ok"], false, "{doc:#}");
    assert!(!tmp.path().join("refused").exists());
}
