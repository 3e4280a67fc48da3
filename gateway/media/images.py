"""Image content parts: `data:` URLs are checked and passed on as base64; remote http(s) URLs
are fetched only when the operator allows it (--allow-remote-images), within size and time
limits, since fetching makes the gateway a client of whatever URL a request names.

Remote fetches are guarded against server-side request forgery: every hop (redirects are
followed here, at most MAX_REDIRECTS of them) must be http(s) without userinfo, on a host the
domain allow-list names, and reach only addresses media_policy allows. Names are resolved by
the connector's own resolver, which refuses disallowed addresses, so the connection goes to the
address that was checked. Clients learn only that the image could not be fetched; the reason
goes to the log."""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import socket
from collections.abc import Sequence

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from gateway.errors import InvalidRequest
from gateway.media.policy import MediaPolicy

log = logging.getLogger(__name__)

MAX_REDIRECTS = 3  # redirects followed per image, each checked like the first URL
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_CHUNK_BYTES = 64 * 1024


class FetchRefused(Exception):
    """Why a remote image was not fetched; for the log only, never for the client."""


class ImageTooLarge(Exception):
    """The image (declared or read so far) is past the size limit."""


class CheckedResolver(AbstractResolver):
    """Resolves with aiohttp's threaded resolver (getaddrinfo off the event loop) and refuses, as
    an OSError, a name with any address the policy does not allow: the connector connects only to
    what this returns, so there is no window for DNS rebinding."""

    def __init__(self, policy: MediaPolicy, resolver: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._resolver = resolver if resolver is not None else aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._resolver.resolve(host, port, family)
        refused = sorted({result["host"] for result in results if not self._policy.address_allowed(result["host"])})
        if refused:
            raise OSError(f"{host} resolves to addresses that are not allowed: {', '.join(refused)}")
        return results

    async def close(self) -> None:
        await self._resolver.close()


class ImageLoader:
    def __init__(
        self,
        *,
        allow_remote: bool,
        max_bytes: int,
        timeout: float,
        allowed_domains: Sequence[str] = (),
        allowed_networks: Sequence[str] = (),
    ) -> None:
        self.allow_remote = allow_remote
        self.max_bytes = max_bytes
        self._timeout = timeout
        self._policy = MediaPolicy.build(allowed_domains, allowed_networks)
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def load(self, url: str, param: str) -> bytes:
        """The image as base64 (what the vLLM backend's `image` input takes)."""
        if url.startswith("data:"):
            return self._from_data_url(url, param)
        if url.startswith(("http://", "https://")):
            if not self.allow_remote:
                raise InvalidRequest(
                    "Remote image URLs are not fetched by this gateway; send the image as a data: URL "
                    "(or start the gateway with --allow-remote-images).",
                    param=param,
                    code="remote_images_disabled",
                )
            return await self._fetch(url, param)
        raise InvalidRequest("An image URL must be a data: URL or an http(s) URL.", param=param)

    def _from_data_url(self, url: str, param: str) -> bytes:
        header, comma, payload = url.partition(",")
        media_type, _, encoding = header.removeprefix("data:").partition(";")
        if not comma or not media_type.startswith("image/") or encoding != "base64":
            raise InvalidRequest("An image data: URL must look like data:image/<type>;base64,<data>.", param=param)
        try:
            image = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidRequest("The image data: URL does not hold valid base64.", param=param) from None
        self._check_size(len(image), param)
        return payload.encode("ascii")

    async def _fetch(self, url: str, param: str) -> bytes:
        """The remote image as base64; any failure is one generic 400 (the reason is logged)."""
        try:
            async with asyncio.timeout(self._timeout):
                image = await self._follow(URL(url))
        except ImageTooLarge as exc:
            log.info("The image at %s was refused: %s", param, exc)
            raise self._too_large(param) from None
        except (FetchRefused, aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
            log.info("The image at %s could not be fetched: %s", param, str(exc) or type(exc).__name__)
            raise InvalidRequest(
                f"The image at {param} could not be fetched.", param=param, code="image_fetch_failed"
            ) from None
        return base64.b64encode(image)

    async def _follow(self, url: URL) -> bytes:
        """Request `url`, following up to MAX_REDIRECTS redirects, checking every hop."""
        session = self._get_session()
        for _ in range(MAX_REDIRECTS + 1):
            self._check_url(url)
            async with session.get(url, allow_redirects=False) as response:
                if response.status not in _REDIRECT_STATUSES:
                    return await self._read_image(response)
                url = _redirect_target(response)
        raise FetchRefused(f"more than {MAX_REDIRECTS} redirects")

    def _check_url(self, url: URL) -> None:
        """Refuse a hop before connecting: scheme, userinfo, domain allow-list, address literals
        (aiohttp does not ask the resolver about literals)."""
        if url.scheme not in ("http", "https"):
            raise FetchRefused(f"scheme {url.scheme!r} is not http(s)")
        if url.raw_user is not None or url.raw_password is not None:
            raise FetchRefused("the URL carries userinfo")
        if not url.raw_host:
            raise FetchRefused("the URL has no host")
        reason = self._policy.refusal(url.raw_host)
        if reason is not None:
            raise FetchRefused(reason)

    async def _read_image(self, response: aiohttp.ClientResponse) -> bytes:
        """The body of a final (non-redirect) response, if it is an image within the limit."""
        if response.status != 200:
            raise FetchRefused(f"{response.url.origin()} answered HTTP {response.status}")
        if not response.content_type.startswith("image/"):
            raise FetchRefused(f"{response.url.origin()} sent {response.content_type}, not an image")
        if response.headers.get(aiohttp.hdrs.CONTENT_ENCODING, "identity").lower() != "identity":
            # Not decompressed here: a small compressed body could inflate far past the limit.
            raise FetchRefused(f"{response.url.origin()} sent a content-encoded body")
        if response.content_length is not None and response.content_length > self.max_bytes:
            raise ImageTooLarge(f"Content-Length {response.content_length} is over {self.max_bytes} bytes")
        return await self._read_limited(response.content)

    async def _read_limited(self, content: aiohttp.StreamReader) -> bytes:
        """Read chunk by chunk, stopping as soon as the bytes read pass the limit."""
        chunks: list[bytes] = []
        size = 0
        async for chunk in content.iter_chunked(_CHUNK_BYTES):
            size += len(chunk)
            if size > self.max_bytes:
                raise ImageTooLarge(f"more than {self.max_bytes} bytes sent")
            chunks.append(chunk)
        return b"".join(chunks)

    def _get_session(self) -> aiohttp.ClientSession:
        """One session for all fetches, created on first use (inside the running loop)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(resolver=CheckedResolver(self._policy)),
                timeout=aiohttp.ClientTimeout(total=self._timeout),
                trust_env=False,  # no proxy from the environment: it would connect on our behalf
                auto_decompress=False,
                cookie_jar=aiohttp.DummyCookieJar(),  # no cookies carried from one client's fetch to another's
                headers={aiohttp.hdrs.ACCEPT_ENCODING: "identity"},
            )
        return self._session

    def _check_size(self, size: int, param: str) -> None:
        if size > self.max_bytes:
            raise self._too_large(param)

    def _too_large(self, param: str) -> InvalidRequest:
        return InvalidRequest(
            f"The image is larger than the limit of {self.max_bytes} bytes.", param=param, code="image_too_large"
        )


def _redirect_target(response: aiohttp.ClientResponse) -> URL:
    """Where a redirect points, relative to the URL that answered."""
    location = response.headers.get(aiohttp.hdrs.LOCATION)
    if not location:
        raise FetchRefused(f"{response.url.origin()} redirected without a Location")
    return response.url.join(URL(location)).with_fragment(None)
