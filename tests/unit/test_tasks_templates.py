"""E-mail templates (kumo.tasks.templates)."""

from __future__ import annotations

import pytest
from kumo.tasks.templates import TEMPLATES, render


@pytest.fixture(autouse=True)
def aws() -> None:
    """Overrides conftest's moto setup: nothing here touches AWS, so no tables are built."""


def test_render_escapes_params_in_html_part_only():
    # Given a display name with markup in it
    params = {
        "display_name": "<b>Ada</b> & co",
        "token": "t0k3n",
        "link": "https://x.test/?a=1&b=2",
    }

    # When rendering the verification mail
    message = render("verify_email", params)

    # Then the HTML part escapes it and the text part keeps it as typed
    assert "Hello &lt;b&gt;Ada&lt;/b&gt; &amp; co" in message.html
    assert 'href="https://x.test/?a=1&amp;b=2"' in message.html
    assert "Hello <b>Ada</b> & co" in message.text


def test_render_refuses_missing_params():
    # Given params without the link
    # When rendering the reset mail
    # Then it names what is missing
    with pytest.raises(KeyError, match="link"):
        render("password_reset", {"display_name": "Ada", "token": "t0k3n"})


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_render_fills_every_placeholder(name):
    # Given a value for every declared parameter
    params = {key: f"<{key}>" for key in TEMPLATES[name].params}

    # When rendering the template
    message = render(name, params)

    # Then no placeholder is left in any part
    for part in (message.subject, message.text, message.html):
        assert "$" not in part
