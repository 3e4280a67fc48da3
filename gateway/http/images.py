"""Image content parts: `data:` URLs are checked and passed on as base64; remote http(s) URLs
are fetched only when the operator allows it (--allow-remote-images), within size and time
limits, since fetching makes the gateway a client of whatever URL a request names."""

from __future__ import annotations

import base64
import binascii

import aiohttp

from gateway.errors import InvalidRequest


class ImageLoader:
    def __init__(self, *, allow_remote: bool, max_bytes: int, timeout: float) -> None:
        self.allow_remote = allow_remote
        self.max_bytes = max_bytes
        self._timeout = aiohttp.ClientTimeout(total=timeout)
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
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        try:
            async with self._session.get(url) as response:
                if response.status != 200:
                    raise InvalidRequest(f"Fetching the image failed with HTTP {response.status}.", param=param)
                if not response.content_type.startswith("image/"):
                    raise InvalidRequest(f"The URL is not an image ({response.content_type}).", param=param)
                image = await response.content.read(self.max_bytes + 1)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise InvalidRequest(f"The image could not be fetched: {exc or type(exc).__name__}.", param=param) from None
        self._check_size(len(image), param)
        return base64.b64encode(image)

    def _check_size(self, size: int, param: str) -> None:
        if size > self.max_bytes:
            raise InvalidRequest(f"The image is larger than the limit of {self.max_bytes} bytes.", param=param)
