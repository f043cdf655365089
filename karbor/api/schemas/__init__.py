"""Request body schemas, one module per API resource."""
