"""The archive's bookkeeping: layout, placement, journal, history, state, recovery, seal."""
