"""sie: many small models on one device, behind encode / score / extract."""

from sie.errors import SieError
from sie.runtime import EncodedItem, Engine

__version__ = "0.1.0"
__all__ = ["EncodedItem", "Engine", "SieError", "__version__"]
