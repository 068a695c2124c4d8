"""POST /api/v1/alert-rules: an org admin creates an alert rule (at most 100 per org)."""

from kumo.alerts import service
from kumo.alerts.schemas import AlertRuleOut, CreateAlertRuleRequest
from kumo.core.api import current_principal, http_handler, make_resolver

app = make_resolver()


@app.post("/api/v1/alert-rules", status_code=201, tags=["alerts"])
def create_alert_rule(body: CreateAlertRuleRequest) -> AlertRuleOut:
    rule = service.create_rule(user_id=current_principal(app).user_id, request=body)
    return service.rule_out(rule)


lambda_handler = http_handler(app)
