"""Names the client tests share (a module of its own: test files import it by this unique name)."""

KEY = "clients-key"
MINILM = "all-MiniLM-L6-v2"
PROMPTS = "test-prompts"   # MiniLM with query: / passage: prompts (tests/compat_reference.py)
TEXTS = ["The striker scored twice in the final.", "Stocks fell sharply on Monday."]
