/* wire: not written yet. */
