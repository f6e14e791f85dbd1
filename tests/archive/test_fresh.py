"""Skip decisions and redaction: pure."""

from __future__ import annotations

from assetvault.archive.fresh import is_up_to_date
from assetvault.models import Item, Row
from assetvault.redact import Redactor, redact_text, redact_url

ITEM = Item("k", "job", "http://h/x.png", "x.png", upstream_version="v1")


def row(**kw: object) -> Row:
    base = dict(key="k", url="http://h/x.png", path="x.png", size=10, sha256="a" * 64,
                version="v1", status="complete")
    base.update(kw)
    return Row(**base)  # type: ignore[arg-type]


def test_up_to_date_needs_everything_unchanged() -> None:
    assert is_up_to_date(ITEM, row(), 10, ITEM.url)
    assert not is_up_to_date(ITEM, None, 10, ITEM.url)
    assert not is_up_to_date(ITEM, row(status="failed"), 10, ITEM.url)
    assert not is_up_to_date(ITEM, row(url="http://h/y.png"), 10, ITEM.url)
    assert not is_up_to_date(ITEM, row(version="v0"), 10, ITEM.url)
    assert not is_up_to_date(ITEM, row(), None, ITEM.url)
    assert not is_up_to_date(ITEM, row(), 9, ITEM.url)


def test_without_version_the_listed_size_decides() -> None:
    item = Item("k", "job", "http://h/x.png", "x.png", expected_size=10)
    assert is_up_to_date(item, row(version=None), 10, item.url)
    item = Item("k", "job", "http://h/x.png", "x.png", expected_size=11)
    assert not is_up_to_date(item, row(version=None), 10, item.url)


def test_a_listed_size_that_differs_means_new_bytes_whatever_the_version() -> None:
    # An upstream that replaced a file without touching its updated_at: the API's size says so.
    item = Item("k", "job", "http://h/x.png", "x.png", expected_size=15, upstream_version="v1")
    assert not is_up_to_date(item, row(), 10, item.url)
    item = Item("k", "job", "http://h/x.png", "x.png", expected_size=10, upstream_version="v1")
    assert is_up_to_date(item, row(), 10, item.url)


def test_redaction() -> None:
    assert redact_url("https://h/p/assets.json?api_key=SECRET&x=1") == (
        "https://h/p/assets.json?api_key=***&x=1")
    assert "pw" not in redact_url("https://user:pw@h/p")
    scrub = Redactor(["tok-123456"])
    assert scrub("bad tok-123456 and ?api_key=zzz") == "bad *** and ?api_key=***"


def test_a_credential_after_a_semicolon_or_in_the_fragment_is_redacted() -> None:
    # parse_qsl splits on & only: a ;-separated pair, or one in the fragment, hides from it.
    assert redact_url("http://h/a?x=1;api_key=SECRET") == "http://h/a?x=1;api_key=***"
    assert redact_url("http://h/g.bin#api_key=SECRET") == "http://h/g.bin#api_key=***"
    assert redact_url("http://h/g.bin?a=1#x&token=SECRET") == "http://h/g.bin?a=1#x&token=***"
    assert redact_url("http://h/a?b=2#top") == "http://h/a?b=2#top"


def test_a_redactor_masks_its_secret_values_anywhere_in_a_url() -> None:
    scrub = Redactor(["Tok-registered-7788"])
    assert "Tok-registered-7788" not in scrub.url(
        "https://cdn/x.png?SPECTRUM_API_TOKEN=Tok-registered-7788")
    assert "Tok-registered-7788" not in scrub.url("https://cdn/Tok-registered-7788/x.png")
    assert scrub.url("https://h/a?api_key=k") == "https://h/a?api_key=***"
    # No process-wide memory: another redactor (another run) knows nothing of these values.
    assert Redactor().url("https://cdn/Tok-registered-7788/x.png").count("Tok-registered") == 1


def test_json_text_masks_a_secret_in_every_form_json_writes_it() -> None:
    import json

    secret = 'tok"en\\é-123'
    scrub = Redactor([secret])
    for ascii_only in (True, False):
        text = json.dumps({"uri": f"https://h/x?tok={secret}", "v": secret},
                          ensure_ascii=ascii_only)
        cleaned = scrub.json_text(text)
        assert secret not in json.loads(cleaned).values()
        assert "tok" not in cleaned.replace('"uri"', "").replace("?tok=", "")


def test_a_percent_encoded_credential_name_is_redacted_in_text() -> None:
    # api%5Fkey is api_key to every server: asset.json must not keep its value.
    assert redact_text("u?api%5Fkey=SECRET&x=1") == "u?api%5Fkey=***&x=1"
    assert redact_text("u?%61PI_KEY=SECRET") == "u?%61PI_KEY=***"
    assert redact_text("u?keyring=fine&apikey=S") == "u?keyring=fine&apikey=***"
