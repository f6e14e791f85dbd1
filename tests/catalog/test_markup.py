"""Escaping: the stdlib's html.escape, control characters made visible, nothing else changed."""

from __future__ import annotations

import html
import random
import re

from assetvault.catalog.markup import esc, href

CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def test_esc_is_html_escape_with_control_characters_shown() -> None:
    rng = random.Random(15)
    for _ in range(5000):
        text = "".join(chr(rng.choice((rng.randrange(0, 300), rng.randrange(0, 0x3000))))
                       for _ in range(rng.randrange(0, 24)))
        escaped = esc(text)
        assert escaped == CONTROL.sub("\ufffd", html.escape(text, quote=True))
        assert not set("<>\"'") & set(escaped)


def test_links_are_percent_encoded_and_escaped() -> None:
    assert href("../../data/a/<b>bold</b> & \"x\".png") == (
        "../../data/a/%3Cb%3Ebold%3C/b%3E%20%26%20%22x%22.png")
    assert href("../x/javascript:alert(1)#y?z") == "../x/javascript%3Aalert%281%29%23y%3Fz"
