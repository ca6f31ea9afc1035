"""The ``static`` upstream type: fixed hosts, inline in the cluster."""
