"""External services: Fazpass OTP, FCM push, Valkey, Sentry."""
