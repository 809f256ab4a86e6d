"""Box geometry: the segbox (a mask's weak form), box perturbation as a reader draws, box restriction."""
