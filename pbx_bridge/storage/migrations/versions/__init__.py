"""The revisions, oldest first; never edit one that has shipped."""
