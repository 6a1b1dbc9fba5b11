"""Text that callers wrote (clip and voice names), made safe to show and to write into files.

A clip name is whatever its uploader chose: `\\x1b[2J` in it would clear a terminal that
`speakerlink jobs` prints to, and U+202E (right-to-left override) would show `evil<U+202E>vaw.exe`
as `evilexe.wav` in a listing, a subtitle file name or an RTTM id. Both the CLI and the
server's exporters pass such names through printable() wherever they are shown or written.
"""

from __future__ import annotations

import unicodedata

# Controls (Cc), format characters (Cf: the bidirectional embeddings, overrides and isolates
# U+202A-202E and U+2066-2069, zero-width joiners, U+FEFF), line and paragraph separators
# (Zl, Zp), surrogates (Cs) and unassigned code points (Cn).
UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Cn"})


def is_unsafe(char: str) -> bool:
    return unicodedata.category(char) in UNSAFE_CATEGORIES


def printable(text: str) -> str:
    """The text with every unsafe character written as its Python escape (\\x1b, \\u202e),
    so that it shows what it holds and does nothing to the terminal or the reader."""
    return "".join(char.encode("unicode_escape").decode("ascii") if is_unsafe(char) else char for char in text)


def plural(count: int, noun: str) -> str:
    """`1 clip`, `2 clips`: for nouns whose plural adds an s."""
    return f"{count} {noun}{'' if count == 1 else 's'}"
