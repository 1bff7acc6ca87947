"""What learner code does that deserves a look, read with the tokenizer.

Never with ``ast``: a hostile cell can make the parser recurse. A cell is a list of
statements (split at newlines and ``;``); the scan counts the statements that are
``check(...)`` calls (a cell of nothing else is an extra check cell) and notes rebinding
``check``/``Checker``, reaching into them, and touching the grading environment.
"""

from __future__ import annotations

import io
import tokenize
from dataclasses import dataclass, field

MAX_SCAN = 200_000
_GRADING_WORDS = ("VESTIGE_GRADING", "VESTIGE_CHECKS", "/grade/", "vestige.course")
_SKIP = (
    tokenize.COMMENT,
    tokenize.NL,
    tokenize.INDENT,
    tokenize.DEDENT,
    tokenize.ENCODING,
    tokenize.ENDMARKER,
)
_BINDS_BEFORE = ("def", "class", "as", "del", "global", "nonlocal", "for", "import", ",")


@dataclass
class Scan:
    """What the tokenizer found in one learner cell."""

    statements: int = 0
    check_calls: int = 0
    findings: list[str] = field(default_factory=list)

    @property
    def only_check_calls(self) -> bool:
        return self.statements > 0 and self.statements == self.check_calls


def scan_code(source: str) -> Scan:
    scan = Scan()
    if len(source) > MAX_SCAN:
        scan.findings.append("very large code cell, not scanned")
        return scan
    try:
        tokens = [
            t for t in tokenize.generate_tokens(io.StringIO(source).readline) if t.type not in _SKIP
        ]
    except (tokenize.TokenError, IndentationError, SyntaxError, ValueError, RecursionError):
        return scan
    statement: list = []
    for token in tokens + [None]:
        if (
            token is None
            or token.type == tokenize.NEWLINE
            or (token.type == tokenize.OP and token.string == ";")
        ):
            if statement:
                _statement(statement, scan)
            statement = []
        else:
            statement.append(token)
    if 0 < scan.check_calls < scan.statements:
        scan.findings.append("calls check() in a learner cell (kept)")
    scan.findings = sorted(set(scan.findings))
    return scan


def _statement(tokens: list, scan: Scan) -> None:
    scan.statements += 1
    strings = [t.string for t in tokens]
    if len(strings) >= 2 and strings[0] == "check" and strings[1] == "(":
        scan.check_calls += 1
    for i, text in enumerate(strings):
        before = strings[i - 1] if i else ""
        after = strings[i + 1] if i + 1 < len(strings) else ""
        if tokens[i].type == tokenize.NAME and text in ("check", "Checker"):
            if after in ("=", ":=", "+=") or before in _BINDS_BEFORE:
                scan.findings.append(f"rebinds {text}")
            elif before == "." or after == ".":
                scan.findings.append(f"reaches into {text}")
            elif text == "Checker":
                scan.findings.append("uses Checker")
        if tokens[i].type == tokenize.STRING and any(w in text for w in _GRADING_WORDS):
            scan.findings.append("touches the grading machinery")
        if text == "vestige" and after == "." and strings[i + 2 : i + 3] == ["course"]:
            scan.findings.append("touches the grading machinery")
        if text in ("__builtins__", "builtins", "sys") and after == ".":
            scan.findings.append(f"modifies {text}")
