"""DELETE /api/v1/alert-rules/{rule_id}: an org admin deletes a rule; its open alerts resolve."""

from aws_lambda_powertools.event_handler import Response
from kumo.alerts import rule_changes
from kumo.core.api import current_principal, http_handler, make_resolver

app = make_resolver()


@app.delete("/api/v1/alert-rules/<rule_id>", status_code=204, tags=["alerts"])
def delete_alert_rule(rule_id: str) -> Response[None]:
    rule_changes.delete_rule(user_id=current_principal(app).user_id, rule_id=rule_id)
    return Response(status_code=204)


lambda_handler = http_handler(app)
