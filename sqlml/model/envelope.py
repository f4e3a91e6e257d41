"""Model bytes: skops with a fixed allow-list, inside an HMAC-SHA256 envelope.

A model blob read from a database is untrusted input: it is never unpickled. The envelope is::

    b"SQLML" | format version (1 byte) | HMAC-SHA256 tag (32 bytes) | header length (4 bytes) | header JSON
        | raw parts | skops bytes

Raw parts are named byte strings in their library's own format (an XGBoost booster), listed with their
lengths in the header's ``raw``; sqlml hands them back as bytes once the tag verifies and never
deserializes them here. The skops bytes are empty when there is nothing else to store.

The tag covers everything after it, and is checked before any byte is deserialized. The key comes
from ``SQLML_SECRET_KEY``, else from the file named by ``SQLML_KEY_FILE``, else from
``~/.config/sqlml/secret.key``, created (mode 0600) when the first model of a database is trained;
a key must have at least 32 bytes. A database moved to another machine needs the same key there.
Registry rows are signed with the same key (:func:`sign`), binding the bytes to their name,
version, type, label, schema and options.

Signing and verifying need only ``hashlib`` and ``hmac``: skops (and with it scikit-learn, scipy and
pandas) is imported when bytes are written or read back as a model, so opening a database and running
plain SQL never loads it.
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

from ..errors import ModelIntegrityError, SecretKeyError

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
    "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",  # optimizer = 'SGD'
    "sklearn.tree._tree.Tree",
]


MIN_KEY_BYTES = 32
MIN_KEY_SYMBOLS = 8  # distinct bytes: 'aaaa…' or '0000…' is long but guessable


def key_path() -> Path:
    return Path(os.environ.get("SQLML_KEY_FILE") or Path.home() / ".config" / "sqlml" / "secret.key")


def secret_key() -> bytes:
    """The HMAC key: ``SQLML_SECRET_KEY``, else the key file. Never created here (see :func:`create_key`)."""
    if os.environ.get("SQLML_SECRET_KEY") is not None:
        return _checked(os.environ["SQLML_SECRET_KEY"].strip().encode(), "SQLML_SECRET_KEY")
    path = key_path()
    try:
        text = path.read_bytes().strip()
    except FileNotFoundError:
        raise SecretKeyError(f"No secret key: {path} does not exist. Set SQLML_KEY_FILE to the key the models were "
                             "signed with, or SQLML_SECRET_KEY.") from None
    except IsADirectoryError:
        raise SecretKeyError(f"The secret key path {path} is a directory; SQLML_KEY_FILE must name a file.") from None
    except OSError as e:
        raise SecretKeyError(f"Cannot read the secret key file {path}: {e.strerror}.") from None
    return _checked(text, str(path))


def key_source() -> str:
    """Where the key comes from, as a message names it."""
    return "SQLML_SECRET_KEY" if os.environ.get("SQLML_SECRET_KEY") is not None else f"the key file {key_path()}"


def key_exists() -> bool:
    return os.environ.get("SQLML_SECRET_KEY") is not None or key_path().exists()


def create_key() -> Path:
    """Write a new random key file (mode 0600) where :func:`key_path` says; refuse to overwrite one."""
    path = key_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SecretKeyError(f"Cannot create the secret key file {path}: its folder cannot be made ({e.strerror}).") from None
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise SecretKeyError(f"A key file already exists at {path}; sqlml never overwrites one.") from None
    except OSError as e:
        raise SecretKeyError(f"Cannot create the secret key file {path}: {e.strerror}.") from None
    try:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    except OSError as e:  # disk full: leave no empty key file behind, it would be refused as too short anyway
        path.unlink(missing_ok=True)
        raise SecretKeyError(f"Cannot write the secret key file {path}: {e.strerror}.") from None
    return path


def _checked(key: bytes, where: str) -> bytes:
    if len(key) < MIN_KEY_BYTES or len(set(key)) < MIN_KEY_SYMBOLS:
        raise SecretKeyError(f"The secret key from {where} is too weak: a key needs at least {MIN_KEY_BYTES} bytes "
                             f"and {MIN_KEY_SYMBOLS} distinct characters (sqlml creates 64 random hex digits).")
    return key


def sign(fields: dict) -> str:
    """An HMAC tag over a registry row's fields (canonical JSON), so the row can be trusted like its bytes."""
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
    return hmac.new(secret_key(), b"sqlml-row-1\0" + text.encode(), hashlib.sha256).hexdigest()


def signed(fields: dict, signature: str | None) -> bool:
    return signature is not None and hmac.compare_digest(sign(fields), signature)


def dumps(estimator: t.Any, header: dict, parts: dict | None = None, raw: dict[str, bytes] | None = None) -> bytes:
    """Serialize ``estimator`` with its JSON ``header`` (preprocessing, classes) and sign both.
    ``parts``: other fitted objects kept beside it (a CBPE calibrator), named in the header's ``parts``.
    ``raw``: named bytes stored as they are (``estimator`` is then None when they are the model)."""
    import skops.io as sio
    if raw:
        header = {**header, "raw": {name: len(data) for name, data in raw.items()}}
    if parts:
        estimator, header = {"estimator": estimator, **parts}, {**header, "parts": sorted(parts)}
    body = b"" if estimator is None else sio.dumps(estimator)
    untrusted = set(sio.get_untrusted_types(data=body)) - set(TRUSTED_TYPES) if body else set()
    if untrusted:
        raise ModelIntegrityError(f"Refusing to store types outside the allow-list: {sorted(untrusted)}")
    header_bytes = json.dumps(header).encode()
    payload = struct.pack(">I", len(header_bytes)) + header_bytes + b"".join((raw or {}).values()) + body
    return MAGIC + bytes([FORMAT_VERSION]) + _tag(payload) + payload


def loads(blob: bytes) -> tuple[t.Any, dict]:
    """Verify and deserialize a blob written by :func:`dumps`; refuse anything else."""
    estimator, header, _ = loads_parts(blob)
    return estimator, header


def loads_parts(blob: bytes) -> tuple[t.Any, dict, dict]:
    """:func:`loads`, with the ``parts`` stored beside the estimator (empty for a blob without them) and
    the raw parts, as bytes, under their names."""
    payload = verified(blob)
    (length,) = struct.unpack(">I", payload[:4])
    header = json.loads(payload[4:4 + length])
    start, raw = 4 + length, {}
    for name, size in header.get("raw", {}).items():
        raw[name], start = payload[start:start + size], start + size
    body = payload[start:]
    import skops.io as sio  # only once the tag verified: bytes sqlml wrote
    from skops.io.exceptions import UntrustedTypesFoundException
    try:
        loaded = sio.loads(body, trusted=TRUSTED_TYPES) if body else None
    except UntrustedTypesFoundException as e:
        raise ModelIntegrityError(f"Refusing to load a model holding types outside the allow-list: {e}") from None
    if not header.get("parts"):
        return loaded, header, raw
    return loaded["estimator"], header, {**{name: loaded[name] for name in header["parts"]}, **raw}


def verified(blob: bytes) -> bytes:
    """The payload of a blob written by :func:`dumps`, once its tag verifies (nothing is deserialized)."""
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
    return payload


def fingerprint(blob: bytes) -> str:
    """A short stable id of a stored model (its tag), used as a cache key."""
    return bytes(blob[len(MAGIC) + 1:len(MAGIC) + 33]).hex()


def _tag(payload: bytes) -> bytes:
    return hmac.new(secret_key(), payload, hashlib.sha256).digest()
