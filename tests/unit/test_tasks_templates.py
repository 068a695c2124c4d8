"""E-mail templates (kumo.tasks.templates): params checks and Jinja2 rendering."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import jinja2
import pytest
from kumo.tasks import templates
from kumo.tasks.templates import (
    MAX_PARAMS_BYTES,
    MAX_SUBJECT_CHARS,
    TEMPLATES,
    TemplateError,
    check_params,
    render,
)

from tests.support.template import ROOT

LINK = "https://app.kumo.test/some/page?token=t0k3n"

# A value for every declared param of every template, optional ones included.
FULL_PARAMS: dict[str, dict[str, Any]] = {
    "verify_email": {"display_name": "Ada", "link": LINK, "token": "t0k3n"},
    "password_reset": {"display_name": "Ada", "link": LINK, "token": "t0k3n"},
    "org_invitation": {
        "inviter": "grace@example.com",
        "org_name": "Acme",
        "role": "admin",
        "link": LINK,
        "token": "t0k3n",
    },
    "alert_notification": {
        "display_name": "Ada",
        "device_name": "Boiler 3",
        "metric": "temperature",
        "value": 92.5,
        "comparison": ">",
        "threshold": 80,
        "severity": "critical",
        "triggered_at": "2026-05-04T13:45:00Z",
        "link": "https://app.kumo.test/alerts/A1",
        "org_name": "Acme",
    },
    "weekly_report": {
        "display_name": "Ada",
        "period_start": "2026-04-27",
        "period_end": "2026-05-03",
        "summary": [
            {"label": "Active devices", "value": 12},
            {"label": "Alerts", "value": "3 (1 critical)"},
            {"label": "Uptime %", "value": 99.5},
        ],
        "highlights": ["Boiler 3 ran hot on Tuesday", "No device went offline"],
        "link": "https://app.kumo.test/reports/R1",
    },
}


def params_for(name: str, **changes: Any) -> dict[str, Any]:
    return FULL_PARAMS[name] | changes


@pytest.fixture(autouse=True)
def aws() -> None:
    """Overrides conftest's moto setup: nothing here touches AWS, so no tables are built."""


# --- rendering ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_render_fills_every_template_from_its_declared_params(name):
    # Given a value for exactly the params the registry declares
    params = FULL_PARAMS[name]
    assert set(params) == TEMPLATES[name].params

    # When rendering it (StrictUndefined fails on any name a template uses undeclared)
    message = render(name, params)

    # Then every part has content and no Jinja syntax is left over
    assert message.subject and message.text and message.html
    for part in (message.subject, message.text, message.html):
        assert "{{" not in part and "{%" not in part


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_render_fills_every_template_without_optional_params(name):
    # Given only the required params
    params = {key: FULL_PARAMS[name][key] for key in TEMPLATES[name].required}

    # When rendering it
    message = render(name, params)

    # Then it renders, with the link in both parts
    assert params["link"] in message.text
    assert 'href="' in message.html


def test_environment_refuses_a_name_no_param_defines():
    # Given a template with a typo in a param name
    template = templates._environment().from_string("Hello {{ dispaly_name }}")

    # When rendering it with the right name
    # Then StrictUndefined names the typo instead of rendering an empty string
    with pytest.raises(jinja2.UndefinedError, match="dispaly_name"):
        template.render(display_name="Ada")


def test_render_escapes_hostile_display_name_in_html_part_only():
    # Given a display name carrying a script
    params = params_for("verify_email", display_name="<script>alert(1)</script> & co")

    # When rendering the verification mail
    message = render("verify_email", params)

    # Then the HTML part escapes it and the text part keeps it as typed
    assert "<script>" not in message.html
    assert "Hello &lt;script&gt;alert(1)&lt;/script&gt; &amp; co," in message.html
    assert "Hello <script>alert(1)</script> & co," in message.text


