"""The knobs of the sandbox dataset: every record and byte is a pure function of these."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FIRST_ORGANIZATION", "LISTED_KINDS", "LIST_SHAPES", "OWNER_BASES", "OWNER_KINDS",
           "DatasetConfig"]

FIRST_ORGANIZATION = 7000000000000300322
OWNER_KINDS = ("products", "beers", "restaurants", "menu_items")
OWNER_BASES = {"products": 1001, "beers": 2001, "restaurants": 3001, "menu_items": 4001}
LISTED_KINDS = ("products", "beers", "menu_items")  # restaurants have no list upstream
# How /products.json (beers, menu_items) answers: {"products": [{...}]}, each element wrapped
# as {"products": [{"product": {...}}]}, or a bare JSON array.
LIST_SHAPES = ("object", "wrapped", "bare")


@dataclass(frozen=True)
class DatasetConfig:
    """Size, credentials and limits of a sandbox dataset.

    Organization ids start at ``7000000000000300322`` and are consecutive. OnPremise owner ids
    start at 1001 (products), 2001 (beers), 3001 (restaurants) and 4001 (menu_items).
    ``owner_list_shape`` is the shape of the account's lists (``LIST_SHAPES``).
    """

    seed: int = 1
    client: str = "carhartt"
    organizations: int = 2
    assets_per_org: int = 6
    products: int = 2
    beers: int = 1
    restaurants: int = 0
    menu_items: int = 0
    assets_per_owner: int = 3
    file_size_min: int = 2_000
    file_size_max: int = 60_000
    spectrum_token: str = "sandbox-spectrum-token"
    onpremise_api_key: str = "sandbox-onpremise-key"
    spectrum_limit: int = 100
    spectrum_window: float = 60.0
    default_page_size: int = 25
    owner_list_shape: str = "object"
    hostile: bool = False

    def __post_init__(self) -> None:
        counts = (self.organizations, self.assets_per_org, self.products, self.beers,
                  self.restaurants, self.menu_items, self.assets_per_owner)
        if min(counts) < 0:
            raise ValueError("dataset counts must not be negative")
        if not 0 <= self.file_size_min <= self.file_size_max:
            raise ValueError("need 0 <= file_size_min <= file_size_max")
        if self.default_page_size < 1:
            raise ValueError("default_page_size must be at least 1")
        if self.owner_list_shape not in LIST_SHAPES:
            raise ValueError(f"owner_list_shape must be one of {', '.join(LIST_SHAPES)}")

    def owner_count(self, kind: str) -> int:
        """How many owners of ``kind`` (products, beers, restaurants, menu_items) exist."""
        if kind not in OWNER_BASES:
            raise KeyError(kind)
        count: int = getattr(self, kind)
        return count
