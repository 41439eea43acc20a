"""The Falcon app: middleware, one resource module per OCPI module, error envelope."""
