"""When a paged listing ends: Spectrum's organizations and OnPremise's ``/products.json``.

Both APIs document one end: a page shorter than the page size (or empty) is the last. A full
page of records already seen is no end: records inserted at the head between two requests
shift the rest by a page, and an unstable order repeats some records and moves others later,
so what follows it is still upstream. Only a server that ignores the page parameter repeats
itself for ever; ``STALE_PAGES`` full pages in a row with nothing new stop the listing then, as
an incomplete one: the caller reports a listing failure, so nothing is marked gone from it.
Pure: the callers make the requests.
"""

from __future__ import annotations

import msgspec

# Each stale page costs a request (0.7 s at Spectrum's default rate) and a server that ignores
# paging costs them all; only inserts of more than this many pages between two requests are
# more than the listing survives (and those are reported, not lost silently).
STALE_PAGES = 3
MAX_PAGES = 1_000_000  # a last guard, whatever the pages bring


class Paging(msgspec.Struct):
    """One paged listing under way: after each page, whether to ask for the next."""

    page_size: int
    stale_pages: int = STALE_PAGES
    max_pages: int = MAX_PAGES
    stale: int = 0  # full pages in a row that brought nothing new
    cut_short: str | None = None  # why the guard, not a short page, ended the listing

    def after(self, page: int, count: int, fresh: int) -> bool:
        """Whether page ``page + 1`` is wanted after page ``page`` gave ``count`` records,
        ``fresh`` of them not seen before. False with ``cut_short`` set: the listing is
        incomplete."""
        if count < self.page_size:
            return False
        if count > self.page_size and not fresh:
            # More than asked, and nothing new: a server that ignores paging sends its whole
            # list on every page; the first was all of it. (One that ignores only the size
            # brings new records on its next page, and is walked on.)
            return False
        self.stale = 0 if fresh else self.stale + 1
        if self.stale >= self.stale_pages:
            self.cut_short = (f"gave up after page {page}: {self.stale} full pages in a row "
                              "brought no record not listed before (does the server ignore "
                              "the page parameter?); the listing is incomplete")
        elif page >= self.max_pages:
            self.cut_short = (f"gave up at the cap of {self.max_pages} pages; the listing is "
                              "incomplete")
        return self.cut_short is None
