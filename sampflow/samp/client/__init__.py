"""sampflow's SAMP clients: `aio` (asyncio-native) and `sync` (astropy-compatible facade)."""
