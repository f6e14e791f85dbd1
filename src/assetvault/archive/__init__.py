"""The archive on disk: paths, layout, placement, journal, history, state, recovery."""
