"""HTTP pieces both adapters share (REST and GraphQL); below them, above the services."""
