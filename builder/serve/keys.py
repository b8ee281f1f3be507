"""Where the back end's RSA keys come from, and reading them without leaking them.

The app private key and the Alipay public key are named by the caller as a file or an
environment variable (`KeySource`), never written into a spec. A key's text never appears
in a message, a repr or a log record: errors name the source, not the content, and are
raised without the parser's exception chained (its message could quote the input).

Accepted forms: PEM (PKCS#1 or PKCS#8 private keys, SubjectPublicKeyInfo or PKCS#1
public keys), or the bare base64 one line that Alipay's key tool and console hand out.
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass
from pathlib import Path

from Crypto.PublicKey import RSA
from Crypto.PublicKey.RSA import RsaKey


class KeyLoadError(Exception):
    """A key source that is missing, unreadable or not an RSA key of the right kind."""


@dataclass(frozen=True)
class KeySource:
    """A key in a file or in an environment variable: exactly one of the two."""

    file: Path | None = None
    env: str | None = None

    def __post_init__(self) -> None:
        if (self.file is None) == (self.env is None):
            raise ValueError("KeySource needs exactly one of file= or env=")

    def describe(self) -> str:
        return f"file {self.file}" if self.file is not None else f"environment variable {self.env}"

    def read(self) -> str:
        if self.env is not None:
            text = os.environ.get(self.env)
            if not text:
                raise KeyLoadError(f"{self.describe()} is not set")
            return text
        assert self.file is not None
        try:
            return self.file.read_text("ascii")
        except (OSError, UnicodeDecodeError) as exc:
            raise KeyLoadError(f"cannot read {self.describe()}: {type(exc).__name__}") from None


def _parse(text: str, source: KeySource) -> RsaKey:
    text = text.strip()
    try:
        # Alipay's tools hand out keys as one line of base64 DER, without PEM armour.
        data = text if text.startswith("-----BEGIN ") else base64.b64decode("".join(text.split()), validate=True)
        return RSA.import_key(data)
    except (ValueError, IndexError, TypeError, binascii.Error):
        raise KeyLoadError(f"{source.describe()} does not hold an RSA key") from None


def load_private_key(source: KeySource) -> RsaKey:
    key = _parse(source.read(), source)
    if not key.has_private():
        raise KeyLoadError(f"{source.describe()} holds a public key where the app private key belongs")
    return key


def load_public_key(source: KeySource) -> RsaKey:
    key = _parse(source.read(), source)
    if key.has_private():
        # Refused, not reduced to its public half: a private key in this place means
        # keys were mixed up, and a private key should not sit where public ones are kept.
        raise KeyLoadError(f"{source.describe()} holds a private key where the Alipay public key belongs")
    return key


def private_pem(key: RsaKey) -> str:
    """PKCS#1 PEM, the only private key form the SDK signs with (`rsa.PrivateKey.load_pkcs1`)."""
    return key.export_key(format="PEM", pkcs=1).decode("ascii")


def public_pem(key: RsaKey) -> str:
    """SubjectPublicKeyInfo PEM, the form the SDK verifies with (`load_pkcs1_openssl_pem`)."""
    return key.public_key().export_key(format="PEM").decode("ascii")
