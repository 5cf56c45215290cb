"""The service layer: catalog reads, search and recommendations, submissions; REST, GraphQL and the CLI share it."""
