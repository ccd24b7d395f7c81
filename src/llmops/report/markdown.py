"""summary.md: the document rendered as Markdown."""

from __future__ import annotations

import re

from .model import Bullets, Code, Doc, Heading, Image, Link, Para, Strong, Table


def _md_escape(s: str, in_table: bool) -> str:
    # Only what would change the rendering: intraword underscores and "<=" stay readable.
    s = s.replace("\\", "\\\\")
    for ch in "*`[]":
        s = s.replace(ch, "\\" + ch)
    s = re.sub(r"<(?=[A-Za-z/!?])", r"\\<", s)
    s = re.sub(r"(^|\s)_|_($|\s)", lambda m: m.group(0).replace("_", "\\_"), s)
    if in_table:
        s = s.replace("|", "\\|").replace("\n", " ")
    return s


def _md_spans(spans: list, in_table: bool = False) -> str:
    out = []
    for s in spans:
        if isinstance(s, Code):
            t = s.text.replace("\n", " ")
            if in_table:
                t = t.replace("|", "\\|")
            fence = "``" if "`" in t else "`"
            out.append(f"{fence}{t}{fence}")
        elif isinstance(s, Strong):
            out.append(f"**{_md_escape(s.text, in_table)}**")
        elif isinstance(s, Link):
            out.append(f"[{_md_escape(s.label, in_table)}]({s.href})")
        else:
            out.append(_md_escape(s.text, in_table))
    return "".join(out)


def render_markdown(doc: Doc) -> str:
    out: list[str] = []
    for b in doc.blocks:
        if isinstance(b, Heading):
            out.append("#" * b.level + " " + _md_escape(b.text, False))
        elif isinstance(b, Para):
            out.append(_md_spans(b.spans))
        elif isinstance(b, Table):
            out.append("| " + " | ".join(b.headers) + " |")
            out.append("|" + "|".join("---" for _ in b.headers) + "|")
            for row in b.rows:
                out.append("| " + " | ".join(_md_spans(c.spans, True) for c in row) + " |")
        elif isinstance(b, Bullets):
            out.append("\n".join("- " + _md_spans(item) for item in b.items))
        elif isinstance(b, Image):
            out.append(f"![{_md_escape(b.alt, False)}]({b.src})")
        out.append("")
    return "\n".join(out).rstrip() + "\n"
