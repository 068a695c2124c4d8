"""POST /api/v1/media/uploads: a pre-signed form to upload a file straight to S3 (ADR 28)."""

from kumo.core.api import current_principal, http_handler, make_resolver
from kumo.media import service, uploads
from kumo.media.schemas import CreateUploadRequest, UploadOut

app = make_resolver()


@app.post("/api/v1/media/uploads", status_code=201, tags=["media"])
def request_upload(body: CreateUploadRequest) -> UploadOut:
    media, form = uploads.request_upload(user_id=current_principal(app).user_id, request=body)
    return UploadOut(media=service.media_out(media), upload=form)


lambda_handler = http_handler(app)
