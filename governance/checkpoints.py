"""Audit checkpoints: the audit chain's head, signed by each node, kept outside the database.

The hash chain shows an event changed or missing in the middle, but not the newest events
deleted: the shorter chain still verifies. So every CHRONOSX_CHECKPOINT_INTERVAL_SECONDS each
node signs the chain's newest (seq, hash) with its own Ed25519 key and keeps it as
`audit-checkpoint-<node>.json` in its key folder. Only the latest is kept: the hash at seq N
commits to every event before it, so an older checkpoint proves nothing a newer one does not;
three nodes on three hosts are the copies.

`verify_audit` reads those files, checks each signature against the registered public key of
its key id, and has the ledger compare the chain with them (ledger.selectors.audit_chain_verify):
a checkpoint past the chain's end means deleted events, one whose seq holds another hash a
rewritten chain, and one that does not verify is itself an alarm.

A node never moves its checkpoint back: when the chain no longer holds the (seq, hash) it
signed last, it keeps that checkpoint as the evidence and logs the alarm.
"""

import json
import logging
import re
import time
from dataclasses import dataclass, replace
from datetime import datetime
from datetime import timezone as dt_timezone
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from chronosx.canonical import canonical_json, sha256_hex
from governance import keys
from governance.models import Node
from ledger.selectors import ChainCheckpoint, audit_chain_hash_at, audit_chain_head

log = logging.getLogger(__name__)

CHECKPOINT_TYPE = "chronosx.audit-checkpoint.v1"
FILE_PREFIX = "audit-checkpoint-"
SIGNED_FIELDS = ("type", "node", "key_id", "seq", "hash", "signed_at")
_HASH = re.compile(r"[0-9a-f]{64}")

# When each checkpoint file is next due, on this process's monotonic clock: the beat runs
# every few seconds and must cost nothing until then.
_due: dict[Path, float] = {}
_clock = time.monotonic


class CheckpointError(Exception):
    """A checkpoint file that cannot be read or does not verify."""


@dataclass(frozen=True)
class Checkpoint:
    node: str
    key_id: str
    seq: int
    hash: str
    signed_at: str
    signature: str

    def payload(self) -> dict:
        return {
            "type": CHECKPOINT_TYPE,
            "node": self.node,
            "key_id": self.key_id,
            "seq": self.seq,
            "hash": self.hash,
            "signed_at": self.signed_at,
        }

    def message(self) -> bytes:
        """The exact bytes signed: the 64 lowercase hex characters of the SHA-256 of the
        canonical JSON (as votes are signed, governance/digests.py)."""
        return sha256_hex(canonical_json(self.payload())).encode("ascii")

    @property
    def chain_checkpoint(self) -> ChainCheckpoint:
        """The plain data the ledger compares the chain with."""
        return ChainCheckpoint(self.seq, self.hash, f"node {self.node} signed at {self.signed_at}")


def checkpoint_dir() -> Path:
    """CHRONOSX_CHECKPOINT_DIR, else the node key folder (one folder for keys and checkpoints)."""
    return Path(settings.CHRONOSX_CHECKPOINT_DIR or settings.CHRONOSX_NODE_KEY_DIR)


def checkpoint_path(node: str) -> Path:
    if node not in Node.values:
        raise keys.NodeKeyError(f"unknown node {node!r}; nodes are {', '.join(Node.values)}")
    return checkpoint_dir() / f"{FILE_PREFIX}{node}.json"


# --- writing (a node process) --------------------------------------------------------------


def checkpoint_beat(node: str) -> Checkpoint | None:
    """A node's heartbeat: once per interval, sign and keep the chain's head, if this process
    may sign as `node`. Returns the checkpoint written, if one was."""
    path = checkpoint_path(node)
    now = _clock()
    if now < _due.get(path, now):
        return None
    try:
        signer = keys.node_signer(node)
    except keys.NodeKeyError:
        return None  # not this process's node, or its key is missing: node_beat says it is down
    written = checkpoint_write(signer=signer)
    _due[path] = now + settings.CHRONOSX_CHECKPOINT_INTERVAL_SECONDS
    return written


def checkpoint_write(*, signer: keys.NodeSigner) -> Checkpoint | None:
    """Sign the chain's head as `signer`'s node and replace its checkpoint file with it.

    Writes nothing when the chain is empty, or when the chain no longer holds the (seq,
    hash) of the node's previous checkpoint: that file is the evidence and stays.
    """
    path = checkpoint_path(signer.node)
    head = audit_chain_head()
    previous = _previous(path)
    if previous is not None:
        if head is None or head[0] < previous.seq:
            problem = f"the chain ends at seq {head[0] if head else 0}"
        elif (head[1] if head[0] == previous.seq else audit_chain_hash_at(previous.seq)) != previous.hash:
            problem = f"seq {previous.seq} holds another hash"
        else:
            problem = None
        if problem:
            log.error(
                "audit chain no longer holds the checkpoint node %s signed at %s (seq %s, hash %s): %s; "
                "%s is kept, run verify_audit",
                previous.node, previous.signed_at, previous.seq, previous.hash, problem, path,
            )
            return None
    if head is None:
        return None
    checkpoint = checkpoint_sign(signer=signer, seq=head[0], hash=head[1])
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Readable by all: a checkpoint is signed public data that the verifiers, other users, read.
    keys.private_file_write(path, json.dumps({**checkpoint.payload(), "signature": checkpoint.signature}, indent=2) + "\n",
                            mode=0o644)
    return checkpoint


