#!/usr/bin/env python3
"""Builds a small TUF repository for tests/it/tuf.rs with python-tuf, the reference TUF
implementation (pinned in scripts/requirements-interop.txt), so `oci-model trusted-root update`
is tested against metadata it did not write itself.

The repository publishes one target, `trusted_root.json`, the way Sigstore's does: consistent
snapshots (`N.snapshot.json`, `N.targets.json`, `targets/<sha256>.trusted_root.json`), one
ECDSA P-256 key per top-level role.

    tuf-test-repo.py init    REPO KEYS TRUSTED_ROOT   # 1.root.json and version 1 of the rest
    tuf-test-repo.py publish REPO KEYS TRUSTED_ROOT [--expired] [--bad-signature]
                                                      # the next version of targets, snapshot
                                                      # and timestamp
    tuf-test-repo.py rotate-root REPO KEYS TRUSTED_ROOT
                                                      # the next root.json, with new root and
                                                      # timestamp keys (signed by the old and
                                                      # the new root key), then publish

REPO is what the test serves; KEYS (private keys, current versions) is not served.
--expired signs a timestamp that expired yesterday; --bad-signature signs the timestamp with a
key the root does not list.
"""

import argparse
import datetime
import hashlib
import json
import os
import sys

from cryptography.hazmat.primitives import serialization
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import (
    MetaFile,
    Metadata,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization.json import JSONSerializer

ROLES = ["root", "timestamp", "snapshot", "targets"]
TARGET = "trusted_root.json"


def now():
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def signer(keys, role):
    """The role's signer, generated on first use and kept as PEM in KEYS."""
    path = os.path.join(keys, f"{role}.pem")
    if os.path.exists(path):
        with open(path, "rb") as f:
            private = serialization.load_pem_private_key(f.read(), password=None)
        return CryptoSigner(private)
    s = CryptoSigner.generate_ecdsa()
    with open(path, "wb") as f:
        f.write(s.private_bytes)
    return s


def to_bytes(md):
    return md.to_bytes(JSONSerializer(compact=False))


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def meta(data, version):
    return MetaFile(
        version=version,
        length=len(data),
        hashes={"sha256": hashlib.sha256(data).hexdigest()},
    )


def init(repo, keys):
    os.makedirs(repo, exist_ok=True)
    os.makedirs(keys, exist_ok=True)
    root = Root(expires=now() + datetime.timedelta(days=365), consistent_snapshot=True)
    signers = {role: signer(keys, role) for role in ROLES}
    for role, s in signers.items():
        root.add_key(s.public_key, role)
    md = Metadata(root)
    md.sign(signers["root"])
    write(os.path.join(repo, "1.root.json"), to_bytes(md))


def rotate_root(repo, keys):
    version = max(
        int(name.split(".")[0])
        for name in os.listdir(repo)
        if name.endswith(".root.json")
    )
    md = Metadata.from_file(os.path.join(repo, f"{version}.root.json"))
    root = md.signed
    old_root_signer = signer(keys, "root")
    for role in ["root", "timestamp"]:
        for keyid in list(root.roles[role].keyids):
            root.revoke_key(keyid, role)
        os.remove(os.path.join(keys, f"{role}.pem"))
        root.add_key(signer(keys, role).public_key, role)
    root.version = version + 1
    root.expires = now() + datetime.timedelta(days=365)
    md.signatures.clear()
    md.sign(old_root_signer, append=True)
    md.sign(signer(keys, "root"), append=True)
    write(os.path.join(repo, f"{root.version}.root.json"), to_bytes(md))


def publish(repo, keys, trusted_root, expired, bad_signature):
    state_path = os.path.join(keys, "version")
    version = 1
    if os.path.exists(state_path):
        with open(state_path) as f:
            version = int(f.read()) + 1
    with open(trusted_root, "rb") as f:
        content = f.read()

    targets = Targets(version=version, expires=now() + datetime.timedelta(days=365))
    target = TargetFile.from_data(TARGET, content, ["sha256"])
    targets.targets[TARGET] = target
    write(
        os.path.join(repo, "targets", f"{target.hashes['sha256']}.{TARGET}"),
        content,
    )
    md = Metadata(targets)
    md.sign(signer(keys, "targets"))
    targets_bytes = to_bytes(md)
    write(os.path.join(repo, f"{version}.targets.json"), targets_bytes)

    snapshot = Snapshot(
        version=version,
        expires=now() + datetime.timedelta(days=365),
        meta={"targets.json": meta(targets_bytes, version)},
    )
    md = Metadata(snapshot)
    md.sign(signer(keys, "snapshot"))
    snapshot_bytes = to_bytes(md)
    write(os.path.join(repo, f"{version}.snapshot.json"), snapshot_bytes)

    expires = now() + (
        datetime.timedelta(days=-1) if expired else datetime.timedelta(days=7)
    )
    timestamp = Timestamp(
        version=version,
        expires=expires,
        snapshot_meta=meta(snapshot_bytes, version),
    )
    md = Metadata(timestamp)
    md.sign(CryptoSigner.generate_ecdsa() if bad_signature else signer(keys, "timestamp"))
    write(os.path.join(repo, "timestamp.json"), to_bytes(md))

    with open(state_path, "w") as f:
        f.write(str(version))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("command", choices=["init", "publish", "rotate-root"])
    p.add_argument("repo")
    p.add_argument("keys")
    p.add_argument("trusted_root")
    p.add_argument("--expired", action="store_true")
    p.add_argument("--bad-signature", action="store_true")
    a = p.parse_args()
    if a.command == "init":
        init(a.repo, a.keys)
    if a.command == "rotate-root":
        rotate_root(a.repo, a.keys)
    publish(a.repo, a.keys, a.trusted_root, a.expired, a.bad_signature)
    print(json.dumps({"repo": a.repo}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
