"""What a run is asked to do: the manifest read and checked, its jobs, the run's options."""
