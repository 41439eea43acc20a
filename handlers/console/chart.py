"""The overview's chart: OCPI messages per minute by module as an inline SVG (no script, no assets)."""

from __future__ import annotations

from markupsafe import Markup, escape

COLOURS = ("#1f6feb", "#d1242f", "#1a7f37", "#9a6700", "#8250df", "#bf3989", "#0a7b83", "#57606a")
WIDTH, HEIGHT, PAD = 600, 180, 28


def traffic_svg(data: dict) -> Markup:
    """One line per module over the minutes of ``data`` (:func:`projections.console.traffic`)."""
    labels, modules = data["minutes"], data["modules"]
    top = max((max(v) for v in modules.values()), default=0) or 1
    steps = max(len(labels) - 1, 1)

    def x(i: int) -> float:
        return PAD + i * (WIDTH - 2 * PAD) / steps

    def y(v: int) -> float:
        return HEIGHT - PAD - v * (HEIGHT - 2 * PAD) / top

    parts = [f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
             f'aria-label="OCPI messages per minute by module, last {len(labels)} minutes">',
             f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" stroke="#888"/>',
             f'<text x="2" y="{PAD}" font-size="11">{top}</text>',
             f'<text x="2" y="{HEIGHT - PAD}" font-size="11">0</text>']
    if labels:
        parts.append(f'<text x="{PAD}" y="{HEIGHT - 8}" font-size="11">{escape(labels[0])}</text>')
        parts.append(f'<text x="{WIDTH - PAD - 30}" y="{HEIGHT - 8}" font-size="11">{escape(labels[-1])}</text>')
    for n, (module, values) in enumerate(modules.items()):
        colour = COLOURS[n % len(COLOURS)]
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(values))
        parts.append(f'<polyline class="series" data-module="{escape(module)}" fill="none" stroke="{colour}"'
                     f' stroke-width="2" points="{points}"><title>{escape(module)}: {sum(values)} messages'
                     '</title></polyline>')
    parts.append("</svg>")
    legend = "".join(f'<li><svg width="12" height="12"><rect width="12" height="12" fill="{COLOURS[n % len(COLOURS)]}"/>'
                     f"</svg> {escape(m)} ({sum(v)})</li>" for n, (m, v) in enumerate(modules.items()))
    return Markup("".join(parts) + (f'<ul class="legend">{legend}</ul>' if legend
                                    else '<p class="muted">no messages in the last hour</p>'))
