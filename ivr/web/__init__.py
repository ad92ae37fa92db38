"""HTTP-facing pieces of the service beyond the listeners: Prometheus metrics, web logins."""
