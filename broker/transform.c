/* transform: not written yet. */