def checkpoint_sign(*, signer: keys.NodeSigner, seq: int, hash: str, signed_at: str | None = None) -> Checkpoint:
    signed_at = signed_at or timezone.now().astimezone(dt_timezone.utc).isoformat()
    unsigned = Checkpoint(node=signer.node, key_id=signer.key_id, seq=seq, hash=hash, signed_at=signed_at, signature="")
    return replace(unsigned, signature=signer.sign(unsigned.message()))


def _previous(path: Path) -> Checkpoint | None:
    """The node's own last checkpoint, as written (the signature was its own)."""
    try:
        return checkpoint_parse(path)
    except FileNotFoundError:
        return None
    except CheckpointError as exc:
        log.warning("%s is unreadable (%s); it is replaced", path, exc)
        return None


# --- reading and verifying (verify_audit) --------------------------------------------------


def checkpoint_parse(path: Path) -> Checkpoint:
    """The checkpoint a file holds, checked for shape only. Raises CheckpointError, or
    FileNotFoundError when there is no file."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"unreadable: {exc}")
    if not isinstance(data, dict) or set(data) != {*SIGNED_FIELDS, "signature"}:
        raise CheckpointError(f"not a checkpoint: the fields must be exactly {', '.join(SIGNED_FIELDS)}, signature")
    if data["type"] != CHECKPOINT_TYPE:
        raise CheckpointError(f"type {data['type']!r} is not {CHECKPOINT_TYPE}")
    if data["node"] not in Node.values:
        raise CheckpointError(f"unknown node {data['node']!r}")
    seq = data["seq"]
    if type(seq) is not int or seq < 1:
        raise CheckpointError(f"seq {seq!r} is not a positive integer")
    if not isinstance(data["hash"], str) or not _HASH.fullmatch(data["hash"]):
        raise CheckpointError(f"hash {data['hash']!r} is not 64 lowercase hex characters")
    if not all(isinstance(data[field], str) for field in ("key_id", "signed_at", "signature")):
        raise CheckpointError("key_id, signed_at and signature must be strings")
    try:
        aware = datetime.fromisoformat(data["signed_at"]).tzinfo is not None
    except ValueError:
        aware = False
    if not aware:
        raise CheckpointError(f"signed_at {data['signed_at']!r} is not an ISO-8601 time with its offset")
    return Checkpoint(**{field: data[field] for field in (*SIGNED_FIELDS[1:], "signature")})


def checkpoint_verify(path: Path) -> Checkpoint:
    """The checkpoint a file holds, if its signature verifies against the registered public
    key of its key id, a key of the node it names. Raises CheckpointError."""
    try:
        checkpoint = checkpoint_parse(path)
    except FileNotFoundError as exc:
        raise CheckpointError(f"unreadable: {exc}")
    registered = keys.public_key_lookup(checkpoint.key_id)
    if registered is None:
        raise CheckpointError(f"key id {checkpoint.key_id!r} is not registered")
    node, public_key = registered
    if node != checkpoint.node:
        raise CheckpointError(f"key id {checkpoint.key_id} is node {node}'s, not {checkpoint.node}'s")
    if not keys.signature_valid(public_key=public_key, message=checkpoint.message(), signature=checkpoint.signature):
        raise CheckpointError(f"the signature does not verify with key {checkpoint.key_id}")
    return checkpoint


def checkpoints_load(*, directories) -> tuple[list[Checkpoint], list[str]]:
    """(the checkpoints that verify, newest signed first; one problem per file or folder
    that cannot be read or does not verify) of the checkpoint files in `directories`.
    A missing folder holds none; one that cannot be listed is a problem, not "none"."""
    verified, problems, seen = [], [], set()
    for directory in map(Path, directories):
        try:
            names = sorted(entry.name for entry in directory.iterdir())
        except FileNotFoundError:
            continue
        except OSError as exc:
            problems.append(f"audit checkpoint folder {directory} cannot be listed: {exc}")
            continue
        for name in names:
            path = directory / name
            if not (name.startswith(FILE_PREFIX) and name.endswith(".json")) or path.resolve() in seen:
                continue
            seen.add(path.resolve())
            try:
                verified.append(checkpoint_verify(path))
            except CheckpointError as exc:
                problems.append(f"audit checkpoint {path} does not verify ({exc}): a forged or damaged anchor")
    verified.sort(key=lambda c: datetime.fromisoformat(c.signed_at), reverse=True)
    return verified, problems
