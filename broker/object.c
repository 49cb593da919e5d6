/* object: not written yet. */
