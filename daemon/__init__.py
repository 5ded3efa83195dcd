"""style-daemon: a hot-folder service for neural style transfer."""

__version__ = "0.1.0"
