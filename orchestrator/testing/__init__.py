"""Shipped test doubles, for this project's tests and for users testing their own setup.

- `receiver`: a local Web Push service that decrypts (RFC 8291), checks VAPID and can
  answer with faults (429, 5xx, 410, slow answers) on demand; its checks of one push
  (headers, VAPID, body size, decryption) are in `protocol`, and it re-exports them;
- `browser`: where Debian's Chromium is and the flags it runs headless with;
- `fakes`: `RecordingDelivery`, a delivery that keeps every request and answers "delivered";
- `ports`: a free loopback port for a server to listen on.
"""

# The modules the rest of the project (and its users) may import; the others are this
# package's own.
__all__ = ["browser", "fakes", "ports", "receiver"]
