"""The aiohttp layer: one module per endpoint group, plus middleware."""
