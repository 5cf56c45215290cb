"""Response compression: zstd, brotli or gzip, whichever the client accepts (server preference in that order).

Litestar's CompressionMiddleware compresses (whole bodies from 1 KB, streams chunk by chunk) but picks from one
configured backend and gzip; this subclass reads `Accept-Encoding` with its q-values and hands the encoding to
a facade that dispatches to brotli (Litestar's own) or zstd (the `zstandard` library). The levels are the ones
measured in docs/benchmarks.md (section `serving`): about as fast as gzip's default and smaller.
"""

from __future__ import annotations

from io import BytesIO
from typing import Any

import zstandard
from litestar.config.compression import CompressionConfig
from litestar.datastructures import Headers
from litestar.middleware.compression import CompressionMiddleware
from litestar.middleware.compression.brotli_facade import BrotliCompression
from litestar.types import Receive, Scope, Send

PREFERENCE = ("zstd", "br", "gzip")  # smallest and cheapest first, at the levels below
MINIMUM_SIZE = 1024  # smaller bodies gain a few bytes at most, for the cost of a compressor
ZSTD_LEVEL = 3
BROTLI_QUALITY = 4
GZIP_LEVEL = 4


def choose_encoding(accept_encoding: str) -> str | None:
    """The encoding to answer with: of those the client accepts with the highest q-value, the first we prefer."""
    weights: dict[str, float] = {}
    for item in accept_encoding.split(","):
        name, *params = (part.strip() for part in item.split(";"))
        weight = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        if name:
            weights[name.lower()] = weight
    chosen, best = None, 0.0
    for encoding in PREFERENCE:
        weight = weights.get(encoding, weights.get("*", 0.0))
        if weight > best:
            chosen, best = encoding, weight
    return chosen


class ZstdCompression:
    """A Litestar compression facade writing one zstd frame, flushed block by block for streams."""

    encoding = "zstd"

    def __init__(self, buffer: BytesIO, compression_encoding: str, config: CompressionConfig) -> None:
        self.buffer = buffer
        self.compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL).compressobj()

    def write(self, body: bytes) -> None:
        """Compress a chunk and flush it, so a streamed chunk reaches the client at once."""
        self.buffer.write(self.compressor.compress(body))
        self.buffer.write(self.compressor.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK))

    def close(self) -> None:
        """End the frame."""
        self.buffer.write(self.compressor.flush())


class NegotiatedFacade:
    """The facade Litestar builds for a non-gzip encoding: zstd or brotli, as negotiated."""

    encoding = "zstd"

    def __new__(cls, buffer: BytesIO, compression_encoding: str, config: CompressionConfig) -> Any:
        if compression_encoding == "zstd":
            return ZstdCompression(buffer, compression_encoding, config)
        return BrotliCompression(buffer, compression_encoding, config)


class NegotiatedCompression(CompressionMiddleware):
    """Litestar's compression middleware, with the encoding chosen by `choose_encoding`."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Compress the response with the negotiated encoding, or pass it through when there is none."""
        encoding = choose_encoding(Headers.from_scope(scope).get("accept-encoding", ""))
        if encoding is None:
            await self.app(scope, receive, send)
            return
        wrapped = self.create_compression_send_wrapper(send=send, compression_encoding=encoding, scope=scope)
        await self.app(scope, receive, wrapped)


COMPRESSION = CompressionConfig(
    backend="negotiated",
    minimum_size=MINIMUM_SIZE,
    gzip_compress_level=GZIP_LEVEL,
    brotli_quality=BROTLI_QUALITY,
    middleware_class=NegotiatedCompression,
    compression_facade=NegotiatedFacade,  # type: ignore[arg-type]  # a factory of facades, not one facade class
)
