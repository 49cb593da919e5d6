/* conn: not written yet. */
