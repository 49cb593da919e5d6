/* loop: not written yet. */
