"""Privacy lists (XEP-0016) used for invisibility as XEP-0126 describes (being written)."""
