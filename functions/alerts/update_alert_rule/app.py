"""PATCH /api/v1/alert-rules/{rule_id}: an org admin changes a rule; a new condition resolves
its open alerts."""

from kumo.alerts import rule_changes, service
from kumo.alerts.schemas import AlertRuleOut, UpdateAlertRuleRequest
from kumo.core.api import current_principal, http_handler, make_resolver

app = make_resolver()


@app.patch("/api/v1/alert-rules/<rule_id>", tags=["alerts"])
def update_alert_rule(rule_id: str, body: UpdateAlertRuleRequest) -> AlertRuleOut:
    rule = rule_changes.update_rule(
        user_id=current_principal(app).user_id, rule_id=rule_id, request=body
    )
    return service.rule_out(rule)


lambda_handler = http_handler(app)
