/* framer: not written yet. */
