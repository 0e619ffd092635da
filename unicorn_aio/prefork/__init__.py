"""The pre-fork process model: the master (arbiter), its workers, and their process plumbing."""
