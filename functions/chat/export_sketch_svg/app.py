"""GET /api/v1/chat/channels/{channel_id}/sketches/{sketch_id}/svg: the sketch as it is now,
as an SVG picture."""

from aws_lambda_powertools.event_handler import Response
from kumo.chat import sketch_svg, sketches
from kumo.core.api import current_principal, http_handler, make_resolver

app = make_resolver()


@app.get(
    "/api/v1/chat/channels/<channel_id>/sketches/<sketch_id>/svg",
    tags=["chat"],
    responses={200: {"description": "The picture.", "content": {"image/svg+xml": {}}}},
)
def export_sketch_svg(channel_id: str, sketch_id: str) -> Response[str]:
    sketch = sketches.get_sketch(
        user_id=current_principal(app).user_id, channel_id=channel_id, sketch_id=sketch_id
    )
    return Response(
        status_code=200,
        content_type="image/svg+xml",
        body=sketch_svg.render(sketch, sketches.all_ops(sketch)),
        headers={
            "Content-Disposition": f'inline; filename="sketch-{sketch_id}.svg"',
            # Opened on its own, the picture runs nothing and loads nothing.
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; sandbox",
        },
    )


lambda_handler = http_handler(app)
