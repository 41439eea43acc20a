"""OCPI 2.2.1 vocabulary: status codes, envelope, models, pagination, HTTP client."""
