"""System.Int32, the type every id, status and page number of the API binds to in ASP.NET Core.

ASP.NET refuses to bind a number outside [-2**31, 2**31 - 1] to an Int32: in the query string or
a JSON body that is the usual 400 conversion error, and for an `{id:int}` route value it means the
route does not match, so the answer is a 404.
"""

from __future__ import annotations

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1

DIGITS = "[0-9]{1,10}"
"""At most the ten ASCII digits an Int32 can have, as a regular expression.

Never `\\d`: in Python it also matches non-ASCII digits (Arabic-Indic U+0660 to U+0669 and many
more), which `int()` then accepts. The length cap also keeps `int()` far from its 4300-digit limit,
past which it raises ValueError.
"""


def is_int32(number: int) -> bool:
    """True when `number` fits in a .NET Int32."""
    return INT32_MIN <= number <= INT32_MAX
