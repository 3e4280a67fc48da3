"""Images from clients: inline data and remote fetches under an address policy."""
