"""Protection plugins used by functional tests, written only against the plugin SDK."""
