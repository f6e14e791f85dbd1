"""One run's lifecycle: listing, planning, downloading, recording, sealing, reporting."""
