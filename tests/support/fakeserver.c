/* fakeserver: not written yet. */
