"""Which encoding an Accept-Encoding header gets."""

from __future__ import annotations

import pytest

from api.http.compression import choose_encoding


@pytest.mark.parametrize(
    ("header", "chosen"),
    [
        ("", None),
        ("identity", None),
        ("gzip", "gzip"),
        ("gzip, deflate, br", "br"),
        ("gzip, deflate, br, zstd", "zstd"),  # what current browsers send
        ("zstd;q=0, br;q=0.5, gzip", "gzip"),  # the highest q wins over our preference
        ("zstd;q=0, br, gzip", "br"),
        ("*", "zstd"),
        ("*;q=0.1, gzip;q=0.5", "gzip"),
        ("gzip;q=0", None),
        ("GZIP;Q=0.8", "gzip"),
        ("br;q=oops, gzip", "gzip"),  # an unreadable weight refuses that encoding
        ("compress, deflate", None),
    ],
)
def test_choose_encoding(header, chosen):
    assert choose_encoding(header) == chosen
