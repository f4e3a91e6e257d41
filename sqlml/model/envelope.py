"""Model bytes: skops with a fixed allow-list, inside an HMAC-SHA256 envelope.

A model blob read from a database is untrusted input: it is never unpickled. The envelope is::

    b"SQLML" | format version (1 byte) | HMAC-SHA256 tag (32 bytes) | header length (4 bytes) | header JSON | skops bytes

The tag covers everything after it, and is checked before any byte is deserialized. The key comes
from ``SQLML_SECRET_KEY`` (any string), else from the file named by ``SQLML_KEY_FILE``, else from
``~/.config/sqlml/secret.key``, which is created (mode 0600) on first use. A database moved to
another machine needs the same key there.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import struct
import typing as t
from pathlib import Path

import skops.io as sio

from ..errors import ModelIntegrityError

MAGIC = b"SQLML"
FORMAT_VERSION = 1
#: Types trusted beyond skops' defaults (which cover plain estimators and numpy arrays): the tree
#: structures, the MLP's optimizer state, and the partial(check_array) that HistGradientBoosting's
#: categorical preprocessor holds (skops still refuses any other function a partial might wrap).
#: Anything else is refused at save and at load.
TRUSTED_TYPES = [
    "functools.partial",
    "sklearn.utils.validation.check_array",
    "numpy.dtype",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
    "sklearn.tree._tree.Tree",
]


def secret_key() -> bytes:
    """The HMAC key: from the environment, or a key file created on first use."""
    if os.environ.get("SQLML_SECRET_KEY"):
        return os.environ["SQLML_SECRET_KEY"].encode()
    path = Path(os.environ.get("SQLML_KEY_FILE") or Path.home() / ".config" / "sqlml" / "secret.key")
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


def dumps(estimator: t.Any, header: dict) -> bytes:
    """Serialize ``estimator`` with its JSON ``header`` (preprocessing, classes) and sign both."""
    body = sio.dumps(estimator)
    untrusted = set(sio.get_untrusted_types(data=body)) - set(TRUSTED_TYPES)
    if untrusted:
        raise ModelIntegrityError(f"Refusing to store types outside the allow-list: {sorted(untrusted)}")
    header_bytes = json.dumps(header).encode()
    payload = struct.pack(">I", len(header_bytes)) + header_bytes + body
    return MAGIC + bytes([FORMAT_VERSION]) + _tag(payload) + payload


def loads(blob: bytes) -> tuple[t.Any, dict]:
    """Verify and deserialize a blob written by :func:`dumps`; refuse anything else."""
    blob = bytes(blob)
    if not blob.startswith(MAGIC) or len(blob) < len(MAGIC) + 37:
        raise ModelIntegrityError("These bytes are not a sqlml model.")
    version = blob[len(MAGIC)]
    if version != FORMAT_VERSION:
        raise ModelIntegrityError(f"Unknown model format version {version}; this sqlml reads version {FORMAT_VERSION}.")
    start = len(MAGIC) + 1
    tag, payload = blob[start:start + 32], blob[start + 32:]
    if not hmac.compare_digest(tag, _tag(payload)):
        raise ModelIntegrityError(
            "Model bytes failed verification: they were modified, or written with another secret key "
            "(set SQLML_SECRET_KEY or SQLML_KEY_FILE to the key used when the model was trained)."
        )
    (length,) = struct.unpack(">I", payload[:4])
    header = json.loads(payload[4:4 + length])
    return sio.loads(payload[4 + length:], trusted=TRUSTED_TYPES), header


def fingerprint(blob: bytes) -> str:
    """A short stable id of a stored model (its tag), used as a cache key."""
    return bytes(blob[len(MAGIC) + 1:len(MAGIC) + 33]).hex()


def _tag(payload: bytes) -> bytes:
    return hmac.new(secret_key(), payload, hashlib.sha256).digest()
