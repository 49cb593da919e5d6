/* reflector: not written yet. */
