"""Names the SIE SDK tests share (a module of its own: test files import it by this unique name)."""

KEY = "sie-sdk-key"
MINILM = "all-MiniLM-L6-v2"
MINILM_NAME = "sentence-transformers/all-MiniLM-L6-v2"   # the canonical name answers carry
PROMPTS = "test-prompts"   # MiniLM with query: / passage: prompts (tests/compat_reference.py)
M3 = "tiny/m3"             # dense + sparse + multivector (build_catalog.py)
TEXTS = ["The striker scored twice in the final.", "Stocks fell sharply on Monday."]
