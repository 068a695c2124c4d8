"""POST /api/v1/chat/channels/{channel_id}/sketches: a member starts a sketch in the channel."""

from kumo.chat import sketches
from kumo.chat.schemas import CreateSketchRequest, SketchOut
from kumo.core.api import current_principal, http_handler, make_resolver

app = make_resolver()


@app.post("/api/v1/chat/channels/<channel_id>/sketches", status_code=201, tags=["chat"])
def create_sketch(channel_id: str, body: CreateSketchRequest) -> SketchOut:
    sketch = sketches.create_sketch(
        user_id=current_principal(app).user_id, channel_id=channel_id, request=body
    )
    return sketches.sketch_out(sketch)


lambda_handler = http_handler(app)
