"""One item's bytes: request, resume, stream, hash, check, hand to the archive."""
