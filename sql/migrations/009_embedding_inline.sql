-- Keep each paper's vector in its row. pgvector's type stores it out of line (STORAGE EXTERNAL), so a search that
-- returns a distance, computed again from the row for each result (an HNSW scan gives none), read the TOAST table
-- for every one: with MAIN the title, abstract and tsvector are compressed or moved out before the vector is.
-- Measured on 30,000 papers (docs/design.md, "Vectors in the row"): the 50 nearest with their distances 1,300 ->
-- 800 µs of server CPU, hybrid search's ranking statement 1,900-2,000 -> 1,500 µs, keyword and phrase queries no
-- slower. Rows written before this migration move when they are next written (`papers embed --all` rewrites them
-- all) or by VACUUM FULL.
ALTER TABLE papers ALTER COLUMN embedding SET STORAGE MAIN;
