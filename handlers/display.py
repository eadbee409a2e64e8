"""How the admin pages show a handler's JSON and the difference between two versions of it."""

import difflib
from typing import Any

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from .forms import pretty_json

CODE_STYLE = "font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px"
DIFF_STYLES = {
    "+": "background: rgba(46, 160, 67, 0.22)",
    "-": "background: rgba(248, 81, 73, 0.22)",
    "@": "color: #6e7781; font-style: italic",
}


def plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def json_block(value: Any) -> SafeString:
    return format_html('<pre style="{}; white-space: pre-wrap">{}</pre>', CODE_STYLE, pretty_json(value))


def diff_block(before: Any, after: Any, before_label: str, after_label: str) -> SafeString:
    """A unified diff of two handlers as pretty JSON, added lines green and removed ones red."""
    old = pretty_json(before).splitlines() if before is not None else []
    lines = list(difflib.unified_diff(old, pretty_json(after).splitlines(), before_label, after_label, lineterm=""))
    if not lines:
        return mark_safe("<p>No differences.</p>")
    styled = format_html_join(
        "",  # Each line is a block already; a newline between them would double the spacing in <pre>.
        '<span style="display: block; {}">{}</span>',
        ((_diff_line_style(line), line) for line in lines),
    )
    return format_html('<pre style="{}; white-space: pre-wrap">{}</pre>', CODE_STYLE, styled)


def _diff_line_style(line: str) -> str:
    if line.startswith(("+++", "---")):
        return "font-weight: bold"
    return DIFF_STYLES.get(line[:1], "")
