"""One refusal class (leadvault.refusals.RefusedRequest) under every service's refusal:
the English text for the command line, the translated one for the console and the API,
the field it is about. FormError's translation of "There is no language %(lang)s." raised
TypeError (its value ``lang`` collided with translate's parameter)."""

from __future__ import annotations

import pytest

from capture.definitions import FormError, FormInUse
from consent.service import ConsentError, TextUnchanged
from export.transport import AddressRefused
from export.webhooks import WebhookError
from leadvault import i18n
from leadvault.i18n import N_
from leadvault.refusals import RefusedRequest
from scoring.routing import SalesError
from scoring.sales_team import Conflict, NotFound
from widgets.assets import AssetError, too_large


@pytest.mark.parametrize(
    "refusal",
    [
        SalesError,
        NotFound,
        Conflict,
        ConsentError,
        TextUnchanged,
        AssetError,
        WebhookError,
        AddressRefused,
        FormError,
        FormInUse,
    ],
)
def test_every_service_refusal_is_one(refusal):
    assert issubclass(refusal, RefusedRequest)


def test_the_message_is_english_in_str_and_translated_on_request(app):
    refused = FormError(N_("There is no language %(lang)s."), "title_fr", lang="fr")
    assert str(refused) == "There is no language fr."
    assert refused.field == "title_fr"
    assert refused.values == {"lang": "fr"}
    assert refused.translated("de") == "Die Sprache fr gibt es nicht."
    with i18n.force_locale("de"):
        assert refused.translated() == "Die Sprache fr gibt es nicht."
    assert refused.translated() == "There is no language fr."


def test_a_message_without_values_is_its_text():
    refused = SalesError(N_("Please give a name."), field="name")
    assert str(refused) == "Please give a name."
    assert refused.values == {}
    assert ConsentError(N_("The consent text is empty.")).field is None


def test_asset_refusals_keep_their_answers():
    refused = too_large()
    assert refused.too_large and not refused.conflict
    assert refused.field == "file"
    assert "larger than" in str(refused)
