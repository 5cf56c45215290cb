"""The GraphQL adapter: types mirrored from the contracts, resolvers over the services, compiled reads."""
