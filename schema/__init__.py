"""Shared data contracts: the one definition of every type the worker, REST and GraphQL exchange."""
