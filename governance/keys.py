"""MPC node key pairs: Ed25519 (PyNaCl), one private key file per node.

A key file `<node>.key` in settings.CHRONOSX_NODE_KEY_DIR holds one node's private
key and its key id, mode 0600. Only the public key ever reaches the database
(NodeKey). A node process (settings.CHRONOSX_NODE set) loads its own file and
nothing else; in embedded mode the one process runs all three nodes, each from its
own file; any other process (web server, governance or router worker) loads none.
"""

import base64
import hashlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import transaction
from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from governance.models import Node, NodeKey
from ledger.services import audit_record

log = logging.getLogger(__name__)

KEY_FILE_FORMAT = "chronosx-node-key-v1"


class NodeKeyError(Exception):
    """A key that may not or cannot be loaded, generated or registered."""


@dataclass(frozen=True)
class NodeSigner:
    node: str
    key_id: str
    signing_key: SigningKey

    @property
    def public_key_b64(self) -> str:
        return b64(bytes(self.signing_key.verify_key))

    def sign(self, message: bytes) -> str:
        return b64(self.signing_key.sign(message).signature)


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def key_id_for(*, node: str, public_key: bytes) -> str:
    """`<node>-<first 16 hex of SHA-256(public key)>`: anyone holding the public key can recompute it."""
    return f"{node}-{hashlib.sha256(public_key).hexdigest()[:16]}"


def key_path(node: str) -> Path:
    _check_node(node)
    return Path(settings.CHRONOSX_NODE_KEY_DIR) / f"{node}.key"


def _check_node(node: str):
    if node not in Node.values:
        raise NodeKeyError(f"unknown node {node!r}; nodes are {', '.join(Node.values)}")


# --- loading ---------------------------------------------------------------------


def may_load(node: str) -> tuple[bool, str]:
    """Whether this process may hold `node`'s private key at all."""
    _check_node(node)
    own = settings.CHRONOSX_NODE
    if own:
        if own != node:
            return False, f"this process is node {own!r}; it never loads or signs as {node!r}"
        return True, ""
    if settings.EMBEDDED_TASKS:
        return True, ""
    return False, "this process is not an MPC node (CHRONOSX_NODE is unset) and not embedded"


_signers: dict[str, tuple[tuple, NodeSigner]] = {}


def node_signer(node: str) -> NodeSigner:
    """The signing key of `node`, if this process may hold it. Raises NodeKeyError.

    The file is read again only when it changes (a rotation writes a new file), not on
    every vote."""
    allowed, why = may_load(node)
    if not allowed:
        raise NodeKeyError(why)
    path = key_path(node)
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise NodeKeyError(f"no key file for node {node!r} at {path}")
    version = (str(path), stat.st_mtime_ns, stat.st_size, stat.st_ino)
    cached = _signers.get(node)
    if cached is None or cached[0] != version:
        cached = _signers[node] = (version, _read_key_file(path, node))
    return cached[1]


def _read_key_file(path: Path, node: str) -> NodeSigner:
    try:
        mode = path.stat().st_mode
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise NodeKeyError(f"no key file for node {node!r} at {path}")
    except (OSError, ValueError) as exc:
        raise NodeKeyError(f"unreadable key file {path}: {exc}")
    if mode & 0o077:
        # Like ssh: say so loudly, but a key copied in by a deployment tool still works.
        log.warning("key file %s is readable by group or others (mode %o); it should be 0600", path, mode & 0o777)
    if not isinstance(data, dict) or data.get("format") != KEY_FILE_FORMAT or data.get("node") != node:
        raise NodeKeyError(f"{path} is not a {KEY_FILE_FORMAT} key file of node {node!r}")
    try:
        signing_key = SigningKey(base64.b64decode(data["private_key"], validate=True))
    except Exception as exc:
        raise NodeKeyError(f"{path}: bad private key: {exc}")
    public = bytes(signing_key.verify_key)
    if data.get("key_id") != key_id_for(node=node, public_key=public):
        raise NodeKeyError(f"{path}: key id {data.get('key_id')!r} does not match its key")
    return NodeSigner(node=node, key_id=data["key_id"], signing_key=signing_key)


# --- writing -----------------------------------------------------------------------


def _write_key_file(node: str, signing_key: SigningKey) -> NodeSigner:
    """Write atomically with mode 0600: a reader sees the old key or the new one, never half."""
    directory = Path(settings.CHRONOSX_NODE_KEY_DIR)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    public = bytes(signing_key.verify_key)
    signer = NodeSigner(node=node, key_id=key_id_for(node=node, public_key=public), signing_key=signing_key)
    content = json.dumps(
        {
            "format": KEY_FILE_FORMAT,
            "node": node,
            "key_id": signer.key_id,
            "public_key": b64(public),
            "private_key": b64(bytes(signing_key)),
        },
        indent=2,
    )
    private_file_write(key_path(node), content + "\n")
    return signer


