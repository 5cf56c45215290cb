"""The HTTP service: Litestar REST under /v1 and Strawberry GraphQL at /graphql."""
