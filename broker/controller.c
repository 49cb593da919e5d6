/* controller: not written yet. */
