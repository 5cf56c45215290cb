-- The embedding space also names the runtime and the quantization of the model: the same MiniLM run by
-- ONNX Runtime with int8 weights gives other vectors than torch fp32 (cosine about 0.995, not 1), so
-- the two are different spaces and are never compared. Vectors stored before this migration were all
-- made by torch fp32 (the local model) or by a remote endpoint (whatever it serves).
-- (Numbered 007 so that it does not collide with migrations other branches add as 004-006.)
ALTER TABLE embedding_space
    ADD COLUMN backend text,
    ADD COLUMN quantization text;

UPDATE embedding_space SET
    backend = CASE WHEN model = 'sentence-transformers/all-MiniLM-L6-v2' THEN 'torch' ELSE 'openai' END,
    quantization = CASE WHEN model = 'sentence-transformers/all-MiniLM-L6-v2' THEN 'fp32' ELSE 'remote' END;

ALTER TABLE embedding_space
    ALTER COLUMN backend SET NOT NULL,
    ALTER COLUMN quantization SET NOT NULL;
