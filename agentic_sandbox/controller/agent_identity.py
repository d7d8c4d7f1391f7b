"""Agent identity: the per-sandbox secret, the hash the controller keeps, and its verification.

Each sandbox the controller creates gets a fresh 256-bit secret in ``AGENT_SECRET``. The
plaintext exists only in the sandbox's environment; the controller keeps its SHA-256 digest in
the sandbox's ``agentic-sandbox.agent-secret-sha256`` label, so a recreated sandbox always has a
new secret and an adopted half-created sandbox still carries the digest of its own secret.
Digests are compared with ``hmac.compare_digest``, in constant time. A digest of a 256-bit
random value cannot be reversed, but it is still kept out of API responses and logs.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

# Label of the sandbox that carries the digest of its agent's secret.
LABEL_AGENT_SECRET_SHA256 = "agentic-sandbox.agent-secret-sha256"
# Image label that marks images whose command runs the agent (``sandbox-agent``). Docker copies
# image labels into each container's labels, so the controller reads it from the sandbox.
LABEL_IMAGE_CARRIES_AGENT = "dev.agentic.agent"

SECRET_BYTES = 32
# Compared against when an agent id is unknown, so a miss costs the same as a mismatch.
_UNKNOWN_DIGEST = hashlib.sha256(b"agentic-sandbox: no such agent").hexdigest()


def mint_secret() -> str:
    """Return a new random secret of 256 bits as 64 hexadecimal digits."""
    return secrets.token_hex(SECRET_BYTES)


def secret_digest(secret: str) -> str:
    """Return the hexadecimal SHA-256 digest of ``secret``, the only form the controller keeps."""
    return hashlib.sha256(secret.encode()).hexdigest()


def verify_secret(presented: str, expected_digest: str | None) -> bool:
    """Tell whether ``presented`` hashes to ``expected_digest``, comparing in constant time.

    An unknown agent (``expected_digest`` None) takes the same path and returns False.
    """
    digest = secret_digest(presented)
    if expected_digest is None:
        hmac.compare_digest(digest, _UNKNOWN_DIGEST)
        return False
    return hmac.compare_digest(digest, expected_digest)


def carries_agent(labels: dict[str, str]) -> bool:
    """Tell whether a sandbox's image runs the agent, from its (image-inherited) labels."""
    return labels.get(LABEL_IMAGE_CARRIES_AGENT, "").strip().lower() == "true"
