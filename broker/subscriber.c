/* subscriber: not written yet. */
