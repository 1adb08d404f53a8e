"""Post-processing of probability maps and label images."""
