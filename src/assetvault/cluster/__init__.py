"""Downloads spread over a Dask cluster: the run coordinates, workers fetch and place."""
