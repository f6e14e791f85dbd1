"""The archive as a BagIt bag (RFC 8493): writing its tag files, reading and verifying it."""
