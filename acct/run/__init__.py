"""A run on disk: its directory (config.json, metrics.jsonl, the split manifest, loading it back),
the checkpoint files (safetensors and JSON, written atomically), the lock that makes one process
its writer, the provenance it records, its export as a Hugging Face encoder folder, and a new run
started from another's weights (`--init-from`)."""
