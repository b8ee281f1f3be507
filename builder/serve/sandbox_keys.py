"""RSA key pairs for the sandbox and the tests: an app's pair, Alipay's pair.

2048 bits, as RSA2 requires. Generated with pycryptodome (a dependency of Alipay's SDK):
about 0.1 s a pair here, where the `rsa` package takes 2.5 to 8 s, too slow even once per
test session for the three pairs the tests use.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from Crypto.PublicKey import RSA

from builder.serve import keys


@dataclass(frozen=True)
class KeyPair:
    """private_pem: PKCS#1 ("BEGIN RSA PRIVATE KEY", what the SDK signs with); public_pem:
    SubjectPublicKeyInfo ("BEGIN PUBLIC KEY", what the SDK verifies with)."""

    private_pem: str = field(repr=False)
    public_pem: str = field(repr=False)


def generate_key_pair(bits: int = 2048) -> KeyPair:
    key = RSA.generate(bits)
    return KeyPair(private_pem=keys.private_pem(key), public_pem=keys.public_pem(key))
