"""The mesh services: registry, router, scheduler and health, and what they share."""