def test_render_escapes_ampersand_in_html_link():
    # Given a link with two query parameters
    params = params_for("password_reset", link="https://x.test/?a=1&b=2")

    # When rendering the reset mail
    message = render("password_reset", params)

    # Then the href is valid HTML and the text part has the link as is
    assert 'href="https://x.test/?a=1&amp;b=2"' in message.html
    assert "https://x.test/?a=1&b=2" in message.text


def test_render_collapses_newline_in_param_to_one_subject_line():
    # Given an org name that tries to add a mail header
    params = params_for("org_invitation", org_name="Acme\r\nBcc: victim@example.com\n")

    # When rendering the invitation
    message = render("org_invitation", params)

    # Then the subject is one line with the newline turned into a space
    assert message.subject == (
        "grace@example.com invited you to Acme Bcc: victim@example.com on Kumo"
    )


def test_render_caps_subject_length():
    # Given an org name far longer than a subject may be
    params = params_for("org_invitation", org_name="A" * 500)

    # When rendering the invitation
    message = render("org_invitation", params)

    # Then the subject is cut to the limit and marked as cut
    assert len(message.subject) == MAX_SUBJECT_CHARS
    assert message.subject.endswith("…")


@pytest.mark.parametrize(
    ("name", "facts"),
    [
        ("verify_email", ["t0k3n", LINK, "expires in 24 hours"]),
        ("password_reset", ["t0k3n", LINK, "expires in 1 hour"]),
        ("org_invitation", ["grace@example.com", "Acme", "admin", "t0k3n", LINK, "7 days"]),
    ],
)
def test_render_keeps_facts_of_account_mails_in_both_parts(name, facts):
    # Given the params the identity and orgs services pass
    # When rendering the mail
    message = render(name, FULL_PARAMS[name])

    # Then the code, the link and the expiry are in both parts
    for fact in facts:
        assert fact in message.text
        assert fact in message.html


def test_render_alert_notification_states_every_fact():
    # Given a critical alert in an organization
    # When rendering its notification
    message = render("alert_notification", FULL_PARAMS["alert_notification"])

    # Then the subject sums it up and both parts state every fact
    assert message.subject == "[Critical] Boiler 3: temperature 92.5 > 80"
    facts = ["Boiler 3", "temperature", "92.5", "80", "critical", "2026-05-04T13:45:00Z", "Acme"]
    for fact in [*facts, "temperature > 80", "https://app.kumo.test/alerts/A1"]:
        assert fact in message.text
    for fact in [*facts, "temperature &gt; 80", 'href="https://app.kumo.test/alerts/A1"']:
        assert fact in message.html


def test_render_alert_notification_leaves_out_absent_org():
    # Given an alert without an organization
    params = dict(FULL_PARAMS["alert_notification"])
    del params["org_name"]

    # When rendering its notification
    message = render("alert_notification", params)

    # Then neither part has an organization line
    assert "Organization" not in message.text
    assert "Organization" not in message.html


def test_render_weekly_report_aligns_summary_in_text_part():
    # Given a report with labels of different lengths
    # When rendering it
    message = render("weekly_report", FULL_PARAMS["weekly_report"])

    # Then the text part lines the values up after the longest label
    assert "  Active devices  12\n" in message.text
    assert "  Alerts          3 (1 critical)\n" in message.text
    assert "  Uptime %        99.5\n" in message.text


def test_render_weekly_report_lists_highlights_as_bullets_in_text_part():
    # Given a report with highlights
    # When rendering it
    message = render("weekly_report", FULL_PARAMS["weekly_report"])

    # Then the text part lists them as bullets
    assert "Highlights:\n  - Boiler 3 ran hot on Tuesday\n  - No device went offline\n" in (
        message.text
    )


def test_render_weekly_report_tables_summary_and_lists_highlights_in_html_part():
    # Given a report with a summary and highlights, one of them with markup
    params = params_for("weekly_report", highlights=["<b>Boiler 3</b> ran hot"])

    # When rendering it
    message = render("weekly_report", params)

    # Then the summary is a table with row headers and the highlights a list, escaped
    assert '<th scope="row"' in message.html
    assert ">Alerts</th><td" in message.html
    assert ">3 (1 critical)</td>" in message.html
    assert ">&lt;b&gt;Boiler 3&lt;/b&gt; ran hot</li>" in message.html


