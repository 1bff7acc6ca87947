"""Fingerprints of code, to group identical solutions whatever their comments and spacing."""

from __future__ import annotations

import hashlib
import io
import tokenize

MAX_SOURCE = 200_000
_SKIP = {
    tokenize.COMMENT,
    tokenize.NL,
    tokenize.NEWLINE,
    tokenize.INDENT,
    tokenize.DEDENT,
    tokenize.ENCODING,
    tokenize.ENDMARKER,
}


def code_fingerprint(source: str) -> str:
    """sha256 (16 hex digits) of the code's tokens: comments, blank lines and spacing
    do not count. Never raises: untokenizable or huge code is hashed as text."""
    text = source if isinstance(source, str) else ""
    normalized = None
    if len(text) <= MAX_SOURCE:
        try:
            tokens = tokenize.generate_tokens(io.StringIO(text).readline)
            normalized = "\x1f".join(t.string for t in tokens if t.type not in _SKIP)
        except (tokenize.TokenError, IndentationError, SyntaxError, ValueError, RecursionError):
            normalized = None
    if normalized is None:
        normalized = " ".join(text.split())
    return hashlib.sha256(normalized.encode("utf-8", "replace")).hexdigest()[:16]
