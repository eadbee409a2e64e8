"""The API's cross-app parts: every route (handlers', workflows', queues') answers through these, as the
settings' `REST_FRAMEWORK`, `MIDDLEWARE` and `SPECTACULAR_SETTINGS` name them."""
