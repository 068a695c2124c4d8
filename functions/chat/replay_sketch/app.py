"""GET /api/v1/chat/channels/{channel_id}/sketches/{sketch_id}/replay: everything to draw the
sketch or replay it: links to its compacted segments, then the operations after them, each
with its time."""

from kumo.chat import sketches
from kumo.chat.schemas import SketchLoadOut
from kumo.core.api import current_principal, http_handler, make_resolver

app = make_resolver()


@app.get("/api/v1/chat/channels/<channel_id>/sketches/<sketch_id>/replay", tags=["chat"])
def replay_sketch(channel_id: str, sketch_id: str) -> SketchLoadOut:
    return sketches.load(
        user_id=current_principal(app).user_id, channel_id=channel_id, sketch_id=sketch_id
    )


lambda_handler = http_handler(app)
