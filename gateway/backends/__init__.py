"""Backend adapters: the only code that knows a flavour's tensor names and quirks."""
