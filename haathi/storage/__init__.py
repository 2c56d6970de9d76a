"""Content-addressed storage: chunking, blobs in packs, and object-store backends."""
