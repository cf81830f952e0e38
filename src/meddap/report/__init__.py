"""Report stage: Tables 1-3, single cells, sample grids, Fig. 1a and Grad-CAM Fig. 2."""