def test_render_weekly_report_omits_highlights_section_when_absent():
    # Given a report without highlights
    params = dict(FULL_PARAMS["weekly_report"])
    del params["highlights"]

    # When rendering it
    message = render("weekly_report", params)

    # Then neither part has a highlights section
    assert "Highlights" not in message.text
    assert "<ul" not in message.html


def test_render_html_is_self_contained():
    # Given any rendered mail
    message = render("weekly_report", FULL_PARAMS["weekly_report"])

    # Then the HTML loads nothing from elsewhere and declares its language
    assert '<html lang="en"' in message.html
    for marker in ("<script", "<img", "<link", "@import", "url("):
        assert marker not in message.html


def test_render_refuses_params_it_would_not_enqueue():
    # Given params without the link
    # When rendering the reset mail
    # Then it fails with the same error enqueueing would raise
    with pytest.raises(TemplateError, match="link is missing"):
        render("password_reset", {"display_name": "Ada", "token": "t0k3n"})


# --- checking params ------------------------------------------------------------------------


def test_check_params_names_known_templates_for_unknown_template():
    # Given a template name nobody defined
    # When checking params for it
    # Then the error names it and lists the known templates
    with pytest.raises(TemplateError) as caught:
        check_params("welcome", {})
    assert "'welcome'" in str(caught.value)
    for name in TEMPLATES:
        assert name in str(caught.value)


def test_check_params_names_missing_params():
    # Given reset params without link and token
    # When checking them
    # Then the error names both
    with pytest.raises(TemplateError, match="link is missing; token is missing"):
        check_params("password_reset", {"display_name": "Ada"})


def test_check_params_names_unknown_params_and_lists_accepted_ones():
    # Given verification params with one the template does not take
    params = params_for("verify_email", colour="blue")

    # When checking them
    # Then the error names the stray param and says which ones the template takes
    with pytest.raises(TemplateError) as caught:
        check_params("verify_email", params)
    assert "colour is not a param of this template" in str(caught.value)
    assert "It takes display_name, link, token." in str(caught.value)


def test_check_params_reports_each_problem_as_a_field_error():
    # Given params with a missing, an unknown and a wrong one
    params = {"display_name": ["Ada"], "link": LINK, "colour": "blue"}

    # When checking them
    with pytest.raises(TemplateError) as caught:
        check_params("verify_email", params)

    # Then each problem is one field error an API can answer with
    assert caught.value.errors == [
        {"field": "token", "message": "is missing"},
        {"field": "colour", "message": "is not a param of this template"},
        {"field": "display_name", "message": "must be a string, a number or a boolean"},
    ]


@pytest.mark.parametrize("value", [{"first": "Ada"}, ["Ada"], None, float("nan")])
def test_check_params_refuses_non_scalar_value(value):
    # Given a display name that is not a string, number or boolean
    params = params_for("verify_email", display_name=value)

    # When checking it
    # Then it is refused by name
    with pytest.raises(TemplateError, match="display_name must be a string, a number or a boolean"):
        check_params("verify_email", params)


@pytest.mark.parametrize(
    "summary",
    [
        "12 devices",
        [],
        ["Active devices: 12"],
        [{"label": "Active devices"}],
        [{"label": "Active devices", "value": 12, "unit": "devices"}],
    ],
)
def test_check_params_refuses_summary_not_made_of_label_value_rows(summary):
    # Given a weekly report whose summary is not a list of {label, value}
    params = params_for("weekly_report", summary=summary)

    # When checking it
    # Then the error says what shape the summary needs
    with pytest.raises(TemplateError, match=r"summary(\[0\])? must be .*label"):
        check_params("weekly_report", params)


