/* ring: not written yet. */
