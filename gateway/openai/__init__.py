"""The OpenAI API without a web framework: per endpoint, a plan (a decoded request body to
complete generation requests) and a rendering (deltas to frames or a response object), and the
one delta pipeline every choice's deltas pass through on their way from the engine."""
