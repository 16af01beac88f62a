"""Still images: crop extraction, synthetic pairs, filtering and evaluation."""
