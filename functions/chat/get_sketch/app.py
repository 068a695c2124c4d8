"""GET /api/v1/chat/channels/{channel_id}/sketches/{sketch_id}: a sketch's title, canvas and
newest sequence number."""

from kumo.chat import sketches
from kumo.chat.schemas import SketchOut
from kumo.core.api import current_principal, http_handler, make_resolver

app = make_resolver()


@app.get("/api/v1/chat/channels/<channel_id>/sketches/<sketch_id>", tags=["chat"])
def get_sketch(channel_id: str, sketch_id: str) -> SketchOut:
    sketch = sketches.get_sketch(
        user_id=current_principal(app).user_id, channel_id=channel_id, sketch_id=sketch_id
    )
    return sketches.sketch_out(sketch)


lambda_handler = http_handler(app)
