"""A sketch's current state as SVG: every stroke not erased, in the order drawn.

Replaying the operations decides what is visible: a stroke is shown until an erase names it,
and again once a restore does. The SVG is built only from validated numbers and `#rrggbb`
colours (kumo.chat.schemas.StrokeOp), so it carries no text, link or script of anyone's.
"""

from __future__ import annotations

from typing import Any, Final

from kumo.chat.models import SketchModel

# A highlighter lets what is under it show through.
_OPACITY: Final = {"pen": 1.0, "marker": 0.9, "highlighter": 0.35}


def visible_strokes(ops: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The strokes shown after every operation, in the order they were drawn."""
    strokes: dict[int, dict[str, Any]] = {}
    shown: set[int] = set()
    for entry in ops:
        op, seq = entry["op"], int(entry["seq"])
        if op["kind"] == "stroke":
            strokes[seq] = op
            shown.add(seq)
        elif op["kind"] == "erase":
            shown -= set(op["strokes"])
        else:
            shown |= {target for target in op["strokes"] if target in strokes}
    return [strokes[seq] for seq in sorted(shown)]


def _number(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _element(stroke: dict[str, Any]) -> str:
    colour, width = stroke["color"], _number(float(stroke["width"]))
    opacity = _OPACITY.get(stroke["tool"], 1.0)
    points = stroke["points"]
    if len(points) == 1:
        x, y = points[0]
        radius = _number(float(stroke["width"]) / 2)
        return (
            f'<circle cx="{_number(x)}" cy="{_number(y)}" r="{radius}" fill="{colour}" '
            f'fill-opacity="{opacity}"/>'
        )
    path = " ".join(f"{_number(x)},{_number(y)}" for x, y in points)
    return (
        f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="{width}" '
        f'stroke-opacity="{opacity}" stroke-linecap="round" stroke-linejoin="round"/>'
    )


def render(sketch: SketchModel, ops: list[dict[str, Any]]) -> str:
    width, height = int(sketch.width), int(sketch.height)
    body = "\n".join(_element(stroke) for stroke in visible_strokes(ops))
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">\n'
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>\n{body}\n</svg>\n'
    )
