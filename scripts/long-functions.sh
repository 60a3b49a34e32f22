#!/usr/bin/env bash
# Lists the production functions of the workspace longer than N lines (default 100), longest
# first, as `file:line length name`. Production means `crates/*/src/**/*.rs` without `tests.rs`,
# `tests/` folders and `#[cfg(test)] mod … { … }` blocks.
#
# Usage: scripts/long-functions.sh [N]      (run from anywhere inside the repository)
#
# A function longer than N that reads best whole (a table, a linear script) carries a comment
# saying why on one of the 3 lines above its `fn`, starting with `// long:`; such functions are
# listed with `(long: reason)` so a reader sees the reason, and do not count in the exit status.
# Exit status: 0 when every listed function carries a reason, 1 otherwise, 2 on a usage error.
#
# The scan is lexical (comments, strings, raw strings and char literals are blanked before braces
# are counted), not a Rust parser: macro bodies that define functions are counted as code.
set -euo pipefail

limit="${1:-100}"
case "$limit" in
'' | *[!0-9]*)
    echo "usage: $0 [N]" >&2
    exit 2
    ;;
esac

root="$(git -C "$(dirname "$0")" rev-parse --show-toplevel)"
cd "$root"

# The scanner reads the file list on stdin, so its program is passed with -c.
scanner="$(
    cat <<'PY'
import re
import sys

limit = int(sys.argv[1])


def blank(text):
    """Returns text with comments, string and char literals replaced by spaces (newlines kept),
    so that braces and keywords inside them are not counted."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif (m := re.match(r'(?:b|c)?r(#*)"', text[i:i + 300])) and not (
            i and (text[i - 1].isalnum() or text[i - 1] == "_")
        ):
            close = '"' + m.group(1)
            j = text.find(close, i + m.end())
            j = n if j < 0 else j + len(close)
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            j += 1
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "'":
            # A char literal ('x', '\n', '\u{..}', '{'); otherwise a lifetime or label.
            m = re.match(r"'(?:\\u\{[0-9a-fA-F]+\}|\\.|[^\\'\n])'", text[i:i + 12])
            if m:
                out.append(" " * m.end())
                i += m.end()
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def matching(code, open_at):
    """Index of the brace closing the one at open_at (or len(code))."""
    depth = 0
    for k in range(open_at, len(code)):
        if code[k] == "{":
            depth += 1
        elif code[k] == "}":
            depth -= 1
            if depth == 0:
                return k
    return len(code)


def test_blocks(code):
    """Spans of `#[cfg(test)] mod name { ... }` (also cfg(all(test, ...)))."""
    spans = []
    attr = re.compile(r"#\s*\[\s*cfg\s*\((?:[^\]]*\btest\b)[^\]]*\]\s*(?:#\s*\[[^\]]*\]\s*)*"
                      r"(?:pub(?:\([^)]*\))?\s+)?mod\s+\w+\s*\{")
    for m in attr.finditer(code):
        if re.search(r"\bnot\s*\(\s*test", m.group(0)):
            continue
        spans.append((m.start(), matching(code, m.end() - 1)))
    return spans


fn_re = re.compile(r"\bfn\s+([A-Za-z_][A-Za-z0-9_]*)")
found = []
for path in sys.stdin.read().split("\0"):
    if not path:
        continue
    with open(path, encoding="utf-8") as f:
        text = f.read()
    code = blank(text)
    lines = text.split("\n")
    skip = test_blocks(code)
    for m in fn_re.finditer(code):
        if any(a <= m.start() <= b for a, b in skip):
            continue
        # The body opens at the first `{` after the signature, unless a `;` (a declaration
        # without body) comes first. Parentheses and brackets are tracked so that a `;` in an
        # array type `[u8; 4]` does not end the signature.
        depth, k = 0, m.end()
        while k < len(code):
            ch = code[k]
            if ch in "([":
                depth += 1
            elif ch in ")]":
                depth -= 1
            elif ch == ";" and depth == 0:
                k = -1
                break
            elif ch == "{" and depth == 0:
                break
            k += 1
        if k < 0 or k >= len(code):
            continue
        end = matching(code, k)
        first = code.count("\n", 0, m.start()) + 1
        last = code.count("\n", 0, end) + 1
        length = last - first + 1
        if length <= limit:
            continue
        reason = None
        for back in range(2, 5):
            if first - back < 0:
                break
            r = re.search(r"//\s*long:\s*(.*)", lines[first - back])
            if r:
                reason = r.group(1).strip()
                break
        found.append((length, path, first, m.group(1), reason))

unexplained = 0
for length, path, first, name, reason in sorted(found, key=lambda t: (-t[0], t[1], t[2])):
    note = f"  (long: {reason})" if reason else ""
    unexplained += reason is None
    print(f"{path}:{first}\t{length}\t{name}{note}")
sys.exit(1 if unexplained else 0)
PY
)"

find crates -path '*/src/*' -name '*.rs' ! -name tests.rs ! -path '*/tests/*' -print0 |
    sort -z |
    python3 -c "$scanner" "$limit"
