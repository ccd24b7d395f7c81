"""Keep secrets out of run folders: scrub text from the gateway before it is stored, and name (never
value) the settings that are not known to be harmless.

A gateway's error body is the one place outside text reaches the evidence: LiteLLM's 401 says
`Received API Key = sk-...abcd, Key Hash (Token) = <64 hex>`, and a backend's error may echo a header.
Scrubbing runs on the whole text before it is cut, so a key split by the cut cannot survive in part.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

SET = "<set>"              # a setting that is there, whose value is not shown
REDACTED = "<redacted>"    # what replaces a key-like string inside text
MAX_SCAN = 65536           # scrubbing is linear, but a run may store thousands of bodies

# The first two keep the setting's name readable and replace only its value.
_PATTERNS = [
    re.compile(r"(?i)(bearer\s+)(?!<redacted>)[^\s\"',;}]+"),
    # api_key=..., "password": "...", token: ...  (a "Bearer" value is the pattern above's)
    re.compile(r"(?i)((?:api[_-]?key|master[_-]?key|password|passwd|secret|token|authorization)"
               r"[\"']?\s*[:=]\s*[\"']?)(?!<redacted>|bearer\s)[^\s\"',;}]+"),
    re.compile(r"\bsk-[^\s\"',;)}\]]*"),                        # OpenAI/LiteLLM keys, also `sk-...abcd`
    re.compile(r"\b[A-Fa-f0-9]{32,}\b"),                        # key hashes, hex tokens
    # long base64/url-safe tokens: mixed case and digits, so that a long snake_case name survives;
    # "/" is left out, so that a path is not read as one
    re.compile(r"(?<![A-Za-z0-9+_\-])(?=[A-Za-z0-9+_\-]*\d)(?=[A-Za-z0-9+_\-]*[A-Z])(?=[A-Za-z0-9+_\-]*[a-z])"
               r"[A-Za-z0-9+_\-]{40,}={0,2}"),
]
# Settings whose *name* says they hold a secret, wherever they appear in a structure.
SECRET_NAME = re.compile(r"(?i)(key|password|passwd|secret|token|credential|authorization|auth_header)")


def _needles(secrets: Iterable[str | None]) -> list[str]:
    out: set[str] = set()
    for s in secrets:
        if not s or len(s) < 4:     # a 1-3 character "secret" would blank out ordinary words
            continue
        out.add(s)
        if s.startswith("sk-llmops-") and len(s) > 14:
            out.add(s.removeprefix("sk-llmops-"))   # the random part alone is still the key
    return sorted(out, key=len, reverse=True)


def bearer_of(headers: dict[str, str]) -> list[str]:
    """The token in an Authorization header: the one secret a request is known to carry."""
    auth = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
    return [auth.split(None, 1)[1]] if len(auth.split(None, 1)) == 2 else []


def scrub(text: Any, secrets: Iterable[str | None] = (), limit: int | None = 300) -> str:
    """`text` with the known `secrets` and anything that looks like a key replaced, then cut to
    `limit` characters (None: not cut)."""
    s = text if isinstance(text, str) else str(text)
    s = s[:MAX_SCAN]
    for n in _needles(secrets):
        s = s.replace(n, REDACTED)
    for i, pat in enumerate(_PATTERNS):
        s = pat.sub((lambda m: m.group(1) + REDACTED) if i < 2 else (lambda m: REDACTED), s)
    return s if limit is None else s[:limit]


def scrub_json(obj: Any, secrets: Iterable[str | None] = ()) -> Any:
    """A JSON-like value with every string scrubbed and every secret-named setting named only."""
    secrets = list(secrets)
    if isinstance(obj, dict):
        return {k: (SET if v is not None else None) if SECRET_NAME.search(str(k)) and not isinstance(v, (bool, int, float))
                else scrub_json(v, secrets) for k, v in obj.items()}
    if isinstance(obj, list):
        return [scrub_json(v, secrets) for v in obj]
    if isinstance(obj, str):
        return scrub(obj, secrets, limit=None)
    return obj


__all__ = ["SET", "REDACTED", "scrub", "scrub_json", "bearer_of", "SECRET_NAME"]
