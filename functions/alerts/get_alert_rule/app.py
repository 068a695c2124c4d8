"""GET /api/v1/alert-rules/{rule_id}: one alert rule of an org the caller belongs to."""

from kumo.alerts import service
from kumo.alerts.schemas import AlertRuleOut
from kumo.core.api import current_principal, http_handler, make_resolver

app = make_resolver()


@app.get("/api/v1/alert-rules/<rule_id>", tags=["alerts"])
def get_alert_rule(rule_id: str) -> AlertRuleOut:
    rule = service.get_rule_for(current_principal(app).user_id, rule_id, "viewer")
    return service.rule_out(rule)


lambda_handler = http_handler(app)
