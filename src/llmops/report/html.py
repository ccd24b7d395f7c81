"""summary.html: one self-contained file (inline CSS, charts as base64 data URIs).

It renders the same :class:`llmops.report.model.Doc` as summary.md, so the two carry the same
content and the same figures.  Links to the evidence files stay relative: they sit next
to the summary in the run folder.
"""

from __future__ import annotations

import base64
from html import escape
from pathlib import Path

from .model import Bullets, Code, Doc, Heading, Image, Link, Para, Strong, Table, Text

CSS = """
:root { --fg:#1b1f24; --muted:#5b636d; --line:#d6dbe1; --pass:#1a7f37; --fail:#cf222e;
        --skip:#9a6700; --err:#8250df; --bg:#ffffff; --head:#f3f5f7; }
* { box-sizing: border-box; }
body { font: 15px/1.5 -apple-system, "Segoe UI", "DejaVu Sans", Helvetica, Arial, sans-serif;
       color: var(--fg); background: var(--bg); margin: 0; }
main { max-width: 1100px; margin: 0 auto; padding: 28px 32px 64px; }
h1 { font-size: 26px; margin: 0 0 12px; }
h2 { font-size: 20px; margin: 32px 0 10px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 16px; margin: 18px 0 6px; }
p { margin: 6px 0; }
code { font: 13px/1.4 "DejaVu Sans Mono", Menlo, Consolas, monospace; background: var(--head);
       padding: 1px 4px; border-radius: 4px; }
table { border-collapse: collapse; margin: 8px 0 14px; width: 100%; }
th, td { border: 1px solid var(--line); padding: 5px 9px; text-align: left; vertical-align: top; }
th { background: var(--head); font-weight: 600; }
td.num { font-variant-numeric: tabular-nums; white-space: nowrap; }
td.status-pass { color: var(--pass); font-weight: 600; }
td.status-fail { color: var(--fail); background: #ffebe9; }
td.status-skipped, td.status-n\\/a { color: var(--skip); }
td.status-error { color: var(--err); background: #fbefff; }
p.verdict { font-size: 18px; padding: 10px 14px; border-radius: 6px; border: 1px solid var(--line); }
p.verdict.status-pass { background: #dafbe1; border-color: #a7e3b5; }
p.verdict.status-fail { background: #ffebe9; border-color: #ffb8b0; }
p.verdict.status-skipped { background: #fff8c5; border-color: #eed888; }
p.verdict.status-error { background: #fbefff; border-color: #d8b9ff; }
p.loud { font-size: 18px; color: #fff; background: var(--fail); padding: 10px 14px; border-radius: 6px; }
p.muted { color: var(--muted); font-size: 13px; }
figure { margin: 10px 0 18px; }
figure img { max-width: 100%; border: 1px solid var(--line); border-radius: 4px; }
figcaption { color: var(--muted); font-size: 13px; }
ul { margin: 6px 0; padding-left: 22px; }
a { color: #0969da; }
"""


def _spans(spans: list) -> str:
    out = []
    for s in spans:
        if isinstance(s, Code):
            out.append(f"<code>{escape(s.text)}</code>")
        elif isinstance(s, Strong):
            out.append(f"<strong>{escape(s.text)}</strong>")
        elif isinstance(s, Link):
            out.append(f'<a href="{escape(s.href, quote=True)}">{escape(s.label)}</a>')
        elif isinstance(s, Text):
            out.append(escape(s.text))
        else:
            out.append(escape(str(s)))
    return "".join(out)


def _data_uri(path: Path) -> str | None:
    try:
        data = path.read_bytes()
    except OSError:
        return None
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def render_html(doc: Doc, run_dir: Path) -> str:
    body: list[str] = []
    for b in doc.blocks:
        if isinstance(b, Heading):
            anchor = f' id="{escape(b.anchor, quote=True)}"' if b.anchor else ""
            body.append(f"<h{b.level}{anchor}>{escape(b.text)}</h{b.level}>")
        elif isinstance(b, Para):
            css = f' class="{escape(b.css, quote=True)}"' if b.css else ""
            body.append(f"<p{css}>{_spans(b.spans)}</p>")
        elif isinstance(b, Table):
            rows = ["<tr>" + "".join(f"<th>{escape(h)}</th>" for h in b.headers) + "</tr>"]
            for row in b.rows:
                cells = []
                for c in row:
                    attrs = "".join(f' {escape(k)}="{escape(v, quote=True)}"' for k, v in c.attrs.items())
                    css = f' class="{escape(c.css, quote=True)}"' if c.css else ""
                    cells.append(f"<td{css}{attrs}>{_spans(c.spans)}</td>")
                rows.append("<tr>" + "".join(cells) + "</tr>")
            body.append("<table>\n" + "\n".join(rows) + "\n</table>")
        elif isinstance(b, Bullets):
            body.append("<ul>\n" + "\n".join(f"<li>{_spans(i)}</li>" for i in b.items) + "\n</ul>")
        elif isinstance(b, Image):
            uri = _data_uri(Path(run_dir) / b.src)
            if uri is None:
                body.append(f"<p>(chart {escape(b.src)} is missing)</p>")
            else:
                body.append(f'<figure><img alt="{escape(b.alt, quote=True)}" src="{uri}">'
                            f"<figcaption>{escape(b.alt)}</figcaption></figure>")
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{escape(doc.title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n"
            + "\n".join(body) + "\n</main>\n</body>\n</html>\n")
