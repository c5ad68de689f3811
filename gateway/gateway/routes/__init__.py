"""The gateway's routes, one module per section of the API; the service class combines them."""
