"""Sorting and paging of list results: pure functions shared by tasks and batches.

`sort` names a property of the returned objects, case-insensitively (`createdOn` by default);
a leading `-` or a trailing ` desc` sorts descending, the vendor's docs saying only "name of
property to sort result values". Pages are 1-based with a default size of 10, wrapped as
`{items, pageNumber, totalPages, totalCount, hasPreviousPage, hasNextPage}`.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from .query import Query

DEFAULT_SORT = "createdOn"
DEFAULT_PAGE_SIZE = 10

View = dict[str, object]


@dataclass(frozen=True)
class Sort:
    """Which property to sort by, and in which direction."""

    key: str
    descending: bool = False


def parse_sort(text: str | None) -> Sort:
    """`createdOn`, `-createdOn` or `createdOn desc` (and `asc`) as a `Sort`."""
    if text is None:
        return Sort(DEFAULT_SORT)
    words = text.strip().split()
    descending = words[-1].lower() == "desc" if len(words) == 2 else False
    key = words[0] if words else DEFAULT_SORT
    if key.startswith("-"):
        return Sort(key[1:], descending=True)
    return Sort(key.removeprefix("+"), descending=descending)


def sort_views(views: list[View], sort: Sort, properties: Collection[str]) -> list[View] | None:
    """`views` sorted by `sort` (stable, nulls last), or None if it names none of `properties`."""
    key = {name.lower(): name for name in properties}.get(sort.key.lower())
    if key is None:
        return None

    def order(view: View) -> str | float:
        value = view[key]
        return value if isinstance(value, int | float | str) else str(value)

    present = [view for view in views if view[key] is not None]
    missing = [view for view in views if view[key] is None]
    return sorted(present, key=order, reverse=sort.descending) + missing


def sorted_or_fail(views: list[View], query: Query, properties: Collection[str]) -> list[View]:
    """Sort by the query's `sort`; records a `sort` error if it names none of `properties`."""
    sort = parse_sort(query.first("sort"))
    ordered = sort_views(views, sort, properties)
    if ordered is None:
        query.fail("sort", f"'{sort.key}' is not a property that results can be sorted by.")
        return views
    return ordered


@dataclass(frozen=True)
class PageRequest:
    """A 1-based page number and a page size."""

    number: int = 1
    size: int = DEFAULT_PAGE_SIZE


def page_request(query: Query) -> PageRequest:
    """`pageNumber` and `pageSize` from the query; records errors for values below 1."""
    number, size = query.integer("pageNumber"), query.integer("pageSize")
    if number is not None and number < 1:
        query.fail("pageNumber", "pageNumber must be 1 or greater.")
    if size is not None and size < 1:
        query.fail("pageSize", "pageSize must be 1 or greater.")
    return PageRequest(max(number or 1, 1), max(size or DEFAULT_PAGE_SIZE, 1))


def paginate(items: Sequence[View], page: PageRequest) -> View:
    """The page wrapper for `page` of `items`; a page past the end is empty."""
    total = len(items)
    total_pages = math.ceil(total / page.size)
    first = (page.number - 1) * page.size
    return {
        "items": list(items[first : first + page.size]),
        "pageNumber": page.number,
        "totalPages": total_pages,
        "totalCount": total,
        "hasPreviousPage": page.number > 1,
        "hasNextPage": page.number < total_pages,
    }
