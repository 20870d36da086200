"""The Hugging Face Hub: metadata with typed errors, resumable verified downloads, header replicas."""
