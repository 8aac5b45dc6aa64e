"""Message authentication with one key per purpose, all derived from the deployment's secret.

Model snapshots are pickles and review-request ids carry audit weights: both must come
from the service, never from whoever can write to a topic. One secret
(``AUTOLABEL_SNAPSHOT__KEY``) is shared by every worker; each purpose gets its own key
derived from it (HMAC-SHA256 of the purpose name), so a signature made for one purpose
never verifies for another.

>>> signer = Signer(b"k" * 32, "snapshot")
>>> mac = signer.sign(b"payload")
>>> signer.verify(b"payload", mac), signer.verify(b"payloaD", mac)
(True, False)
>>> Signer(b"k" * 32, "review-request").verify(b"payload", mac)  # another purpose
False
"""

from __future__ import annotations

import hashlib
import hmac


def derive_key(secret: bytes, purpose: str) -> bytes:
    """A 32-byte key for ``purpose``, derived from the deployment's ``secret``."""
    return hmac.new(secret, b"autolabel/" + purpose.encode(), hashlib.sha256).digest()


class Signer:
    """HMAC-SHA256 under the key derived for one purpose."""

    __slots__ = ("_key",)

    MAC_BYTES = 32

    def __init__(self, secret: bytes, purpose: str) -> None:
        self._key = derive_key(secret, purpose)

    def sign(self, data: bytes) -> bytes:
        return hmac.new(self._key, data, hashlib.sha256).digest()

    def verify(self, data: bytes, mac: bytes) -> bool:
        """Constant-time comparison with the expected MAC."""
        return hmac.compare_digest(self.sign(data), mac)

    def __repr__(self) -> str:  # never show key material
        return "Signer(<key hidden>)"
