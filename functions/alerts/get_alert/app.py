"""GET /api/v1/alerts/{alert_id}: one alert of an org the caller belongs to."""

from kumo.alerts import service
from kumo.alerts.schemas import AlertOut
from kumo.core.api import current_principal, http_handler, make_resolver

app = make_resolver()


@app.get("/api/v1/alerts/<alert_id>", tags=["alerts"])
def get_alert(alert_id: str) -> AlertOut:
    alert = service.get_alert_for(current_principal(app).user_id, alert_id, "viewer")
    return service.alert_out(alert)


lambda_handler = http_handler(app)
