"""Runtimes run replicas: process, container, http, in-process."""
