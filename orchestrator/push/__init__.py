"""Web Push: VAPID signing, aes128gcm encryption, the HTTP client and a local receiver."""
