"""Worker-side code: what runs inside a worker process to train one sub-epoch."""
