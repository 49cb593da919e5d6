/* watcher: not written yet. */
