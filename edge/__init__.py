"""capi-edge: a self-hosted, first-party server container for ad conversion tracking."""

__version__ = "0.1.0"