def private_file_write(path: Path, content: str, *, mode: int = 0o600) -> None:
    """Replace `path` atomically with `mode` (0600 unless told): a reader sees the old content
    or the new, never half."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")  # mkstemp: mode 0600
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@transaction.atomic
def node_key_register(*, node: str, key_id: str, public_key: str, actor: str, retire_others: bool = False) -> tuple[NodeKey, bool]:
    """Register a public key (idempotent per key id). Returns (row, created).

    retire_others: the new key replaces the node's other keys for new votes (rotation);
    retired keys stay registered so the votes they signed still verify.
    """
    _check_node(node)
    existing = NodeKey.objects.select_for_update().filter(key_id=key_id).first()
    if existing is not None:
        if existing.node != node or existing.public_key != public_key:
            raise NodeKeyError(f"key id {key_id} is already registered for another key")
        return existing, False
    raw = base64.b64decode(public_key, validate=True)
    if key_id != key_id_for(node=node, public_key=raw):
        raise NodeKeyError(f"key id {key_id} does not match the public key")
    retired = []
    if retire_others:
        retired = list(NodeKey.objects.select_for_update().filter(node=node, active=True).values_list("key_id", flat=True))
        NodeKey.objects.filter(key_id__in=retired).update(active=False)
    row = NodeKey.objects.create(node=node, key_id=key_id, public_key=public_key, active=True)
    audit_record(
        kind="node_key.registered",
        actor=actor,
        payload={"node": node, "key_id": key_id, "public_key": public_key, "retired": retired},
    )
    return row, True


def node_key_generate(*, node: str, actor: str) -> tuple[NodeSigner, bool]:
    """Make `node`'s key pair if its file is absent, and register the public key.

    Returns (signer, created). An existing file is kept (and registered if it is not yet).
    """
    path = key_path(node)
    if path.exists():
        signer = _read_key_file(path, node)
        node_key_register(node=node, key_id=signer.key_id, public_key=signer.public_key_b64, actor=actor)
        return signer, False
    signer = _write_key_file(node, SigningKey.generate())
    node_key_register(node=node, key_id=signer.key_id, public_key=signer.public_key_b64, actor=actor)
    return signer, True


def node_key_rotate(*, node: str, actor: str) -> NodeSigner:
    """Replace `node`'s key pair: a new key id for new votes; old votes keep verifying."""
    signing_key = SigningKey.generate()
    public = bytes(signing_key.verify_key)
    key_id = key_id_for(node=node, public_key=public)
    # Register first: if the database refuses, the node keeps its old, still valid key file.
    node_key_register(node=node, key_id=key_id, public_key=b64(public), actor=actor, retire_others=True)
    return _write_key_file(node, signing_key)


def node_keys_ensure(*, actor: str = "seed_demo") -> list[str]:
    """Create whichever of the three key pairs is missing and register the public keys.

    Returns a description of each key created or newly registered (empty: nothing to do).
    """
    done = []
    for node in Node.values:
        registered_before = False
        path = key_path(node)
        if path.exists():
            signer = _read_key_file(path, node)
            registered_before = NodeKey.objects.filter(key_id=signer.key_id).exists()
        signer, created = node_key_generate(node=node, actor=actor)
        if created:
            done.append(f"{node} ({signer.key_id}, created)")
        elif not registered_before:
            done.append(f"{node} ({signer.key_id}, registered)")
    return done


# --- verifying ---------------------------------------------------------------------

_public_keys: dict[str, tuple[str, str]] = {}


def public_key_lookup(key_id: str) -> tuple[str, str] | None:
    """(node, base64 public key) of a registered key id. A key id names one key
    forever (it is derived from the key), so the answer is cached in the process."""
    cached = _public_keys.get(key_id)
    if cached is None:
        row = NodeKey.objects.filter(key_id=key_id).values_list("node", "public_key").first()
        if row is None:
            return None
        try:
            raw = base64.b64decode(row[1], validate=True)
        except ValueError:
            return None
        if key_id != key_id_for(node=row[0], public_key=raw):
            # The id is derived from the key: a row edited in the database no longer matches it.
            log.error("registered key %s does not match its key id; ignored", key_id)
            return None
        cached = _public_keys[key_id] = (row[0], row[1])
    return cached


def signature_valid(*, public_key: str, message: bytes, signature: str) -> bool:
    try:
        VerifyKey(base64.b64decode(public_key, validate=True)).verify(message, base64.b64decode(signature, validate=True))
        return True
    except (BadSignatureError, ValueError, TypeError):
        return False
