"""The PKI service: key and certificate stores, CMP sessions, automatic update."""
