"""Queue providers: one class per broker behind the interface of `base.Provider`.

Nothing here imports from the other apps; the kind registry (`queues.kinds`) names each class and
makes providers (`provider_for`).
"""

from .base import ConfigurationError, Message, Provider, ProviderError, QueueDepth, QueueSpec

__all__ = [
    "ConfigurationError", "Message", "Provider", "ProviderError", "QueueDepth", "QueueSpec",
]
