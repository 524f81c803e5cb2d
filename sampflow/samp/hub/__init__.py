"""sampflow's SAMP hub: a sans-I/O core (`core`, `registry`) and its transports."""
