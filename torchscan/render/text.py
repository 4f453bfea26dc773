"""User-supplied text (module and class names) made safe to show: control characters written visibly."""

from __future__ import annotations

import re

__all__ = ["visible"]

_HIDDEN = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff\ufffe\uffff]")
"""Control characters (C0, DEL, C1), line/paragraph separators, bidi overrides, lone surrogates and the
two BMP non-characters: everything that moves the cursor, breaks a line, reorders text or is not XML 1.0."""

_SHORT = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return _SHORT.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def visible(text: str) -> str:
    r"""``text`` with each hidden character written as its escape (an ESC as the 4 characters ``\x1b``, a line
    break as ``\n``): one printable line, valid XML 1.0 and UTF-8. Idempotent; other characters are kept."""
    return _HIDDEN.sub(_escape, text)
