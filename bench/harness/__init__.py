"""What every benchmark shares: a temporary PostgreSQL, servers, CPU and memory meters, load generators, reports."""
