"""The random-forest pixel classifier, trained from sparse labels."""
