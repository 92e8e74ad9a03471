"""Web Push: VAPID signing, aes128gcm encryption, the HTTP client and a local receiver."""

# The modules the rest of the project (and its users) may import; the others are this
# package's own.
__all__ = ["client", "processes", "setup", "vapid"]
