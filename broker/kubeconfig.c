/* kubeconfig: not written yet. */
