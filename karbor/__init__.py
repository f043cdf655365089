"""Karbor: application data protection as a service."""