@pytest.mark.parametrize(
    ("row", "field"),
    [
        ({"label": 12, "value": 12}, "summary[0].label"),
        ({"label": "Devices", "value": True}, "summary[0].value"),
        ({"label": "Devices", "value": {"n": 12}}, "summary[0].value"),
    ],
)
def test_check_params_refuses_summary_row_of_wrong_types(row, field):
    # Given a summary row with a label or value of the wrong type
    params = params_for("weekly_report", summary=[row])

    # When checking it
    with pytest.raises(TemplateError) as caught:
        check_params("weekly_report", params)

    # Then the error points at that row's field
    assert [error["field"] for error in caught.value.errors] == [field]


def test_check_params_refuses_highlights_that_are_not_strings():
    # Given highlights with a number among them
    params = params_for("weekly_report", highlights=["fine", 3])

    # When checking them
    # Then they are refused by name
    with pytest.raises(TemplateError, match="highlights must be a list of strings"):
        check_params("weekly_report", params)


def test_check_params_refuses_list_outside_weekly_report_lists():
    # Given a list for an alert's value
    params = params_for("alert_notification", value=[92.5, 93.0])

    # When checking it
    # Then only the report's summary and highlights may be lists
    with pytest.raises(TemplateError, match="value must be a string, a number or a boolean"):
        check_params("alert_notification", params)


def test_check_params_refuses_unknown_severity():
    # Given an alert with a severity the templates do not know
    params = params_for("alert_notification", severity="urgent")

    # When checking it
    # Then the error lists the severities there are
    with pytest.raises(TemplateError, match="severity must be one of critical, info, warning"):
        check_params("alert_notification", params)


@pytest.mark.parametrize(
    "link", ["javascript:alert(1)", "/alerts/A1", "https://", "https://app.kumo.test/a b"]
)
def test_check_params_refuses_link_that_is_not_a_web_address(link):
    # Given a link that is not an absolute http(s) address
    params = params_for("alert_notification", link=link)

    # When checking it
    # Then it is refused
    with pytest.raises(TemplateError, match="link must be an absolute http"):
        check_params("alert_notification", params)


@pytest.mark.parametrize(
    ("name", "key", "value"),
    [
        ("alert_notification", "triggered_at", "yesterday at noon"),
        ("weekly_report", "period_start", "27/04/2026"),
    ],
)
def test_check_params_refuses_time_that_is_not_iso_8601(name, key, value):
    # Given a time or date not written in ISO 8601
    params = params_for(name, **{key: value})

    # When checking it
    # Then it is refused by name
    with pytest.raises(TemplateError, match=f"{key} must be an ISO 8601"):
        check_params(name, params)


def test_check_params_refuses_report_period_ending_before_it_starts():
    # Given a report period whose end is before its start
    params = params_for("weekly_report", period_start="2026-05-03", period_end="2026-04-27")

    # When checking it
    # Then it is refused
    with pytest.raises(TemplateError, match="period_end must not be before period_start"):
        check_params("weekly_report", params)


def test_check_params_refuses_params_over_size_limit():
    # Given highlights that make the params larger than the stored limit
    params = params_for("weekly_report", highlights=["x" * 1000] * 17)

    # When checking them
    # Then the error gives the size and the limit
    with pytest.raises(TemplateError, match=f"the limit is {MAX_PARAMS_BYTES} bytes"):
        check_params("weekly_report", params)


def test_check_params_accepts_params_at_size_limit():
    # Given params just under the limit
    params = params_for("weekly_report", highlights=["x" * 1000] * 15)

    # When checking them
    # Then nothing is raised
    check_params("weekly_report", params)


def test_template_error_is_a_value_error():
    # Given callers that catch ValueError around enqueueing
    # Then TemplateError is one
    assert issubclass(TemplateError, ValueError)


def test_templates_module_does_not_import_jinja2():
    # Given a fresh interpreter, as in a cold start
    code = "import sys, kumo.tasks.templates; sys.exit('jinja2' in sys.modules)"

    # When importing the templates module
    # Then Jinja2 stays unloaded until something renders
    result = subprocess.run(  # noqa: S603 - our own interpreter with a fixed argument list
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT / "layers" / "common")},
        check=False,
    )
    assert result.returncode == 0
