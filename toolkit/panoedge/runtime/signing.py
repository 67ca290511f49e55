"""Ed25519 signatures of bundles, through ``cryptography`` (the ``sign`` extra).

A fleet signs its bundles once (``panoedge build --sign KEY`` or ``panoedge bundle sign``) and
each robot runs only what its trusted public key verifies (``panoedge run --trusted-key PUB``,
``panoedge bundle verify --trusted-key PUB``). What is signed is the exact bytes of
``manifest.json``, which hashes every file of the bundle, so one signature covers all of it.

Files: keys are PEM, the formats ``openssl genpkey -algorithm ed25519`` and
``openssl pkey -pubout`` write (private PKCS#8, public SubjectPublicKeyInfo), so stock tools
make and read them; ``manifest.sig`` is JSON::

    {"schema": "panoedge.signature/1", "algorithm": "ed25519", "key_id": "<16 hex>", "signature": "<base64>"}

``key_id`` (sha256 of the raw public key, 16 hex digits) only names the key in messages; the
trusted key decides.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from panoedge.errors import DataError, UsageError
from panoedge.results import Result

SIG_SCHEMA = "panoedge.signature/1"
EXTRA = "sign"
PRIVATE_NAME, PUBLIC_NAME = "panoedge-signing.key", "panoedge-signing.pub"
#: Mode of the private key file: readable by its owner only.
PRIVATE_MODE = 0o600
#: umask while the private key is written, so it is never readable by others, not even briefly.
PRIVATE_UMASK = 0o077
#: Hex digits of the public key's sha256 that name it in messages.
KEY_ID_HEX = 16


@dataclass(frozen=True)
class KeyPair(Result):
    """A key pair written by :func:`generate_keypair`."""

    SCHEMA = "panoedge.keypair/1"
    private: Path
    public: Path

    def format(self) -> str:
        return (f"wrote {self.private} (private, mode {PRIVATE_MODE:04o}) and {self.public} "
                "(give this to `panoedge run --trusted-key`)")


def require_crypto(flag: str) -> None:
    """Fail before any work when ``cryptography`` is missing, naming the extra."""
    from panoedge.extras import require

    require(flag, EXTRA)


def _raw_public(pub) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(pub) -> str:
    return hashlib.sha256(_raw_public(pub)).hexdigest()[:KEY_ID_HEX]


def load_private_key(path: str | Path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    path = Path(path)
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as e:
        raise DataError(f"{path}: not a readable unencrypted PEM private key ({e})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise DataError(f"{path}: a {type(key).__name__}; bundles are signed with Ed25519 keys "
                        "(panoedge bundle keygen, or openssl genpkey -algorithm ed25519)")
    return key


def load_public_key(path: str | Path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    path = Path(path)
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError, TypeError) as e:
        raise DataError(f"{path}: not a readable PEM public key ({e})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise DataError(f"{path}: a {type(key).__name__}; panoedge trusts Ed25519 public keys only")
    return key


def generate_keypair(out_dir: str | Path, overwrite: bool = False) -> KeyPair:
    """Write a new Ed25519 key pair into ``out_dir`` (private key readable by its owner only)."""
    require_crypto("bundle keygen")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from panoedge.home import atomic_write_bytes

    out = Path(out_dir)
    priv_path, pub_path = out / PRIVATE_NAME, out / PUBLIC_NAME
    if not overwrite and (priv_path.exists() or pub_path.exists()):
        raise UsageError(f"{out}: already holds {PRIVATE_NAME} or {PUBLIC_NAME}; choose another folder")
    key = Ed25519PrivateKey.generate()
    priv = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
    pub = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    out.mkdir(parents=True, exist_ok=True)
    old = os.umask(PRIVATE_UMASK)
    try:
        atomic_write_bytes(priv_path, priv)
    finally:
        os.umask(old)
    os.chmod(priv_path, PRIVATE_MODE)
    atomic_write_bytes(pub_path, pub)
    return KeyPair(private=priv_path, public=pub_path)


def sign_manifest(manifest_path: str | Path, private_key: str | Path, sig_path: str | Path) -> str:
    """Write ``sig_path``: the Ed25519 signature of ``manifest_path``'s bytes; returns the key id."""
    require_crypto("--sign")
    from panoedge.home import write_json

    key = load_private_key(private_key)
    sig = key.sign(Path(manifest_path).read_bytes())
    kid = key_id(key.public_key())
    write_json(sig_path, {"schema": SIG_SCHEMA, "algorithm": "ed25519", "key_id": kid,
                          "signature": base64.b64encode(sig).decode("ascii")})
    return kid


def verify_signature(manifest_path: str | Path, sig_path: str | Path, public_key: str | Path) -> str | None:
    """``None`` when ``sig_path`` is a valid signature of ``manifest_path`` by ``public_key``, else why not."""
    from cryptography.exceptions import InvalidSignature

    from panoedge.errors import ConfigError
    from panoedge.safe_load import load_json

    pub = load_public_key(public_key)
    sig_path = Path(sig_path)
    if not sig_path.is_file() or sig_path.is_symlink():
        return f"{sig_path.name}: missing; the bundle is not signed and a trusted key was given"
    try:
        doc = load_json(sig_path)
    except ConfigError as e:
        return f"{sig_path.name}: {e.problem}"
    if doc.get("schema") != SIG_SCHEMA or doc.get("algorithm") != "ed25519" or not isinstance(doc.get("signature"), str):
        return f"{sig_path.name}: expected {{schema: {SIG_SCHEMA}, algorithm: ed25519, signature: base64}}"
    try:
        sig = base64.b64decode(doc["signature"], validate=True)
        pub.verify(sig, Path(manifest_path).read_bytes())
    except (InvalidSignature, ValueError):
        return (f"{sig_path.name}: signature does not match {Path(manifest_path).name} under the trusted key "
                f"{key_id(pub)} (signed by {doc.get('key_id', '?')}; changed after signing, or another key)")
    return None
