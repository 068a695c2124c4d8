"""POST /api/v1/alerts/{alert_id}/acknowledge: an org member acknowledges an open alert."""

from kumo.alerts import service
from kumo.alerts.schemas import AlertOut
from kumo.core.api import current_principal, http_handler, make_resolver

app = make_resolver()


@app.post("/api/v1/alerts/<alert_id>/acknowledge", tags=["alerts"])
def acknowledge_alert(alert_id: str) -> AlertOut:
    alert = service.acknowledge(user_id=current_principal(app).user_id, alert_id=alert_id)
    return service.alert_out(alert)


lambda_handler = http_handler(app)
