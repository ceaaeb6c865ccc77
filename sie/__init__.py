"""sie: many small models on one device, behind encode / score / extract.

`Engine` (in-process, needs torch), `SieClient` (HTTP, light) and `LocalModels` (the catalog's models
and tokenizers alone, light) are imported lazily, so the SDK can be used without loading torch.
"""

import os

# Idle OpenMP workers sleep instead of spinning. libgomp reads this once, when torch loads it, so it
# must be set before torch is imported. Measured on 2 cores (bench/serve.py latency phase): spinning
# workers steal the core the event loop needs to answer; sleeping, the p50 HTTP overhead went from
# 2.1-2.7 ms to 1.6-2.0 ms, and batch throughput is unchanged either way. An operator's own value wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from sie.errors import SieError

__version__ = "0.1.0"
__all__ = ["EncodedItem", "Engine", "LocalModels", "SieClient", "SieError", "__version__"]


def __getattr__(name: str):
    if name == "Engine":
        from sie.runtime.engine import Engine

        return Engine
    if name == "SieClient":
        from sie.client import SieClient

        return SieClient
    if name == "LocalModels":
        from sie.runtime.local_models import LocalModels

        return LocalModels
    if name == "EncodedItem":
        from sie.runtime.results import EncodedItem

        return EncodedItem
    raise AttributeError(f"module 'sie' has no attribute {name!r}")
