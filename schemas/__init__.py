"""msgspec Structs for the OpenAI wire format: requests, responses, stream chunks, errors."""
