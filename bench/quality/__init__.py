"""Search and similarity quality, embedding cost and HNSW recall on the real seed listings; writes docs/similarity.md.

    .venv/bin/python -m bench.quality --seeds ../shared/seeds --out docs/similarity.md   # full run, about 6-10 min
    .venv/bin/python -m bench.quality --quick   # fewer queries, no large set; writes /tmp/similarity-quick.md
    .venv/bin/python -m bench.quality --quick --only search,similar   # some sections only

Starts a temporary embedded PostgreSQL (bench.harness.postgres), ingests the seed listings through the product
(read in place from --seeds, never copied), embeds every paper with the local model, then measures:

1. search quality (nDCG@10, recall@10, MRR@10) of keyword, semantic and hybrid search through
   `api.services.search.search_papers`, on queries built deterministically from a sample of seed papers (reworded
   titles, abstract sentences; the relevant document is the paper itself), and hand-written descriptions that must
   find their paper in the top 5 (queries.py, search.py);
2. `similar_papers` against two label-free notions of "related" and a random baseline (similar.py), and fused
   with a BM25 "more like this" of each paper's own terms (fusion.py);
3. which text to embed: title only vs title + abstract cut at 128/256/512 word pieces, as encode CPU time and
   exact-cosine retrieval quality on the same queries (embedding_text.py);
4. HNSW recall@10 against exact search, and latency, on the seeds and on synthetic sets shaped like them, for
   m x ef_construction x ef_search (synthetic.py, index.py, index_report.py).

Each section computes its conclusion (a ranking of modes, a chosen setting, met/missed against a threshold) from
its numbers; report.py puts the conclusions first. Everything random is seeded (--seed), so two runs build the same
queries and vectors; timings vary with the machine's load.
"""
