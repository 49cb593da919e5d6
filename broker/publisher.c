/* publisher: not written yet. */
