"""The quickstart's index.html: one self-contained page (inline style, relative links, no script, no server)
with every picture, number and command line of the run, built from the steps' results alone."""

from __future__ import annotations

from html import escape
from urllib.parse import quote

from gcgan_cli.core.quickstart import NOT_SHOWN

STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.8em 0; } td, th { border: 1px solid #ccc; padding: 0.3em 0.6em;
vertical-align: top; text-align: left; } th { background: #f3f3f3; }
pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; white-space: pre-wrap; font-size: 13px; }
figure { display: inline-block; margin: 0.5em 1em 0.5em 0; vertical-align: top; max-width: 100%; }
img { max-width: 100%; image-rendering: pixelated; border: 1px solid #ddd; }
figcaption { font-size: 13px; color: #555; max-width: 600px; } .note { color: #555; }
table.side { width: 100%; table-layout: fixed; } table.side th { font-size: 16px; }
table.side figure { margin: 0; }
"""


def render(header: dict, results: list) -> str:
    """The page for `header` (minutes, device, threads, scale, written) and the StepResults, in step order."""
    total = sum(r.seconds for r in results)
    threads = f", {header['threads']} CPU thread(s)" if header["threads"] else ""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<title>gcgan quickstart</title>",
        f"<style>{STYLE}</style></head><body>",
        "<h1>gcgan quickstart</h1>",
        f"<p>A {header['minutes']:g}-minute time box on {escape(header['device'])}{threads}, scale "
        f"{escape(header['scale'])}; the steps took {_clock(total)} in all. Written {escape(header['written'])}. "
        "Every command below runs from the folder quickstart was started in.</p>",
        '<p class="note">Stage 1 and stage 2 were trained from scratch by this run: stage 1 on the labelled studio '
        "strips, stage 2 moved from it to the wild look. Eyes take about 2,500 stage-1 steps of the small model on "
        f"this data{_stage1_steps(results)}; before them the consistency sits at the mean-gaze baseline. "
        f"{_pretrained_note(results)}</p>",
        "<h2>Summary</h2>",
        _summary(results),
    ]
    for result in results:
        if result.name != "page":
            parts.append(_section(result))
    parts.append(f'<p class="note">Log: {_link("quickstart.log", "quickstart.log")}</p></body></html>')
    return "\n".join(parts) + "\n"


def _stage1_steps(results: list) -> str:
    """`; this run's stage 1: 693 steps, 17.5 img/s`, from the stage-1 result where there is one."""
    stage1 = next((r for r in results if r.name == "stage1" and r.headline), None)
    return f"; this run's stage 1: {escape(stage1.headline)}" if stage1 else ""


def _pretrained_note(results: list) -> str:
    """What the header says of the pretrained generator: where it is shown beside stage 1, or why it is not."""
    shown = next((r for r in results if r.name == "pretrained"), None)
    if shown is None:
        return ""
    if not shown.columns:
        return f"gcgan's pretrained generator is not shown beside them: {escape(shown.numbers.get(NOT_SHOWN, ''))}."
    return (
        "Beside this run's stage 1, " + _link("#pretrained", "the pretrained section") + " shows the generator gcgan "
        "ships, trained by a long documented run on data like this, sampled here and judged by this run's own "
        "judge: what the time box gives next to what a long run gives."
    )


def _summary(results: list) -> str:
    rows = ["<table><tr><th>step</th><th>wrote</th><th>time</th><th>number</th></tr>"]
    for r in results:
        wrote = "<br>".join(_link(path, path) for path in r.wrote)
        title = _link(f"#{r.name}", r.title) if r.name != "page" else escape(r.title)
        rows.append(
            f"<tr><td>{title}</td><td>{wrote}</td><td>{_clock(r.seconds)}</td><td>{escape(r.headline)}</td></tr>"
        )
    return "\n".join(rows + ["</table>"])


def _section(r) -> str:
    parts = [f'<h2 id="{escape(r.name)}">{escape(r.title)}</h2>']
    if r.numbers:
        parts.append(
            "<table>"
            + "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in r.numbers.items())
            + "</table>"
        )
    parts.append("<p>To run it by hand:</p><pre>" + escape("\n".join(r.commands)) + "</pre>")
    if r.calls:
        parts.append('<p class="note">Run here as:</p><pre>' + escape("\n".join(r.calls)) + "</pre>")
    if r.columns:
        parts.append(_side_by_side(r.columns, r.pictures))
    else:
        parts += [_figure(path, caption) for path, caption in r.pictures]
    if r.links:
        parts.append("<p>" + " &middot; ".join(_link(path, label) for path, label in r.links) + "</p>")
    return "\n".join(parts)


def _side_by_side(columns: list[str], pictures: list) -> str:
    """The pictures as rows of len(columns), each column under its heading."""
    width = len(columns)
    rows = ["<tr>" + "".join(f"<th>{escape(heading)}</th>" for heading in columns) + "</tr>"]
    for first in range(0, len(pictures), width):
        cells = (f"<td>{_figure(path, caption)}</td>" for path, caption in pictures[first : first + width])
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return '<table class="side">' + "\n".join(rows) + "</table>"


def _figure(path: str, caption: str) -> str:
    return (
        f'<figure><a href="{quote(path)}"><img src="{quote(path)}" alt="{escape(caption)}"></a>'
        f"<figcaption>{escape(caption)}</figcaption></figure>"
    )


def _link(path: str, label: str) -> str:
    target = path if path.startswith("#") else quote(path)
    return f'<a href="{target}">{escape(label)}</a>'


def _clock(seconds: float) -> str:
    whole = int(round(seconds))
    return f"{whole // 60}:{whole % 60:02d}"
