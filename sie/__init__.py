"""sie: many small models on one device, behind encode / score / extract.

`Engine` (in-process, needs torch) and `SieClient` (HTTP, light) are imported lazily, so the SDK
can be used without loading torch.
"""

from sie.errors import SieError

__version__ = "0.1.0"
__all__ = ["EncodedItem", "Engine", "SieClient", "SieError", "__version__"]


def __getattr__(name: str):
    if name == "Engine":
        from sie.runtime.engine import Engine

        return Engine
    if name == "SieClient":
        from sie.client import SieClient

        return SieClient
    if name == "EncodedItem":
        from sie.runtime.results import EncodedItem

        return EncodedItem
    raise AttributeError(f"module 'sie' has no attribute {name!r}")
