-- wrk script: the GraphQL POST benchmarked by bench/server_choice.py.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"query":"{ papers(first: 20) { edges { node { id title listings { id rank } } } } }"}'
